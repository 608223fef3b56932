"""Faults a fake platform can be told to inject into its next answers: a timeout (the answer comes
too late), 429 with ``Retry-After``, 500, a malformed body, a dropped connection. Each fault applies
to the next ``times`` requests (``lost_answer``: the request is carried out, then its answer held
back past the client's timeout, as when a write succeeds but the response is lost) whose path contains ``path`` (any API request when None); control
and health requests are never affected."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

FaultKind = Literal["timeout", "lost_answer", "429", "500", "malformed", "drop"]
KINDS = ("timeout", "lost_answer", "429", "500", "malformed", "drop")


@dataclass
class Fault:
    kind: FaultKind
    times: int = 1
    path: str | None = None
    retry_after: float | None = None  # for 429 (and 500 if set): seconds, sent as Retry-After
    delay_s: float = 30.0  # for timeout and lost_answer: how long the answer is held back

    @classmethod
    def from_json(cls, document: dict) -> "Fault":
        kind = str(document.get("kind"))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        retry_after = document.get("retry_after")
        return cls(kind=kind, times=int(document.get("times", 1)), path=document.get("path"),  # type: ignore[arg-type]
                   retry_after=float(retry_after) if retry_after is not None else None,
                   delay_s=float(document.get("delay_s", 30.0)))


class FaultPlan:
    """The faults still to inject, in order; ``take`` consumes one use of the first that matches."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.injected: list[tuple[str, str]] = []  # (kind, path) of every fault served

    def add(self, fault: Fault) -> None:
        if fault.times > 0:
            self.pending.append(fault)

    def clear(self) -> None:
        self.pending.clear()

    def take(self, path: str) -> Fault | None:
        for fault in self.pending:
            if fault.path is None or fault.path in path:
                fault.times -= 1
                if fault.times <= 0:
                    self.pending.remove(fault)
                self.injected.append((fault.kind, path))
                return fault
        return None


async def answer(fault: Fault, request: web.Request) -> web.StreamResponse:
    """The faulty answer itself."""
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    if fault.kind == "timeout":
        await asyncio.sleep(fault.delay_s)
        return web.json_response({"late": True})
    if fault.kind == "429":
        return web.json_response({"error": "rate_limited"}, status=429, headers=headers)
    if fault.kind == "500":
        return web.json_response({"error": "internal"}, status=500, headers=headers)
    if fault.kind == "malformed":
        return web.Response(body=b'{"orders": [ not json', content_type="application/json")
    transport = request.transport  # drop: close the connection without an answer
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError()
