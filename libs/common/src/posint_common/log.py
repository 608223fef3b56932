"""structlog JSON logs: one JSON object per line for everything a service writes, our events and the
standard library's loggers alike (aiohttp, aiokafka, asyncio, asyncpg, warnings), tracebacks inside
the object. Service, request id and tenant are bound per message; secrets are redacted by field name,
and values a request marks as hidden (its header values) are scrubbed from every field, exception
text included, so no code path, ours or a library's, can write them."""
from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, Iterator

import pydantic_core
import structlog

SECRET_MARKERS = ("password", "secret", "api_key", "apikey", "authorization", "token", "dsn", "database_url")
REDACTED = "[redacted]"
MIN_HIDDEN_LENGTH = 8  # shorter values ("1", "gzip") are not worth blanking out of every line

_hidden: ContextVar[tuple[str, ...]] = ContextVar("posint_log_hidden", default=())
_handler: logging.StreamHandler | None = None  # the one configure_logging installs
_service: str | None = None


@functools.lru_cache(maxsize=1024)
def _secret_name(key: str) -> bool:
    return any(marker in key.lower() for marker in SECRET_MARKERS)


def redact_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Drop the value of any field whose name looks like a secret, so no call site can leak one."""
    for key in list(event):
        if _secret_name(key):
            event[key] = REDACTED
    return event


@contextmanager
def hidden(*values: str) -> Iterator[None]:
    """Scrub ``values`` (and their whitespace-separated parts, e.g. the key in "Bearer <key>") from
    every line logged inside the block, in the form written and as repr() would escape it."""
    token = _hidden.set(_hidden.get() + values)  # the forms are worked out only if a line is written
    try:
        yield
    finally:
        _hidden.reset(token)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """``structlog.contextvars.bound_contextvars`` by token: the same binding and restoring, without
    its scan of every context variable on entry and exit (it runs for every request and message)."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _hidden_forms(values: tuple[str, ...]) -> tuple[str, ...]:
    forms = set()
    for value in values:
        for part in (value, *value.split()):
            if len(part) >= MIN_HIDDEN_LENGTH:
                forms.update((part, repr(part)[1:-1]))
    return tuple(sorted(forms, key=len, reverse=True))


def scrub_hidden(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    values = _hidden_forms(_hidden.get())
    if values:
        for key, field in event.items():
            if isinstance(field, str):
                for value in values:
                    field = field.replace(value, REDACTED)
                event[key] = field
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    """structlog renders through the root handler, so a library's stdlib record and our own event
    take the same path to stdout and come out as the same kind of JSON line."""
    numeric_level = logging.getLevelName(level)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    global _handler, _service
    handler = _handler = logging.StreamHandler(sys.stdout)
    _service = service
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                scrub_hidden,
                render_json,
            ],
        )
    )
    # No line carries the caller's frame, thread or process: don't work them out for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # the logging HOWTO's "Optimization" switch: skip findCaller()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, numeric_level))
    aiohttp_server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _WithoutParserText) for f in aiohttp_server.filters):
        aiohttp_server.addFilter(_WithoutParserText())
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def _fallback(value: Any) -> Any:
    """What structlog's JSONRenderer writes for a value JSON has no form for."""
    return value.__structlog__() if hasattr(value, "__structlog__") else repr(value)


def render_json(_logger: Any, _method: str, event: dict[str, Any]) -> str:
    """structlog's JSONRenderer with pydantic-core's serializer (Rust): the same ASCII-only JSON
    object, written in a fraction of the time, as every request writes an access line. What it
    refuses (a lone surrogate, from bytes decoded with surrogateescape) takes the standard library's way."""
    try:
        return pydantic_core.to_json(event, fallback=_fallback, ensure_ascii=True).decode()
    except ValueError:  # PydanticSerializationError
        return json.dumps(event, default=_fallback)


class _WithoutParserText(logging.Filter):
    """aiohttp's server logs a request it could not parse with the parser's message, which quotes the
    raw request, header values included: keep only the error's type."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and type(error).__module__ == "aiohttp.http_exceptions":
            record.msg, record.args, record.exc_info = f"{record.getMessage()} ({type(error).__name__})", (), None
        return True


def _log_uncaught(exc_type, exc_value, exc_traceback) -> None:
    logging.getLogger("uncaught").critical("uncaught_exception", exc_info=(exc_type, exc_value, exc_traceback))


class LineLogger:
    """One kind of line written once per request (the gateway's access line): the same JSON object,
    fields, redaction and handler as a structlog line written outside any bound context, built in one
    step instead of through a LogRecord and the processor chain (half the cost). Where logging
    was set up otherwise (another handler, tests capturing records) it takes the ordinary way."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stdlib = logging.getLogger(name)
        self._ordinary = get_logger(name)

    def info(self, event: str, **fields: Any) -> None:
        handler = _handler
        if handler is None or logging.getLogger().handlers != [handler] or structlog.contextvars.get_contextvars().keys() - {"service"}:
            self._ordinary.info(event, **fields)
            return
        if not self._stdlib.isEnabledFor(logging.INFO):
            return
        fields.update(event=event, service=_service, level="info", logger=self.name,
                      timestamp=datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"))
        line = render_json(None, "info", scrub_hidden(None, "info", redact_secrets(None, "info", fields)))
        with handler.lock:
            handler.stream.write(line + handler.terminator)
            handler.flush()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
