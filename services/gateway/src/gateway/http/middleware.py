"""Request id, problem+json errors and bearer-key authentication for every routed request.

What aiohttp answers before routing (parser errors) is handled in gateway.http.edge; the access log
line and the HTTP metrics are written there too, once per request whatever path it took."""
from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web

from posint_common.log import get_logger, hidden

from gateway.http import problems
from gateway.tenants import Authenticator

log = get_logger(__name__)

REQUEST_ID_HEADER = problems.REQUEST_ID_HEADER
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_ID_KEY = web.RequestKey("request_id", str)
TENANT_KEY = web.RequestKey("tenant_id", str)
ROUTE_KEY = web.RequestKey("route", object)  # the route template, never the path (which may carry ids)
AUTHENTICATOR_KEY = web.AppKey("authenticator", Authenticator)
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="posint"'}


def request_id_of(request: web.BaseRequest) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if VALID_REQUEST_ID.match(offered) else uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Outermost: every response, error or not, carries the request id; no header value can reach a
    log line written while the request is handled, tracebacks included."""
    request_id = request_id_of(request)
    request[REQUEST_ID_KEY] = request_id
    resource = request.match_info.route.resource if request.match_info.http_exception is None else None
    request[ROUTE_KEY] = resource.canonical if resource is not None else None
    header_values = (value for value in request.headers.values() if value != request_id)  # the id is logged on purpose
    with structlog.contextvars.bound_contextvars(request_id=request_id), hidden(*header_values):
        try:
            response = await handler(request)
        except problems.ApiError as error:
            response = problems.respond(error.body, request_id, error.headers)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            problem, headers = problems.from_http_exception(error)
            response = problems.respond(problem, request_id, headers)
        except Exception:
            log.exception("unhandled_error", method=request.method, route=request[ROUTE_KEY])
            response = problems.respond(problems.INTERNAL, request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    tenant_id = None
    if scheme.lower() == "bearer":
        tenant_id = await request.app[AUTHENTICATOR_KEY].tenant_for(key.strip())
    if tenant_id is None:
        raise problems.ApiError(problems.UNAUTHORIZED, UNAUTHORIZED_HEADERS)
    request[TENANT_KEY] = tenant_id
    with structlog.contextvars.bound_contextvars(tenant=tenant_id):
        return await handler(request)
