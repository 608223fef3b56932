"""structlog JSON logs: service, request id and tenant bound per message; secrets redacted."""
from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SECRET_MARKERS = ("password", "secret", "api_key", "apikey", "authorization", "token", "dsn", "database_url")
REDACTED = "[redacted]"


def redact_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Drop the value of any field whose name looks like a secret, so no call site can leak one."""
    for key in list(event):
        if any(marker in key.lower() for marker in SECRET_MARKERS):
            event[key] = REDACTED
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
