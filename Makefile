# posint: `make run` starts the whole stack, `make test` runs the whole suite. Both need only python3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e libs/common -e services/integrations -e services/orders -e services/webhook-dispatcher -e services/gateway -e libs/devstack -e sandbox
STAMP := $(VENV)/.installed
# NAME (and make key-*'s TENANT, KEY, SCOPE, GRACE_HOURS) and POSINT_RUN_DIR reach the recipes verbatim, through the environment: make never expands
# them (a command-line `$(shell ...)` would run) and no shell ever parses them.
unexport NAME TENANT KEY SCOPE GRACE_HOURS
override POSINT_RUN_DIR := $(or $(value POSINT_RUN_DIR),.run)
export POSINT_RUN_DIR

.PHONY: run test bench tenant key-create key-list key-rotate key-revoke install clean order

$(STAMP): constraints.txt requirements-dev.txt libs/common/pyproject.toml libs/devstack/pyproject.toml services/*/pyproject.toml sandbox/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt $(PACKAGES)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m posint_devstack

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

# a test order on the sandbox DoorDash of the running stack, pushed signed to its inbound URL
order: $(STAMP)
	@$(BIN)/python -m posint_devstack.order

tenant: export POSINT_TENANT_NAME := $(value NAME)
tenant: $(STAMP)
	@$(BIN)/python -m posint_devstack.tenant

# API keys on the running stack (python -m gateway.cli key ...); each value reaches it verbatim, as NAME does.
key-create: export POSINT_TENANT_NAME := $(value TENANT)
key-create: export POSINT_KEY_NAME := $(value NAME)
key-create: export POSINT_KEY_SCOPE := $(value SCOPE)
key-list: export POSINT_TENANT_NAME := $(value TENANT)
key-rotate: export POSINT_KEY_PREFIX := $(value KEY)
key-rotate: export POSINT_KEY_GRACE_HOURS := $(value GRACE_HOURS)
key-revoke: export POSINT_KEY_PREFIX := $(value KEY)
key-create key-list key-rotate key-revoke: $(STAMP)
	@$(BIN)/python -m posint_devstack.tenant key $(@:key-%=%)

clean:
	rm -rf $(VENV)

# docs/asyncapi.yaml from the published contracts (a test fails when it is stale)
.PHONY: asyncapi
asyncapi: $(STAMP)
	$(BIN)/python -m posint_common.asyncapi > docs/asyncapi.yaml.tmp && mv docs/asyncapi.yaml.tmp docs/asyncapi.yaml
