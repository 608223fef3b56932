"""Per-request work on the request/reply path (issue 11): what every API call pays is worked out once,
not per call, and the cheaper forms write exactly what the slower ones did."""
import json

import pytest
import structlog

from posint_common import log, topic_roll

GEN = "integrations.queries.g{:013d}"
TOPICS = ["integrations.queries", GEN.format(1_000), GEN.format(3_000), GEN.format(2_000), "integrations.queries.dlq",
          "integrations.queries.x.g0000000009000", "gateway.replies.abc.g0000000004000", "orders.commands"]


class Admin:
    def __init__(self, topics):
        self.topics = list(topics)

    async def list_topics(self):
        return list(self.topics)


@pytest.fixture
def matches(monkeypatch):
    """Counts every parse of a topic name (the regex behind base_of, created_ms and generations)."""
    seen = []
    pattern = topic_roll._GENERATION

    class Counting:
        def match(self, topic):
            seen.append(topic)
            return pattern.match(topic)

    monkeypatch.setattr(topic_roll, "_GENERATION", Counting())
    return seen


def test_newest_generation_per_base():
    assert topic_roll.newest_generations(TOPICS) == {
        "integrations.queries": GEN.format(3_000), "integrations.queries.x": "integrations.queries.x.g0000000009000",
        "gateway.replies.abc": "gateway.replies.abc.g0000000004000"}


async def test_targets_answer_from_the_last_refresh_without_scanning_topic_names(matches):
    admin = Admin(TOPICS)
    targets = topic_roll.Targets(admin)
    await targets.refresh()
    matches.clear()
    for _ in range(100):
        assert targets.topic_for("integrations.queries") == GEN.format(3_000)
        assert targets.topic_for("orders.commands") == "orders.commands"  # no generation yet: the base itself
    assert matches == []
    admin.topics.append(GEN.format(5_000))
    await targets.refresh()
    assert targets.topic_for("integrations.queries") == GEN.format(5_000)


async def test_rolling_reader_current_follows_its_topic_list_without_scanning(matches):
    admin = Admin(TOPICS)
    reader = topic_roll.RollingReader(consumer=None, admin=admin, bases=("integrations.queries",))
    await reader._refresh()
    matches.clear()
    for _ in range(100):
        assert reader.current("integrations.queries") == GEN.format(3_000)
    assert matches == []
    reader._set_topics(reader._topics - {GEN.format(3_000)})  # as maintain() drops expired generations
    assert reader.current("integrations.queries") == GEN.format(2_000)


EVENTS = [
    {"event": "http_request", "method": "GET", "route": "/api/v1/integrations", "status": 200, "duration_ms": 1.5,
     "request_id": "abc", "tenant": None, "service": "gateway", "level": "info", "timestamp": "2026-11-28T15:00:00Z"},
    {"event": "non-ascii é ✓ \n\t \"quoted\" \\", "nested": {"list": [1, 2.5, True, None], "k": "v"}, "tuple": (1, "a")},
    {"event": "objects", "obj": object(), "set": {"x"}, "big": 2**70, "float": 1e300},
]


@pytest.mark.parametrize("event", EVENTS, ids=["access", "text", "objects"])
def test_render_json_writes_what_structlogs_json_renderer_wrote(event):
    rendered = log.render_json(None, "info", dict(event))
    expected = structlog.processors.JSONRenderer()(None, "info", dict(event))
    assert rendered.isascii() and "\n" not in rendered
    loaded, wanted = json.loads(rendered), json.loads(expected)
    if "obj" in wanted:  # repr() of an object differs only by address; sets become lists either way
        assert loaded.pop("obj").startswith("<object object at") and wanted.pop("obj").startswith("<object object at")
        assert loaded.pop("set") == ["x"] and wanted.pop("set") in (["x"], "{'x'}")
    assert loaded == wanted


def test_render_json_writes_a_line_even_for_a_lone_surrogate():
    """aiohttp decodes undecodable header bytes with surrogateescape; such a value must not cost the line."""
    rendered = log.render_json(None, "info", {"event": "x", "value": "a\udcffb"})
    assert rendered.isascii() and json.loads(rendered) == {"event": "x", "value": "a\udcffb"}


def test_hidden_values_are_scrubbed_including_nested_blocks():
    with log.hidden("Bearer pk_outer_value_123"), log.hidden("inner-secret-456", "short"):
        event = log.scrub_hidden(None, "info", {"event": "saw pk_outer_value_123 and inner-secret-456 and short",
                                                 "escaped": repr("pk_outer_value_123\n")})
    assert "pk_outer" not in json.dumps(event) and "inner-secret" not in json.dumps(event)
    assert "short" in event["event"]  # under MIN_HIDDEN_LENGTH: not worth blanking out
    assert log.scrub_hidden(None, "info", {"event": "pk_outer_value_123"}) == {"event": "pk_outer_value_123"}  # block left


def test_secret_named_fields_are_redacted():
    event = log.redact_secrets(None, "info", {"event": "x", "Client_Secret": "s", "api_key": "k", "tenant": "t"})
    assert event == {"event": "x", "Client_Secret": log.REDACTED, "api_key": log.REDACTED, "tenant": "t"}


def test_bound_binds_for_the_block_and_restores_what_was_there(monkeypatch):
    def context():
        return structlog.contextvars.merge_contextvars(None, "info", {})

    scans = []
    copy_context = structlog.contextvars.contextvars.copy_context
    monkeypatch.setattr(structlog.contextvars.contextvars, "copy_context", lambda: scans.append(1) or copy_context())
    structlog.contextvars.bind_contextvars(service="svc")
    try:
        with log.bound(request_id="outer", tenant="t1"):
            with log.bound(request_id="inner", tenant=None):
                scans.clear()
                with log.bound(message_id="m"):
                    pass
                assert scans == []  # binding did not walk every context variable
                assert context() == {"service": "svc", "request_id": "inner", "tenant": None}
            assert context() == {"service": "svc", "request_id": "outer", "tenant": "t1"}
        assert context() == {"service": "svc"}
    finally:
        structlog.contextvars.unbind_contextvars("service")
