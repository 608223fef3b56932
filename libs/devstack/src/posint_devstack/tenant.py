"""``make tenant NAME=acme``: a new tenant on the stack running from POSINT_RUN_DIR.

The name arrives verbatim in POSINT_TENANT_NAME (the Makefile never lets make or a shell expand
it) and is stored as typed. A stack.env left by a killed launcher is refused, not trusted."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway import cli

from posint_devstack.launcher import ENV_FILE, stack_running


def main() -> int:
    name = os.environ.get("POSINT_TENANT_NAME", "")
    run_dir = Path(os.environ.get("POSINT_RUN_DIR") or ".run").resolve()
    if not name:
        print("usage: make tenant NAME=acme", file=sys.stderr)
        return 2
    if not stack_running(run_dir):
        left = " (its stack.env is left from a launcher that was killed)" if (run_dir / ENV_FILE).exists() else ""
        print(f"the stack in {run_dir} is not running{left}: start it with 'make run' first", file=sys.stderr)
        return 2
    env = dict(line.split("=", 1) for line in (run_dir / ENV_FILE).read_text().splitlines() if "=" in line)
    return cli.main(["create-tenant", "--database-url", env["DATABASE_URL"], "--", name])


if __name__ == "__main__":
    raise SystemExit(main())
