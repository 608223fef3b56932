"""The gateway's HTTP server, around aiohttp's: what aiohttp answers by itself never bypasses the
API's conventions, and every request leaves one access line.

aiohttp answers a request it cannot parse (bad request line or method, control bytes in a header, an
oversized line, too many headers) and an error that escapes the application in its connection
handler, before or outside any middleware, with a text body quoting the request and a log line
carrying it, header values included. aiohttp has no option for either, so ``EdgeRunner`` serves
connections with ``EdgeProtocol``, which answers both as problem+json with a request id and logs
only the error's type. An HTTPException raised before the middlewares (an unknown ``Expect``) is
turned into a problem around the application's handler.
"""
from __future__ import annotations

import traceback
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from posint_common import metrics
from posint_common.log import LineLogger, get_logger

from gateway.http import problems
from gateway.http.middleware import REQUEST_ID_KEY, ROUTE_KEY, TENANT_KEY, request_id_of

log = get_logger(__name__)
access_log = LineLogger("gateway.access")  # one line per request: the cheap way


def _frames(error: BaseException | None) -> str | None:
    """Where it failed, without the exception's text: that may quote the request."""
    return "".join(traceback.format_tb(error.__traceback__)) if error is not None else None


def _problem_for(status: int, error: BaseException | None):
    if isinstance(error, LineTooLong):
        return problems.http_problem(431)
    if isinstance(error, HttpProcessingError):
        return problems.http_problem(400)
    if status == 504:
        return problems.REPLY_TIMEOUT
    return problems.INTERNAL if status >= 500 else problems.http_problem(status)


class EdgeProtocol(RequestHandler):
    """aiohttp's connection handler with its two self-made answers and its error log replaced."""

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        if isinstance(exc, HttpProcessingError):
            log.info("http_rejected", error=type(exc).__name__)
        elif exc is not None:
            log.error("unhandled_error", error=type(exc).__name__, stack=_frames(exc))
        response = problems.respond(_problem_for(status, exc), request.get(REQUEST_ID_KEY) or request_id_of(request))
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        error = kw.get("exc_info")
        error = error if isinstance(error, BaseException) else None
        log.error("http_connection_error", error=type(error).__name__ if error else None, stack=_frames(error))


class EdgeServer(web.Server):
    def __call__(self) -> RequestHandler:
        return EdgeProtocol(self, loop=self._loop, **self._kwargs)


def _problems_for_early_http_errors(handle):
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await handle(request)
        except web.HTTPException as error:  # raised before the middlewares run, e.g. by the Expect check
            if error.status < 400:
                raise
            problem, headers = problems.from_http_exception(error)
            return problems.respond(problem, request_id_of(request), headers)

    return handler


class EdgeRunner(web.AppRunner):
    """``web.AppRunner`` serving ``EdgeProtocol`` connections and writing the access log."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, access_log_class=AccessLog, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = EdgeServer  # aiohttp takes no protocol class; EdgeServer only overrides __call__
        server.request_handler = _problems_for_early_http_errors(server.request_handler)
        return server


class AccessLog(AbstractAccessLogger):
    """One line and the HTTP metrics per request, whatever path it took (aiohttp calls this for the
    requests it rejects too). The route template, never the path, query string, headers or body."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = request.get(ROUTE_KEY)
        metrics.HTTP_REQUESTS.labels(route or "unmatched", str(response.status)).inc()
        metrics.HTTP_SECONDS.labels(route or "unmatched").observe(time)
        access_log.info(
            "http_request",
            method=request.method,
            route=route,
            status=response.status,
            duration_ms=round(time * 1000, 3),
            request_id=response.headers.get(problems.REQUEST_ID_HEADER),
            tenant_id=request.get(TENANT_KEY),
        )
