"""The /api/v1 endpoints, declared once: the table drives routing, validation and OpenAPI."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from posint_common.contracts import integrations, topics
from posint_common.contracts.replies import Reply

from gateway.http import problems
from gateway.http.middleware import REQUEST_ID_KEY, TENANT_KEY
from gateway.requester import BrokerUnavailable, Requester, ReplyTimeout, ServiceUnavailable

API_PREFIX = "/api/v1"
REQUESTER_KEY = web.AppKey("requester", Requester)


class ListIntegrationsParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=integrations.DEFAULT_PAGE_SIZE, ge=1, le=integrations.MAX_PAGE_SIZE, description="Page size.")
    after: int | None = Field(default=None, ge=0, description="Return integrations with an id greater than this (cursor).")


@dataclass(frozen=True)
class Call:
    """A validated request, ready to forward."""

    request: web.Request
    params: BaseModel | None
    body: BaseModel | None

    @property
    def tenant_id(self) -> str:
        return self.request[TENANT_KEY]

    @property
    def request_id(self) -> str:
        return self.request[REQUEST_ID_KEY]

    async def ask(self, topic: str, type: str, message: BaseModel, subject: str | None = None) -> Reply:
        try:
            return await self.request.app[REQUESTER_KEY].request(
                topic, type, message, tenant_id=self.tenant_id, request_id=self.request_id, subject=subject
            )
        except BrokerUnavailable:
            raise problems.ApiError(problems.BROKER_UNAVAILABLE, {"Retry-After": "1"}) from None
        except ReplyTimeout:
            raise problems.ApiError(problems.REPLY_TIMEOUT) from None
        except ServiceUnavailable:
            raise problems.ApiError(problems.SERVICE_UNAVAILABLE, {"Retry-After": "5"}) from None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    handle: Callable[[Call], Awaitable[web.Response]]
    response: type[BaseModel] | None = None
    status: int = 200
    params: type[BaseModel] | None = None
    body: type[BaseModel] | None = None


def reply_response(reply: Reply, request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    if reply.problem is not None:
        return problems.respond(reply.problem, request_id, reply.headers)
    return web.json_response(reply.body, status=reply.status, headers={**(reply.headers or {}), **(headers or {})})


def next_page_link(call: Call, body: dict | None, limit: int) -> dict[str, str]:
    """RFC 8288 Link to the next page when this one is full; the body keeps the contract's shape."""
    data = (body or {}).get("data") or []
    if len(data) < limit:
        return {}
    query = urlencode({"limit": limit, "after": data[-1]["id"]})
    return {"Link": f'<{call.request.path}?{query}>; rel="next"'}


async def list_integrations(call: Call) -> web.Response:
    params: ListIntegrationsParams = call.params
    reply = await call.ask(
        topics.INTEGRATIONS_QUERIES,
        integrations.LIST_INTEGRATIONS,
        integrations.ListIntegrations(limit=params.limit, after_id=params.after),
    )
    return reply_response(reply, call.request_id, next_page_link(call, reply.body, params.limit))


ENDPOINTS = (
    Endpoint(
        "GET", "/integrations", "List integrations", list_integrations,
        response=integrations.IntegrationList, params=ListIntegrationsParams,
    ),
)


async def read_json(request: web.Request):
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise problems.ApiError(problems.malformed_json(error)) from None


def as_view(endpoint: Endpoint):
    async def view(request: web.Request) -> web.Response:
        try:
            params = endpoint.params.model_validate(dict(request.query)) if endpoint.params else None
        except ValidationError as error:
            raise problems.ApiError(problems.validation_problem(error, "query string")) from None
        body = None
        if endpoint.body is not None:
            document = await read_json(request)
            try:
                body = endpoint.body.model_validate(document)
            except ValidationError as error:
                raise problems.ApiError(problems.validation_problem(error, "request body")) from None
        return await endpoint.handle(Call(request, params, body))

    return view


def add_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, API_PREFIX + endpoint.path, as_view(endpoint))
