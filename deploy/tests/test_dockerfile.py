"""The Dockerfile and .dockerignore checked offline (no Docker engine here): official Python 3.11
slim base, pinned installs, every package the Makefile installs, a numeric non-root user, a build
context without secrets or local state, and a runnable module behind every compose command."""
from __future__ import annotations

import importlib.util
import re
import shlex

ROOT_FILES = ("Dockerfile", ".dockerignore", "Makefile")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip()]


def stages(text: str) -> list[list[tuple[str, str]]]:
    found = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_every_stage_is_the_official_python_311_slim(ops):
    for stage in stages((ops.root / "Dockerfile").read_text()):
        image = stage[0][1].split()[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_runs_as_a_numeric_non_root_user(ops):
    final = stages((ops.root / "Dockerfile").read_text())[-1]
    users = [arguments for name, arguments in final if name == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes' runAsNonRoot can verify it"


def test_installs_every_package_the_makefile_installs_with_the_pins(ops):
    makefile = (ops.root / "Makefile").read_text()
    packages = set(re.search(r"^PACKAGES := (.*)$", makefile, re.M)[1].split()) - {"-e"}
    runs = [arguments for stage in stages((ops.root / "Dockerfile").read_text())
            for name, arguments in stage if name == "RUN" and "pip install" in arguments]
    assert len(runs) == 1
    words = shlex.split(runs[0])
    assert words[words.index("-c") + 1] == "constraints.txt"
    installed = {words[i + 1] for i, word in enumerate(words) if word == "-e"}
    assert installed == packages


def test_build_context_has_what_the_image_needs_and_no_secrets_or_local_state(ops):
    patterns = [line.strip() for line in (ops.root / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in ("constraints.txt", "libs/common/pyproject.toml", "libs/common/src/posint_common/runtime.py",
                 "services/gateway/migrations/0001_tenants.sql", "services/integrations/src/integrations/config.py"):
        assert not ignored(path, patterns), f"{path} must reach the build"
    for path in (".env", ".venv/bin/python", ".run/api-key", ".run/integrations-keys", ".git/config",
                 "services/gateway/tests/e2e/conftest.py", "libs/common/src/posint_common/__pycache__/x.pyc",
                 "deploy/compose.env.example", "services/gateway/src/posint_gateway.egg-info/PKG-INFO"):
        assert ignored(path, patterns), f"{path} must stay out of the build context"
    copied = [arguments.split()[0] for stage in stages((ops.root / "Dockerfile").read_text())
              for name, arguments in stage if name == "COPY" and not arguments.startswith("--from")]
    for source in copied:
        assert (ops.root / source).exists() and not ignored(source.rstrip("/"), patterns), source


def test_every_compose_command_is_a_runnable_module_of_the_image(compose, ops):
    for name, spec in compose["services"].items():
        if spec.get("image") != "posint:local":
            continue
        module = ops.module_of(spec["command"])
        runnable = importlib.util.find_spec(module + ".__main__") if importlib.util.find_spec(module).submodule_search_locations else importlib.util.find_spec(module)
        assert runnable is not None, f"{name}: python -m {module} has nothing to run"
        if "healthcheck" in spec:
            assert spec["healthcheck"]["test"][:2] == ["CMD", "python"], f"{name}: the slim image has no curl"
