"""``LineLogger`` (the gateway's access line, once per request) writes the very line structlog would:
same fields and order, same redaction of secret-named fields and hidden values, same level filter;
where logging is set up otherwise it takes the ordinary way. Run in a subprocess: logging is global."""
import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import logging, sys
    from posint_common.log import LineLogger, configure_logging, get_logger, hidden

    configure_logging("svc", "INFO")
    fields = dict(method="GET", route="/api/v1/x", status=200, duration_ms=1.5, request_id="r1", tenant_id=None)
    get_logger("gateway.access").info("http_request", **fields)
    LineLogger("gateway.access").info("http_request", **fields)
    with hidden("pk_hiddenvalue1234567890"):
        LineLogger("gateway.access").info("leak", api_key="k", note="saw pk_hiddenvalue1234567890")
    logging.getLogger("quiet").setLevel(logging.WARNING)
    LineLogger("quiet").info("below_the_level")
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))  # set up otherwise: the ordinary way
    LineLogger("gateway.access").info("with_another_handler")
''')


def test_line_logger_writes_what_structlog_writes_and_redacts_the_same():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    ordinary, fast, leak, other = lines
    assert list(fast) == list(ordinary)  # the same keys in the same order
    assert {k: v for k, v in fast.items() if k != "timestamp"} == {k: v for k, v in ordinary.items() if k != "timestamp"}
    assert fast["timestamp"].endswith("Z") and len(fast["timestamp"]) == len(ordinary["timestamp"])
    assert leak["api_key"] == "[redacted]" and "pk_hiddenvalue" not in leak["note"]
    assert other["event"] == "with_another_handler"
    assert "below_the_level" not in done.stdout + done.stderr
    assert "with_another_handler" in done.stderr  # the other handler got its record too
