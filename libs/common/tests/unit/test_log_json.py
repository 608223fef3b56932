"""Every line a service writes is one JSON object: structlog's own events, the standard library's
loggers (aiohttp, aiokafka, asyncio, asyncpg), warnings and tracebacks included."""
import json
import subprocess
import sys
import textwrap

EMITTERS = textwrap.dedent('''
    import asyncio, logging, warnings
    from posint_common.log import configure_logging, get_logger, hidden

    configure_logging("svc", "INFO")
    log = get_logger("test")
    log.info("structlog_event", tenant_id="t1")
    logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1")
    logging.getLogger("aiokafka.consumer").warning("two\\nlines")
    logging.getLogger("aiokafka").info("aiokafka info stays below its warning floor")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("structlog_failure")
        logging.getLogger("asyncpg.pool").exception("stdlib failure")
    warnings.warn("careful", UserWarning)
    from aiohttp.http_exceptions import BadHttpMessage
    try:
        raise BadHttpMessage("Invalid header value char: b'Authorization: Bearer pk_parsererror0123456789\\x01'")
    except BadHttpMessage as error:
        logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1", exc_info=error)
    with hidden("Bearer pk_hiddenvalue1234567890"):
        try:
            raise RuntimeError("bad header Bearer pk_hiddenvalue1234567890")
        except RuntimeError:
            log.exception("leaky_failure")
            logging.getLogger("aiohttp.server").exception("leaky stdlib %s", "pk_hiddenvalue1234567890")

    async def main():
        async def fails():
            raise KeyError("never retrieved")
        task = asyncio.ensure_future(fails())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        del task
    asyncio.run(main())
    import gc; gc.collect()
''')


def run_emitters() -> list[str]:
    done = subprocess.run([sys.executable, "-c", EMITTERS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_every_line_is_a_json_object_with_service_level_and_event():
    lines = run_emitters()
    events = [json.loads(line) for line in lines]
    assert all(event["service"] == "svc" and event["level"] and event["event"] and event["timestamp"] for event in events)
    by_event = {event["event"]: event for event in events}
    assert by_event["structlog_event"]["tenant_id"] == "t1"
    assert by_event["Error handling request from 127.0.0.1"]["logger"] == "aiohttp.server"
    assert by_event["two\nlines"]["level"] == "warning"
    assert "aiokafka info stays below its warning floor" not in by_event
    assert "ValueError: boom" in by_event["structlog_failure"]["exception"]
    assert "ValueError: boom" in by_event["stdlib failure"]["exception"]
    assert any("careful" in event["event"] and event["logger"] == "py.warnings" for event in events)
    assert any("never retrieved" in json.dumps(event) for event in events)


def test_hidden_values_never_reach_a_line_not_even_inside_a_traceback():
    lines = run_emitters()
    assert not any("pk_hiddenvalue" in line or "pk_parsererror" in line for line in lines)
    assert any("(BadHttpMessage)" in json.loads(line)["event"] for line in lines)
    leaky = [json.loads(line) for line in lines if "leaky" in line]
    assert len(leaky) == 2 and all("RuntimeError" in event["exception"] for event in leaky)
