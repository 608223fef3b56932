# posint: `make run` starts the whole stack, `make test` runs the whole suite. Both need only python3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := -e libs/common -e services/integrations -e services/orders -e services/webhook-dispatcher -e services/gateway -e libs/devstack
STAMP := $(VENV)/.installed
RUN_DIR := $(or $(POSINT_RUN_DIR),.run)

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

tenant: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make tenant NAME=acme" >&2; exit 2)
	@test -f "$(RUN_DIR)/stack.env" || (echo "no running stack in $(RUN_DIR): start it with 'make run' first" >&2; exit 2)
	@. "$(RUN_DIR)/stack.env" && $(BIN)/python -m gateway.cli create-tenant "$(NAME)" --database-url "$$DATABASE_URL"

clean:
	rm -rf $(VENV)
