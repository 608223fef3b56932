# posint: `make run` starts the whole stack, `make test` runs the whole suite. Both need only python3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e libs/common -e services/integrations -e services/orders -e services/webhook-dispatcher -e services/gateway -e libs/devstack
STAMP := $(VENV)/.installed
# NAME and POSINT_RUN_DIR reach the recipes verbatim, through the environment: make never expands
# them (a command-line `$(shell ...)` would run) and no shell ever parses them.
unexport NAME
override POSINT_RUN_DIR := $(or $(value POSINT_RUN_DIR),.run)
export POSINT_RUN_DIR

.PHONY: run test bench tenant install clean

$(STAMP): constraints.txt requirements-dev.txt libs/common/pyproject.toml libs/devstack/pyproject.toml services/*/pyproject.toml
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

tenant: export POSINT_TENANT_NAME := $(value NAME)
tenant: $(STAMP)
	@$(BIN)/python -m posint_devstack.tenant

clean:
	rm -rf $(VENV)
