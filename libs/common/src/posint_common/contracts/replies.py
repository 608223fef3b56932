"""The answer to a command or query, sent to the requester's reply topic (``gateway.replies``, ``webhooks.replies``)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from posint_common.contracts.problem import Problem

REPLY = "posint.gateway.reply.v1"
DEAD_LETTER = "posint.dead-letter.v1"


class Reply(BaseModel):
    """Either a body for a 2xx status or a problem for a 4xx/5xx one."""

    status: int
    body: dict[str, Any] | None = None
    problem: Problem | None = None
    headers: dict[str, str] | None = None


class DeadLetter(BaseModel):
    """A message that kept failing, with where it came from and why."""

    topic: str
    partition: int
    offset: int
    consumer: str
    error: str
    attempts: int
    original_headers: dict[str, str]
    original_value: str
