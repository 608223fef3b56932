"""The gateway's aiohttp application factory."""
from aiohttp import web

from posint_common.requests import Requester

from gateway.http.endpoints import REQUESTER_KEY, add_routes
from gateway.http.idempotency import STORE_KEY, IdempotencyStore
from gateway.http.limits import LIMITER_KEY, KeyLimiter
from gateway.http.middleware import AUTHENTICATOR_KEY, authenticate, authorize, limit, request_context
from gateway.http.openapi import add_openapi_route
from gateway.tenants import Authenticator


def create_app(requester: Requester, authenticator: Authenticator, max_body_bytes: int,
               idempotency: IdempotencyStore | None = None, limiter: KeyLimiter | None = None,
               controls: bool = True) -> web.Application:
    """``controls=False`` (REQUEST_CONTROLS, for the bench only) leaves out the limit and scope middlewares."""
    middlewares = [request_context, authenticate, limit, authorize] if controls else [request_context, authenticate]
    app = web.Application(middlewares=middlewares, client_max_size=max_body_bytes)
    app[REQUESTER_KEY] = requester
    app[AUTHENTICATOR_KEY] = authenticator
    if idempotency is not None:
        app[STORE_KEY] = idempotency
    if limiter is not None:
        app[LIMITER_KEY] = limiter
    add_routes(app)
    add_openapi_route(app)
    return app
