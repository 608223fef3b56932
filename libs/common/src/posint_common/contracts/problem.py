"""RFC 9457 problem details: the one error shape of the HTTP API, also carried in replies."""
from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError


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
    # Extension members of a 409 on a resource with a lifecycle (an external order): where it
    # stands and the actions still allowed from there.
    current_status: str | None = None
    allowed_actions: list[str] | None = None


PROBLEM_BASE = "https://posint.dev/problems/"


def problem(status: int, slug: str, title: str, detail: str | None = None, errors: list[FieldError] | None = None) -> Problem:
    return Problem(type=PROBLEM_BASE + slug, title=title, status=status, detail=detail, errors=errors)


MAX_FIELD_NAME = 100  # a field is named back, but never at any length


def field_errors(error: ValidationError, prefix: tuple[str, ...] = ()) -> list[FieldError]:
    """Each bad field by its dotted path under ``prefix`` (``config.store_id``); the message only,
    never the input, which may be a secret."""
    return [
        FieldError(field=".".join(str(part) for part in (*prefix, *item["loc"]))[:MAX_FIELD_NAME], message=item["msg"])
        for item in error.errors(include_input=False)
    ]


def validation_problem(error: ValidationError | list[FieldError], location: str) -> Problem:
    """422 naming each bad field, or ``location`` for an error about the whole."""
    errors = field_errors(error) if isinstance(error, ValidationError) else error
    errors = [item if item.field else item.model_copy(update={"field": location}) for item in errors]
    return problem(422, "validation", "Validation failed", f"The {location} is not valid.", errors)
