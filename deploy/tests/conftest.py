"""What the operations files' tests share, as fixtures (test modules cannot import this file
under --import-mode=importlib): docker-compose.yml as Compose would see it (variables
interpolated from a test .env), which settings model reads each command's environment, the metric
names in a PromQL expression, promtool, and a broker and database of a test's own."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

from posint_common.testing import required_tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME; $$ is a literal $
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


# Names in PromQL that are not metric names
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
                "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, ranges, strings, grouping
    clauses and function calls left out; Grafana's $__variables count as ranges)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match[0].lower() in PROMQL_WORDS:
            continue
        names.add(match[0])
    return names


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation (the subset the spec defines for ``${...}``)."""

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        value, op = env.get(name), match["op"] or ""
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("?") and unset_or_empty:
            raise MissingVariable(f"{name}: {match['arg']}")
        if op.endswith("-") and unset_or_empty:
            return match["arg"]
        return value or ""

    return _VARIABLE.sub(replace, text)


def variables_used(text: str) -> set[str]:
    return {m["braced"] or m["plain"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def example_variables() -> set[str]:
    return {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z_]+=", line)}


def load_compose(env: dict[str, str]) -> dict:
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), env))


@pytest.fixture
def compose_env() -> dict[str, str]:
    """A filled-in .env, as an operator makes it from compose.env.example."""
    from integrations.adapters.vault import new_key_entry

    return {"POSTGRES_PASSWORD": "c0mpose-test-password", "INTEGRATIONS_ENCRYPTION_KEYS": new_key_entry("kid1"),
            "WEBHOOKS_ENCRYPTION_KEYS": new_key_entry("wkid1"), "TRANSPORT_KEYS": new_key_entry("tkid1")}


@pytest.fixture
def compose(compose_env) -> dict:
    return load_compose(compose_env)


@pytest.fixture
def ops():
    """The helpers above, for test modules."""
    return _Ops()


class _Ops:
    root = ROOT
    compose_file = COMPOSE_FILE
    env_example = ENV_EXAMPLE
    MissingVariable = MissingVariable
    interpolate = staticmethod(interpolate)
    variables_used = staticmethod(variables_used)
    example_variables = staticmethod(example_variables)
    load_compose = staticmethod(load_compose)
    metric_names = staticmethod(metric_names)

    @staticmethod
    def settings_models() -> dict[str, type]:
        return settings_models()

    @staticmethod
    def module_of(command: list[str]) -> str:
        return module_of(command)


def settings_models() -> dict[str, type]:
    """The settings model each runnable module loads (its ``__main__`` calls load_settings on it)."""
    from gateway.config import GatewaySettings
    from integrations.config import IntegrationsSettings
    from orders.config import OrdersSettings
    from posint_devstack.setup import SetupSettings
    from webhook_dispatcher.config import WebhooksSettings

    return {
        "gateway": GatewaySettings,
        "integrations": IntegrationsSettings,
        "orders": OrdersSettings,
        "webhook_dispatcher": WebhooksSettings,
        "posint_devstack.setup": SetupSettings,
    }


def module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], f"a posint container runs `python -m <module>`, not {command}"
    return command[2]


@pytest.fixture(scope="module")
async def fresh_infra(_embedded, tmp_path_factory):
    """A broker and a database of their own (on the session's Postgres), so what a test starts
    (consumer groups, outbox relays) never meets the services other tests run."""
    from posint_common.devstack.broker import EmbeddedBroker
    from posint_common.testing import Infra

    broker = EmbeddedBroker(tmp_path_factory.mktemp("fresh-tansu") / "tansu.log")
    bootstrap = broker.start()
    database = f"fresh_{os.getpid()}_{os.urandom(4).hex()}"
    admin = await asyncpg.connect(_embedded.database_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield Infra(urlunsplit(urlsplit(_embedded.database_url)._replace(path="/" + database)), bootstrap)
    finally:
        broker.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from PATH; CI installs it (deploy/prometheus/install-promtool.sh), so there a missing
    one fails, elsewhere the test is skipped saying how to get it."""
    return required_tool("promtool", "run deploy/prometheus/install-promtool.sh (.ci/run does)")
