"""Request id, problem+json errors, bearer-key authentication with scopes, and per-key limits for every
routed request.

What aiohttp answers before routing (parser errors) is handled in gateway.http.edge; the access log
line and the HTTP metrics are written there too, once per request whatever path it took."""
from __future__ import annotations

import re
import uuid

from aiohttp import web

from posint_common.log import bound, get_logger, hidden

from gateway.http import problems
from gateway.http.limits import LIMITER_KEY
from gateway.tenants import Authenticator, Principal

log = get_logger(__name__)

REQUEST_ID_HEADER = problems.REQUEST_ID_HEADER
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_ID_KEY = web.RequestKey("request_id", str)
TENANT_KEY = web.RequestKey("tenant_id", str)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
RESPONSE_HEADERS_KEY = web.RequestKey("response_headers", dict)  # added to whatever response the request gets
ROUTE_KEY = web.RequestKey("route", object)  # the route template, never the path (which may carry ids)
AUTHENTICATOR_KEY = web.AppKey("authenticator", Authenticator)
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
PUBLIC_ROUTES_KEY = web.AppKey("public_routes", frozenset)  # routes of endpoints declared auth=False
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
    with bound(request_id=request_id), hidden(*header_values):
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
        response.headers.update(request.get(RESPONSE_HEADERS_KEY) or {})
        response.headers[REQUEST_ID_HEADER] = request_id
        return response


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    public = request.match_info.route in request.app.get(PUBLIC_ROUTES_KEY, frozenset())  # authenticated by the service
    if public or request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    principal = None
    if scheme.lower() == "bearer":
        principal = await request.app[AUTHENTICATOR_KEY].principal_for(key.strip())
    if principal is None:
        raise problems.ApiError(problems.UNAUTHORIZED, UNAUTHORIZED_HEADERS)
    request[TENANT_KEY] = principal.tenant_id
    request[PRINCIPAL_KEY] = principal
    with bound(tenant=principal.tenant_id):
        return await handler(request)


@web.middleware
async def limit(request: web.Request, handler) -> web.StreamResponse:
    """Per-key limits (gateway.http.limits) for authenticated requests; their RateLimit-* headers go
    on the response whatever it is, a problem included (request_context adds them)."""
    principal, limiter = request.get(PRINCIPAL_KEY), request.app.get(LIMITER_KEY)
    if principal is None or limiter is None:
        return await handler(request)
    if not limiter.enter(principal.key_hash):
        raise problems.ApiError(problems.too_many_in_flight(limiter.max_in_flight), {"Retry-After": "1"})
    try:
        decision = await limiter.take(principal.key_hash)
        request[RESPONSE_HEADERS_KEY] = decision.headers
        if not decision.allowed:
            raise problems.ApiError(problems.rate_limited(limiter.per_second, limiter.burst),
                                    {"Retry-After": str(decision.retry_after_s)})
        return await handler(request)
    finally:
        limiter.leave(principal.key_hash)


@web.middleware
async def authorize(request: web.Request, handler) -> web.StreamResponse:
    """The key's scope: ``read`` may only GET and HEAD. After the limits, so a refused request still
    spends a token and its 403 carries the RateLimit-* headers."""
    principal = request.get(PRINCIPAL_KEY)
    if principal is not None and not principal.may(request.method):
        raise problems.ApiError(problems.missing_scope("write", request.method),
                                {"WWW-Authenticate": 'Bearer realm="posint", error="insufficient_scope", scope="write"'})
    return await handler(request)
