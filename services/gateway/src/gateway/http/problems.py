"""Every 4xx/5xx leaves the gateway as application/problem+json; never a stack trace."""
from __future__ import annotations

import json
from http import HTTPStatus

from aiohttp import web

from posint_common.contracts.problem import (  # noqa: F401 - validation_problem: one for the gateway and the services
    MAX_FIELD_NAME, FieldError, Problem, problem, validation_problem,
)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-Id"


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
        headers={**(headers or {}), REQUEST_ID_HEADER: request_id},
    )


HTTP_PROBLEMS = {
    400: ("bad-request", "Bad Request", "The request is not valid HTTP."),
    404: ("not-found", "Not Found", "No such resource."),
    405: ("method-not-allowed", "Method Not Allowed", None),
    413: ("payload-too-large", "Payload Too Large", "The request body is larger than the gateway accepts."),
    417: ("expectation-failed", "Expectation Failed", "Only 'Expect: 100-continue' is supported."),
    431: ("header-fields-too-large", "Request Header Fields Too Large",
          "The request line or a header field is longer than the gateway accepts."),
}
PASSED_ON_HEADERS = ("Allow",)


def from_http_exception(error: web.HTTPException) -> tuple[Problem, dict[str, str]]:
    """aiohttp's own errors (routing, body size) as problems; their text is never copied, as it may
    quote the request."""
    detail = None
    if isinstance(error, web.HTTPMethodNotAllowed):
        detail = f"Allowed methods: {', '.join(sorted(error.allowed_methods))}."
    headers = {name: error.headers[name] for name in PASSED_ON_HEADERS if name in error.headers}
    return http_problem(error.status, detail), headers


def http_problem(status: int, detail: str | None = None) -> Problem:
    slug, title, default_detail = HTTP_PROBLEMS.get(status, ("http-error", HTTPStatus(status).phrase, None))
    return problem(status, slug, title, detail or default_detail)


def malformed_json(error: json.JSONDecodeError | UnicodeDecodeError) -> Problem:
    return problem(400, "malformed-json", "Malformed JSON", f"The request body is not valid JSON: {error}")


def repeated_parameters(names: list[str]) -> Problem:
    errors = [FieldError(field=name[:MAX_FIELD_NAME], message="Give this parameter at most once.") for name in names]
    return problem(422, "validation", "Validation failed", "The query string is not valid.", errors)


def body_not_taken(method: str) -> Problem:
    return problem(400, "body-not-allowed", "Body Not Allowed", f"{method} takes no body.")


UNAUTHORIZED = problem(401, "unauthorized", "Unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'.")
BROKER_UNAVAILABLE = problem(503, "unavailable", "Service Unavailable", "The message broker is unreachable; retry later.")
SERVICE_UNAVAILABLE = problem(503, "unavailable", "Service Unavailable", "The service that owns this request is not running; retry later.")
REPLY_TIMEOUT = problem(504, "timeout", "Gateway Timeout", "The owning service did not answer in time; retry later.")
OVERLOADED = problem(503, "overloaded", "Service Unavailable", "The gateway is holding as many requests as it may; retry later.")
INTERNAL = problem(500, "internal", "Internal Server Error", "An unexpected error occurred; it was logged with this request id.")
IDEMPOTENCY_KEY_REUSED = problem(
    422, "idempotency-key-reused", "Idempotency-Key Reused",
    "This Idempotency-Key was used with a different request; use a new key for a new request.")
IDEMPOTENCY_KEY_IN_USE = problem(
    409, "idempotency-key-in-use", "Idempotency-Key In Use",
    "A request with this Idempotency-Key is still running; retry when it has finished.")


def missing_scope(scope: str, method: str) -> Problem:
    return problem(403, "insufficient-scope", "Forbidden", f"This API key lacks the '{scope}' scope, which {method} needs.")


def rate_limited(per_second: float, burst: int) -> Problem:
    return problem(429, "rate-limited", "Too Many Requests",
                   f"This API key may send {per_second:g} requests per second (bursts of {burst}); retry after Retry-After seconds.")


def too_many_in_flight(limit: int) -> Problem:
    return problem(429, "too-many-in-flight", "Too Many Requests",
                   f"This API key already has {limit} requests in flight; wait for one to finish.")
