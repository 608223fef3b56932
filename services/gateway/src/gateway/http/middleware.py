"""Request id, problem+json errors, metrics and bearer-key authentication."""
from __future__ import annotations

import re
import time
import uuid

import structlog
from aiohttp import web

from posint_common import metrics
from posint_common.log import get_logger

from gateway.http import problems
from gateway.tenants import Authenticator

log = get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_ID_KEY = web.RequestKey("request_id", str)
TENANT_KEY = web.RequestKey("tenant_id", str)
AUTHENTICATOR_KEY = web.AppKey("authenticator", Authenticator)
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})


def request_id_of(request: web.Request) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if VALID_REQUEST_ID.match(offered) else uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Outermost: every response, error or not, carries the request id and is counted."""
    request_id = request_id_of(request)
    request[REQUEST_ID_KEY] = request_id
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
        except problems.ApiError as error:
            response = problems.respond(error.body, request_id, error.headers)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            response = problems.respond(problems.from_http_exception(error), request_id)
        except Exception:
            log.exception("unhandled_error", path=request.path, method=request.method)
            response = problems.respond(problems.INTERNAL, request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        metrics.HTTP_REQUESTS.labels(route, str(response.status)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        if response.status >= 500:
            log.warning("request_failed", method=request.method, path=request.path, status=response.status)
        return response


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    tenant_id = None
    if scheme.lower() == "bearer" and key.strip():
        tenant_id = await request.app[AUTHENTICATOR_KEY].tenant_for(key.strip())
    if tenant_id is None:
        raise problems.ApiError(problems.UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="posint"'})
    request[TENANT_KEY] = tenant_id
    with structlog.contextvars.bound_contextvars(tenant=tenant_id):
        return await handler(request)
