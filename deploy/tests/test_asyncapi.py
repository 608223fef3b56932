"""docs/asyncapi.yaml: up to date with the contracts (regenerate with `make asyncapi`), valid
AsyncAPI 3.0.0 (the vendored official schema, offline), every reference resolves, and every topic
and registered message type is described."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from posint_common import asyncapi
from posint_common.contracts import MESSAGE_MODELS, topics

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCUMENT = DOCS / "asyncapi.yaml"
SCHEMA = DOCS / "schemas" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


@pytest.fixture(scope="module")
def committed() -> dict:
    return yaml.safe_load(DOCUMENT.read_text())


def test_committed_document_is_current():
    assert DOCUMENT.read_text() == asyncapi.render(), "docs/asyncapi.yaml is stale: run `make asyncapi`"


def test_document_is_valid_asyncapi_3(validator, committed):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(committed)]
    assert not errors, "\n".join(errors[:20])


def test_the_schema_check_rejects_a_broken_document(validator, committed):
    broken = copy.deepcopy(committed)
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2 wording
    assert not validator.is_valid(broken)


def _resolve(document: dict, pointer: str):
    node = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves(committed):
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(committed)
    assert refs
    unresolved = []
    for ref in refs:
        try:
            _resolve(committed, ref)
        except (KeyError, TypeError):
            unresolved.append(ref)
    assert not unresolved, unresolved


def test_every_topic_and_message_type_is_described():
    generated = asyncapi.document()
    assert set(generated["channels"]) == set(topics.ALL)
    carried = {message for channel in generated["channels"].values() for message in channel["messages"]}
    assert carried == set(MESSAGE_MODELS), "a registered message type needs a channel in posint_common.asyncapi.CHANNELS"
    for message_type, message in generated["components"]["messages"].items():
        assert message["headers"]["allOf"][1]["properties"]["ce_type"]["const"] == message_type
    for topic in topics.CONSUMED:
        dlq = generated["channels"][topics.dead_letter(topic)]
        assert list(dlq["messages"]) == ["posint.dead-letter.v1"]
