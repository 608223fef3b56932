"""Every 4xx/5xx leaves the gateway as application/problem+json; never a stack trace."""
from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from posint_common.contracts.problem import FieldError, Problem, problem

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """An error the handler chose, already in its final form."""

    def __init__(self, body: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__(body.title)
        self.body = body
        self.headers = headers or {}


def respond(body: Problem, request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    body = body.model_copy(update={"request_id": request_id})
    return web.Response(
        status=body.status,
        text=body.model_dump_json(exclude_none=True),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def from_http_exception(error: web.HTTPException) -> Problem:
    titles = {
        404: ("not-found", "Not Found", "No such resource."),
        405: ("method-not-allowed", "Method Not Allowed", None),
        413: ("payload-too-large", "Payload Too Large", "The request body is larger than the gateway accepts."),
    }
    slug, title, detail = titles.get(error.status, ("http-error", error.reason, None))
    if error.status == 405 and isinstance(error, web.HTTPMethodNotAllowed):
        detail = f"Allowed methods: {', '.join(sorted(error.allowed_methods))}."
    return problem(error.status, slug, title, detail)


def validation_problem(error: ValidationError, location: str) -> Problem:
    errors = [
        FieldError(field=".".join(str(part) for part in item["loc"]) or location, message=item["msg"])
        for item in error.errors()
    ]
    return problem(422, "validation", "Validation failed", f"The {location} is not valid.", errors)


def malformed_json(error: json.JSONDecodeError | UnicodeDecodeError) -> Problem:
    return problem(400, "malformed-json", "Malformed JSON", f"The request body is not valid JSON: {error}")


UNAUTHORIZED = problem(401, "unauthorized", "Unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'.")
BROKER_UNAVAILABLE = problem(503, "unavailable", "Service Unavailable", "The message broker is unreachable; retry later.")
SERVICE_UNAVAILABLE = problem(503, "unavailable", "Service Unavailable", "The service that owns this request is not running; retry later.")
REPLY_TIMEOUT = problem(504, "timeout", "Gateway Timeout", "The owning service did not answer in time; retry later.")
INTERNAL = problem(500, "internal", "Internal Server Error", "An unexpected error occurred; it was logged with this request id.")
