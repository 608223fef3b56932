"""RFC 9457 problem details: the one error shape of the HTTP API, also carried in replies."""
from __future__ import annotations

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


PROBLEM_BASE = "https://posint.dev/problems/"


def problem(status: int, slug: str, title: str, detail: str | None = None, errors: list[FieldError] | None = None) -> Problem:
    return Problem(type=PROBLEM_BASE + slug, title=title, status=status, detail=detail, errors=errors)
