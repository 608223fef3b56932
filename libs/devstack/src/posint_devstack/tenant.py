"""``make tenant NAME=acme`` and ``make key-*``: tenants and API keys on the stack running from
POSINT_RUN_DIR, through ``gateway.cli``.

Every value the user typed arrives verbatim in a POSINT_* variable (the Makefile never lets make or a
shell expand it) and is passed on as one argument after ``--``: stored as typed, never an option.
A stack.env left by a killed launcher is refused, not trusted."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway import cli

from posint_devstack.launcher import ENV_FILE, stack_running

# make key-<action>: (usage, the cli's arguments as (option or None, variable, required))
KEY_ACTIONS = {
    "create": ("make key-create TENANT=acme NAME=ci [SCOPE=read|write]",
               (("--tenant", "POSINT_TENANT_NAME", True), ("--name", "POSINT_KEY_NAME", True),
                ("--scope", "POSINT_KEY_SCOPE", False))),
    "list": ("make key-list TENANT=acme", (("--tenant", "POSINT_TENANT_NAME", True),)),
    "rotate": ("make key-rotate KEY=pk_... [GRACE_HOURS=24]",
               (("--grace-hours", "POSINT_KEY_GRACE_HOURS", False), (None, "POSINT_KEY_PREFIX", True))),
    "revoke": ("make key-revoke KEY=pk_...", ((None, "POSINT_KEY_PREFIX", True),)),
}


def _database_url() -> str | None:
    run_dir = Path(os.environ.get("POSINT_RUN_DIR") or ".run").resolve()
    if not stack_running(run_dir):
        left = " (its stack.env is left from a launcher that was killed)" if (run_dir / ENV_FILE).exists() else ""
        print(f"the stack in {run_dir} is not running{left}: start it with 'make run' first", file=sys.stderr)
        return None
    env = dict(line.split("=", 1) for line in (run_dir / ENV_FILE).read_text().splitlines() if "=" in line)
    return env["DATABASE_URL"]


def key_main(action: str) -> int:
    usage, arguments = KEY_ACTIONS[action]
    options, positional = [], []
    for option, variable, required in arguments:
        value = os.environ.get(variable, "")
        if not value:
            if required:
                print(f"usage: {usage}", file=sys.stderr)
                return 2
            continue
        if option is None:
            positional.append(value)
        else:
            options.append(f"{option}={value}")  # one argument: a value starting with '-' is still a value
    database_url = _database_url()
    if database_url is None:
        return 2
    return cli.main(["key", action, "--database-url", database_url, *options, *(["--", *positional] if positional else [])])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["key"] and len(argv) == 2 and argv[1] in KEY_ACTIONS:
        return key_main(argv[1])
    name = os.environ.get("POSINT_TENANT_NAME", "")
    if not name:
        print("usage: make tenant NAME=acme", file=sys.stderr)
        return 2
    database_url = _database_url()
    if database_url is None:
        return 2
    return cli.main(["create-tenant", "--database-url", database_url, "--", name])


if __name__ == "__main__":
    raise SystemExit(main())
