"""The /api/v1 endpoints, declared once: the table drives routing, validation and OpenAPI."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Awaitable, Callable, Union, get_args, get_origin
from urllib.parse import urlencode

import pydantic_core
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from posint_common.contracts import inbound, integrations, limits, orders, topics, webhooks
from posint_common.contracts.replies import Reply
from posint_common.contracts.types import PgId
from posint_common.requests import BrokerUnavailable, Overloaded, Requester, ReplyTimeout, ServiceUnavailable

from gateway.http import idempotency, problems
from gateway.http.middleware import PUBLIC_ROUTES_KEY, REQUEST_ID_KEY, TENANT_KEY

API_PREFIX = "/api/v1"
REQUESTER_KEY = web.AppKey("requester", Requester)
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
PLAIN_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits: not "+5", " 5", "1.0", "0x10", "1_000" or other scripts' digits


def _takes_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    if get_origin(annotation) in (Annotated, Union, UnionType):
        return any(_takes_int(arg) for arg in get_args(annotation))
    return False


class QueryParams(BaseModel):
    """Base of every endpoint's query model, so every endpoint reads its query string one way: an
    unknown parameter is an error (``?lmit=5`` is not silently ignored) and an integer is written in
    plain decimal digits, not in any of the other forms pydantic would take from a string."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _plain_integers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and _takes_int(cls.model_fields[info.field_name].annotation):
            if not PLAIN_INTEGER.fullmatch(value):
                raise ValueError("must be a whole number in plain decimal digits")
        return value


class PathParams(QueryParams):
    """Base of every endpoint's path model: path segments follow the query string's rules, so a
    non-integer or out-of-range id is a 422 naming the parameter (never a 404 or a failed query)."""


class IntegrationPath(PathParams):
    id: PgId = Field(description="Integration id.")


class ListIntegrationsParams(QueryParams):
    limit: int = Field(default=integrations.DEFAULT_PAGE_SIZE, ge=1, le=integrations.MAX_PAGE_SIZE, description="Page size.")
    after: PgId | None = Field(default=None, description="Return integrations with an id greater than this (cursor).")


class ExternalOrderPath(PathParams):
    id: PgId = Field(description="External order id.")


class ListExternalOrdersParams(QueryParams):
    limit: int = Field(default=orders.DEFAULT_PAGE_SIZE, ge=1, le=orders.MAX_PAGE_SIZE, description="Page size.")
    after: PgId | None = Field(default=None, description="Return orders with an id smaller than this (cursor; newest first).")
    integration_id: PgId | None = Field(default=None, description="Only this integration's orders.")
    status: str | None = Field(default=None, max_length=200, description="One status or several, comma-separated: "
                               + ", ".join(orders.OrderStatus))
    created_after: AwareDatetime | None = Field(default=None, description="ISO 8601 with an offset; exclusive.")
    created_before: AwareDatetime | None = Field(default=None, description="ISO 8601 with an offset; exclusive.")

    @field_validator("status")
    @classmethod
    def _known_statuses(cls, value: str | None) -> str | None:
        if value is not None:
            if any(name not in {status.value for status in orders.OrderStatus} for name in value.split(",")):  # never quoted back
                raise ValueError(f"each comma-separated status must be one of: {', '.join(orders.OrderStatus)}")
        return value

    @property
    def statuses(self) -> list[orders.OrderStatus] | None:
        return sorted({orders.OrderStatus(name) for name in self.status.split(",")}) if self.status else None


@dataclass(frozen=True)
class Call:
    """A validated request, ready to forward."""

    request: web.Request
    params: BaseModel | None
    body: BaseModel | None
    path: BaseModel | None = None
    raw: bytes | None = None  # the untouched body, for an endpoint declared with raw_body_limit
    sealed: bool = False  # the endpoint's ``secrets``: its command and reply are sealed on the broker

    @property
    def tenant_id(self) -> str | None:
        """None on a public endpoint (auth=False): nobody is authenticated by a key there."""
        return self.request.get(TENANT_KEY)

    @property
    def request_id(self) -> str:
        return self.request[REQUEST_ID_KEY]

    async def ask(self, topic: str, type: str, message: BaseModel, subject: str | None = None) -> Reply:
        try:
            return await self.request.app[REQUESTER_KEY].request(
                topic, type, message, tenant_id=self.tenant_id, request_id=self.request_id, subject=subject,
                sealed=self.sealed,
            )
        except BrokerUnavailable:
            raise problems.ApiError(problems.BROKER_UNAVAILABLE, {"Retry-After": "1"}) from None
        except ReplyTimeout:
            raise problems.ApiError(problems.REPLY_TIMEOUT) from None
        except ServiceUnavailable:
            raise problems.ApiError(problems.SERVICE_UNAVAILABLE, {"Retry-After": "5"}) from None
        except Overloaded:
            raise problems.ApiError(problems.OVERLOADED, {"Retry-After": "1"}) from None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    handle: Callable[[Call], Awaitable[web.Response]]
    response: type[BaseModel] | None = None
    status: int = 200
    params: type[QueryParams] | None = None
    body: type[BaseModel] | None = None
    path_params: type[PathParams] | None = None
    errors: dict[int, str] = field(default_factory=dict)  # documented problems beyond the common ones
    auth: bool = True  # False: no API key; the owning service authenticates the request itself
    raw_body_limit: int | None = None  # set: the body is passed untouched (Call.raw), at most this many bytes; ``body`` only documents it
    body_optional: bool = False  # the body may be left out entirely: then ``body()``, its defaults
    secrets: bool = False  # its command or reply carries secrets: both sealed with TRANSPORT_KEYS (posint_common.envelope)

    def __post_init__(self) -> None:
        if self.params is not None and not issubclass(self.params, QueryParams):
            raise TypeError(f"{self.summary}: query models derive from QueryParams")
        if (self.path_params is not None) != ("{" in self.path):
            raise TypeError(f"{self.summary}: a path with parameters has a PathParams model, and only then")


def reply_response(reply: Reply, request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    if reply.problem is not None:
        return problems.respond(reply.problem, request_id, reply.headers)
    if reply.status == 204:
        return web.Response(status=204, headers={**(reply.headers or {}), **(headers or {})})
    return web.Response(body=pydantic_core.to_json(reply.body), status=reply.status, content_type="application/json",
                        charset="utf-8", headers={**(reply.headers or {}), **(headers or {})})  # Rust, not json.dumps: every read ends here


def next_page_link(call: Call, body: dict | None, limit: int, more: bool = False) -> dict[str, str]:
    """RFC 8288 Link to the next page when this one is full (or the service says it was cut short:
    ``more``); the body keeps the contract's shape."""
    data = (body or {}).get("data") or []
    if not data or (len(data) < limit and not more):
        return {}
    query = urlencode({**call.request.query, "limit": limit, "after": data[-1]["id"]})  # the filters kept
    return {"Link": f'<{call.request.path}?{query}>; rel="next"'}


async def list_integrations(call: Call) -> web.Response:
    params: ListIntegrationsParams = call.params
    reply = await call.ask(
        topics.INTEGRATIONS_QUERIES,
        integrations.LIST_INTEGRATIONS,
        integrations.ListIntegrations(limit=params.limit, after_id=params.after),
    )
    return reply_response(reply, call.request_id, next_page_link(call, reply.body, params.limit))


async def create_integration(call: Call) -> web.Response:
    reply = await call.ask(topics.INTEGRATIONS_COMMANDS, integrations.CREATE_INTEGRATION, call.body)
    return reply_response(reply, call.request_id)


async def get_integration(call: Call) -> web.Response:
    reply = await call.ask(topics.INTEGRATIONS_QUERIES, integrations.GET_INTEGRATION, integrations.IntegrationRef(id=call.path.id))
    return reply_response(reply, call.request_id)


async def update_integration(call: Call) -> web.Response:
    fields = call.body.model_dump(mode="json", exclude_unset=True)  # JSON mode writes the secrets out, for the command only
    command = integrations.UpdateIntegration.model_validate({**fields, "id": call.path.id})
    reply = await call.ask(topics.INTEGRATIONS_COMMANDS, integrations.UPDATE_INTEGRATION, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def delete_integration(call: Call) -> web.Response:
    command = integrations.IntegrationRef(id=call.path.id)
    reply = await call.ask(topics.INTEGRATIONS_COMMANDS, integrations.DELETE_INTEGRATION, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


class SyncRunPath(PathParams):
    id: PgId = Field(description="Sync run id.")


class ListSyncRunsParams(QueryParams):
    limit: int = Field(default=integrations.DEFAULT_PAGE_SIZE, ge=1, le=integrations.MAX_PAGE_SIZE, description="Page size.")
    after: PgId | None = Field(default=None, description="Return runs with an id smaller than this (cursor; newest first).")


async def start_sync(call: Call) -> web.Response:
    command = integrations.IntegrationRef(id=call.path.id)
    reply = await call.ask(topics.INTEGRATIONS_COMMANDS, integrations.START_SYNC, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def list_sync_runs(call: Call) -> web.Response:
    params: ListSyncRunsParams = call.params
    query = integrations.ListSyncRuns(integration_id=call.path.id, limit=params.limit, after_id=params.after)
    reply = await call.ask(topics.INTEGRATIONS_QUERIES, integrations.LIST_SYNC_RUNS, query, subject=str(call.path.id))
    return reply_response(reply, call.request_id, next_page_link(call, reply.body, params.limit))


async def get_sync_run(call: Call) -> web.Response:
    reply = await call.ask(topics.INTEGRATIONS_QUERIES, integrations.GET_SYNC_RUN, integrations.SyncRunRef(id=call.path.id))
    return reply_response(reply, call.request_id)


INBOUND_MAX_BYTES = limits.INBOUND_MAX_BYTES
"""1 MiB, as the contract promises. A push travels base64 in one command record and comes back,
beside its normalized form, in the order's events and replies: KAFKA_MAX_RECORD_BYTES is sized for
that (posint_common.contracts.limits)."""


async def receive_inbound(call: Call) -> web.Response:
    """Forward the push untouched: its exact bytes and the signature headers, each only when given
    once (a repeated one is ambiguous), not over-long and printable ASCII (aiohttp passes other bytes
    on as surrogates, which JSON and Postgres refuse); a header left out does not verify."""
    headers = {}
    for name in inbound.INBOUND_HEADERS:
        values = call.request.headers.getall(name, [])
        if len(values) == 1 and 0 < len(values[0]) <= inbound.MAX_HEADER_CHARS and PRINTABLE_ASCII.fullmatch(values[0]):
            headers[name] = values[0]
    command = inbound.ReceiveInboundOrder(integration_id=call.path.id, body=base64.b64encode(call.raw), headers=headers)
    reply = await call.ask(topics.INTEGRATIONS_COMMANDS, inbound.RECEIVE_INBOUND_ORDER, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def list_external_orders(call: Call) -> web.Response:
    params: ListExternalOrdersParams = call.params
    query = orders.ListExternalOrders(
        limit=params.limit, after_id=params.after, integration_id=params.integration_id, statuses=params.statuses,
        created_after=params.created_after, created_before=params.created_before,
    )
    reply = await call.ask(topics.ORDERS_QUERIES, orders.LIST_EXTERNAL_ORDERS, query)
    headers = dict(reply.headers or {})
    cut_short = headers.pop(orders.PAGE_CONTINUES, None) is not None  # a page stopped at orders.PAGE_BYTES
    reply = reply.model_copy(update={"headers": headers or None})
    return reply_response(reply, call.request_id, next_page_link(call, reply.body, params.limit, cut_short))


async def get_external_order(call: Call) -> web.Response:
    query = orders.ExternalOrderRef(id=call.path.id)
    reply = await call.ask(topics.ORDERS_QUERIES, orders.GET_EXTERNAL_ORDER, query, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def reject_external_order(call: Call) -> web.Response:
    command = orders.RejectExternalOrder(**dict(call.body), id=call.path.id)
    reply = await call.ask(topics.ORDERS_COMMANDS, orders.REJECT_EXTERNAL_ORDER, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def accept_external_order(call: Call) -> web.Response:
    """Answered once the POS took the order, refused it, or the orders service's wait ran out."""
    command = orders.AcceptExternalOrder(**dict(call.body), id=call.path.id)
    reply = await call.ask(topics.ORDERS_COMMANDS, orders.ACCEPT_EXTERNAL_ORDER, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def cancel_external_order(call: Call) -> web.Response:
    command = orders.CancelExternalOrder(**dict(call.body), id=call.path.id)
    reply = await call.ask(topics.ORDERS_COMMANDS, orders.CANCEL_EXTERNAL_ORDER, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


def order_command(type: str):
    """A command on one order that takes no body (retry-injection, ready, complete)."""
    async def handle(call: Call) -> web.Response:
        command = orders.ExternalOrderRef(id=call.path.id)
        return reply_response(await call.ask(topics.ORDERS_COMMANDS, type, command, subject=str(call.path.id)), call.request_id)
    return handle


class WebhookPath(PathParams):
    id: PgId = Field(description="Webhook endpoint id.")


class ListWebhooksParams(QueryParams):
    limit: int = Field(default=integrations.DEFAULT_PAGE_SIZE, ge=1, le=integrations.MAX_PAGE_SIZE, description="Page size.")
    after: PgId | None = Field(default=None, description="Return endpoints with an id greater than this (cursor).")


async def list_webhooks(call: Call) -> web.Response:
    params: ListWebhooksParams = call.params
    query = webhooks.ListWebhooks(limit=params.limit, after_id=params.after)
    reply = await call.ask(topics.WEBHOOKS_QUERIES, webhooks.LIST_WEBHOOKS, query)
    return reply_response(reply, call.request_id, next_page_link(call, reply.body, params.limit))


async def create_webhook(call: Call) -> web.Response:
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.CREATE_WEBHOOK, call.body)
    return reply_response(reply, call.request_id)


async def get_webhook(call: Call) -> web.Response:
    reply = await call.ask(topics.WEBHOOKS_QUERIES, webhooks.GET_WEBHOOK, webhooks.WebhookRef(id=call.path.id))
    return reply_response(reply, call.request_id)


async def update_webhook(call: Call) -> web.Response:
    command = webhooks.UpdateWebhook.model_validate({**call.body.model_dump(exclude_unset=True), "id": call.path.id})
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.UPDATE_WEBHOOK, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def delete_webhook(call: Call) -> web.Response:
    command = webhooks.WebhookRef(id=call.path.id)
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.DELETE_WEBHOOK, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def test_webhook(call: Call) -> web.Response:
    command = webhooks.WebhookRef(id=call.path.id)
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.TEST_WEBHOOK, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def rotate_webhook_secret(call: Call) -> web.Response:
    command = webhooks.WebhookRef(id=call.path.id)
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.ROTATE_SECRET, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


class DeliveryPath(PathParams):
    id: PgId = Field(description="Webhook endpoint id.")
    message_id: webhooks.MessageId


class ListDeliveriesParams(QueryParams):
    limit: int = Field(default=integrations.DEFAULT_PAGE_SIZE, ge=1, le=integrations.MAX_PAGE_SIZE, description="Page size.")
    after: PgId | None = Field(default=None, description="Return attempts older than this attempt id (cursor; newest first).")


async def list_webhook_deliveries(call: Call) -> web.Response:
    params: ListDeliveriesParams = call.params
    query = webhooks.ListDeliveries(id=call.path.id, limit=params.limit, after_id=params.after)
    reply = await call.ask(topics.WEBHOOKS_QUERIES, webhooks.LIST_DELIVERIES, query, subject=str(call.path.id))
    return reply_response(reply, call.request_id, next_page_link(call, reply.body, params.limit))


async def retry_webhook_delivery(call: Call) -> web.Response:
    command = webhooks.DeliveryRef(id=call.path.id, message_id=call.path.message_id)
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.RETRY_DELIVERY, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


async def recover_webhook(call: Call) -> web.Response:
    command = webhooks.RecoverWebhook(id=call.path.id, since=call.body.since)
    reply = await call.ask(topics.WEBHOOKS_COMMANDS, webhooks.RECOVER_WEBHOOK, command, subject=str(call.path.id))
    return reply_response(reply, call.request_id)


EVENT_TYPES = webhooks.EventTypeList(data=list(webhooks.CATALOG.values())).model_dump(mode="json")


async def list_event_types(call: Call) -> web.Response:
    """The catalog is part of the published contract: answered here, without a round trip."""
    return web.json_response(EVENT_TYPES)


NOT_FOUND = {404: "No such integration for this tenant (also: another tenant's, or deleted)"}
WEBHOOK_NOT_FOUND = {404: "No such webhook endpoint for this tenant (also: another tenant's, or deleted)"}
ORDER_NOT_FOUND = {404: "No such external order for this tenant (also: another tenant's)"}

ENDPOINTS = (
    Endpoint(
        "GET", "/integrations", "List integrations", list_integrations,
        response=integrations.IntegrationList, params=ListIntegrationsParams,
    ),
    Endpoint(
        "POST", "/integrations", "Create an integration", create_integration,
        response=integrations.NewIntegrationDocument, status=201, body=integrations.CreateIntegration,
        errors={409: "The tenant already has a live integration of this provider"}, secrets=True,
    ),
    Endpoint(
        "GET", "/integrations/{id}", "Get an integration with its health", get_integration,
        response=integrations.IntegrationDocument, path_params=IntegrationPath, errors=NOT_FOUND,
    ),
    Endpoint(
        "PATCH", "/integrations/{id}", "Change an integration's name, is_active, config or credentials", update_integration,
        response=integrations.IntegrationDocument, body=integrations.UpdateIntegrationFields, path_params=IntegrationPath,
        errors=NOT_FOUND, secrets=True,
    ),
    Endpoint(
        "DELETE", "/integrations/{id}", "Deactivate and hide an integration", delete_integration,
        status=204, path_params=IntegrationPath, errors=NOT_FOUND,
    ),
    Endpoint(
        "POST", "/integrations/{id}/sync", "Trigger a manual sync (or get the run already running)", start_sync,
        response=integrations.SyncRunStartedDocument, path_params=IntegrationPath,
        errors={**NOT_FOUND, 409: "The integration is inactive"},
    ),
    Endpoint(
        "GET", "/integrations/{id}/sync-runs", "List an integration's sync runs, newest first", list_sync_runs,
        response=integrations.SyncRunList, params=ListSyncRunsParams, path_params=IntegrationPath, errors=NOT_FOUND,
    ),
    Endpoint(
        "GET", "/sync-runs/{id}", "Get a sync run with its counts", get_sync_run,
        response=integrations.SyncRunDocument, path_params=SyncRunPath,
        errors={404: "No such sync run for this tenant (also: another tenant's, or its integration deleted)"},
    ),
    Endpoint(
        "POST", "/integrations/{id}/inbound", "Receive a signed order from the integration's platform (no API key)",
        receive_inbound, response=inbound.InboundReceiptDocument, status=202, body=inbound.NormalizedOrder,
        path_params=IntegrationPath, auth=False, raw_body_limit=INBOUND_MAX_BYTES,
        errors={400: "Malformed JSON, or a payload the provider's adapter cannot parse (kept for inspection)",
                401: "Missing or bad signature, or no such integration (not told apart)",
                404: "A cancellation of an order this integration never received",
                409: "The integration is inactive",
                413: f"Body over {INBOUND_MAX_BYTES} bytes"},
    ),
    Endpoint(
        "GET", "/external-orders", "List external orders, newest first", list_external_orders,
        response=orders.ExternalOrderList, params=ListExternalOrdersParams,
    ),
    Endpoint(
        "GET", "/external-orders/{id}", "Get an external order with its status history", get_external_order,
        response=orders.ExternalOrderDocument, path_params=ExternalOrderPath, errors=ORDER_NOT_FOUND,
    ),
    Endpoint(
        "POST", "/external-orders/{id}/reject", "Reject a received order", reject_external_order,
        response=orders.ExternalOrderDocument, body=orders.RejectOrderFields, path_params=ExternalOrderPath,
        errors={**ORDER_NOT_FOUND, 409: "The order cannot be rejected from its status (current_status, allowed_actions)"},
    ),
    Endpoint(
        "POST", "/external-orders/{id}/accept", "Accept a received order and inject it into the POS", accept_external_order,
        response=orders.ExternalOrderDocument, body=orders.AcceptOrderFields, body_optional=True,
        path_params=ExternalOrderPath,
        errors={**ORDER_NOT_FOUND, 409: "The order cannot be accepted from its status (current_status, allowed_actions)"},
    ),
    Endpoint(
        "POST", "/external-orders/{id}/retry-injection", "Send an order the POS refused to the POS again",
        order_command(orders.RETRY_INJECTION), response=orders.ExternalOrderDocument, path_params=ExternalOrderPath,
        errors={**ORDER_NOT_FOUND, 409: "The order is not accepted (current_status, allowed_actions)"},
    ),
    Endpoint(
        "POST", "/external-orders/{id}/ready", "Mark an accepted order ready (for a POS that does not report it)",
        order_command(orders.MARK_READY), response=orders.ExternalOrderDocument, path_params=ExternalOrderPath,
        errors={**ORDER_NOT_FOUND, 409: "The order cannot become ready from its status (current_status, allowed_actions)"},
    ),
    Endpoint(
        "POST", "/external-orders/{id}/complete", "Mark an order completed (for a POS that does not report it)",
        order_command(orders.COMPLETE_EXTERNAL_ORDER), response=orders.ExternalOrderDocument,
        path_params=ExternalOrderPath,
        errors={**ORDER_NOT_FOUND, 409: "The order cannot be completed from its status (current_status, allowed_actions)"},
    ),
    Endpoint(
        "POST", "/external-orders/{id}/cancel", "Cancel an order", cancel_external_order,
        response=orders.ExternalOrderDocument, body=orders.CancelOrderFields, path_params=ExternalOrderPath,
        errors={**ORDER_NOT_FOUND, 409: "The order cannot be cancelled from its status (current_status, allowed_actions)"},
    ),
    Endpoint(
        "GET", "/webhooks/event-types", "The events a webhook endpoint can subscribe to, with example payloads",
        list_event_types, response=webhooks.EventTypeList,
    ),
    Endpoint(
        "GET", "/webhooks", "List webhook endpoints", list_webhooks, response=webhooks.WebhookList, params=ListWebhooksParams,
    ),
    Endpoint(
        "POST", "/webhooks", "Register a webhook endpoint (its signing secret is shown only in this answer)",
        create_webhook, response=webhooks.NewWebhookDocument, status=201, body=webhooks.CreateWebhook,
        errors={404: "integration_id is not one of this tenant's integrations"}, secrets=True,
    ),
    Endpoint(
        "GET", "/webhooks/{id}", "Get a webhook endpoint", get_webhook,
        response=webhooks.WebhookDocument, path_params=WebhookPath, errors=WEBHOOK_NOT_FOUND,
    ),
    Endpoint(
        "PATCH", "/webhooks/{id}", "Change a webhook endpoint's url, events or is_active", update_webhook,
        response=webhooks.WebhookDocument, body=webhooks.UpdateWebhookFields, path_params=WebhookPath,
        errors=WEBHOOK_NOT_FOUND,
    ),
    Endpoint(
        "DELETE", "/webhooks/{id}", "Delete a webhook endpoint", delete_webhook,
        status=204, path_params=WebhookPath, errors=WEBHOOK_NOT_FOUND,
    ),
    Endpoint(
        "POST", "/webhooks/{id}/test", "Send a signed webhook.test ping now and return the attempt's result",
        test_webhook, response=webhooks.DeliveryAttemptDocument, path_params=WebhookPath, errors=WEBHOOK_NOT_FOUND,
    ),
    Endpoint(
        "POST", "/webhooks/{id}/rotate-secret", "New signing secret; for a while messages carry signatures with both",
        rotate_webhook_secret, response=webhooks.NewSecretDocument, path_params=WebhookPath, errors=WEBHOOK_NOT_FOUND,
        secrets=True,
    ),
    Endpoint(
        "GET", "/webhooks/{id}/deliveries", "The endpoint's delivery attempts, newest first", list_webhook_deliveries,
        response=webhooks.DeliveryList, params=ListDeliveriesParams, path_params=WebhookPath, errors=WEBHOOK_NOT_FOUND,
    ),
    Endpoint(
        "POST", "/webhooks/{id}/deliveries/{message_id}/retry", "Send one message to the endpoint again now",
        retry_webhook_delivery, response=webhooks.ResendDocument, status=202, path_params=DeliveryPath,
        errors={404: "No such webhook endpoint for this tenant, or no such message to it"},
    ),
    Endpoint(
        "POST", "/webhooks/{id}/recover", "Send again every message to the endpoint that failed since a time",
        recover_webhook, response=webhooks.RecoveryDocument, status=202, body=webhooks.RecoverFields,
        path_params=WebhookPath, errors=WEBHOOK_NOT_FOUND,
    ),
)


async def read_json(request: web.Request):
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise problems.ApiError(problems.malformed_json(error)) from None


async def read_raw(request: web.Request, limit: int) -> bytes:
    """The body as sent; past ``limit`` a 413 (aiohttp's own limit, MAX_BODY_BYTES, applies first)."""
    body = await request.read()
    if len(body) > limit:
        raise problems.ApiError(problems.http_problem(413, f"This endpoint takes at most {limit} bytes."))
    return body


def parse_path(model: type[PathParams], request: web.Request) -> PathParams:
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as error:
        raise problems.ApiError(problems.validation_problem(error, "path")) from None


def parse_query(model: type[QueryParams], request: web.Request) -> QueryParams:
    repeated = sorted({name for name in request.query if len(request.query.getall(name)) > 1})
    if repeated:
        raise problems.ApiError(problems.repeated_parameters(repeated))
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        raise problems.ApiError(problems.validation_problem(error, "query string")) from None


async def parse_body(model: type[BaseModel] | None, request: web.Request) -> BaseModel | None:
    if model is None:
        if request.body_exists:  # refused rather than ignored; read first, so past the size limit it is a 413
            body = await request.read()
            if request.method == "POST" and body.strip() in (b"", b"{}"):  # what many clients send by default
                return None
            raise problems.ApiError(problems.body_not_taken(request.method))
        return None
    document = await read_json(request)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise problems.ApiError(problems.validation_problem(error, "request body")) from None


def as_view(endpoint: Endpoint):
    async def view(request: web.Request) -> web.Response:
        path = parse_path(endpoint.path_params, request) if endpoint.path_params else None
        params = parse_query(endpoint.params or QueryParams, request)
        if endpoint.body_optional and not request.body_exists:
            body, raw = endpoint.body(), None
        elif endpoint.raw_body_limit is None:
            body, raw = await parse_body(endpoint.body, request), None
        else:
            body, raw = None, await read_raw(request, endpoint.raw_body_limit)
        call = Call(request, params if endpoint.params else None, body, path, raw, endpoint.secrets)
        store = request.app.get(idempotency.STORE_KEY)
        if keyed and store is not None:
            return await store.run(request, request[TENANT_KEY], lambda: endpoint.handle(call))  # validated first: a 422 claims no key
        return await endpoint.handle(call)

    keyed = idempotency.applies(endpoint.method, endpoint.auth)

    return view


def add_routes(app: web.Application) -> None:
    public = set()
    for endpoint in ENDPOINTS:
        view = as_view(endpoint)
        routes = [app.router.add_route(endpoint.method, API_PREFIX + endpoint.path, view)]
        if endpoint.method == "GET":  # HEAD answers what GET would, without the body
            routes.append(app.router.add_route("HEAD", API_PREFIX + endpoint.path, view))
        if not endpoint.auth:
            public.update(routes)
    app[PUBLIC_ROUTES_KEY] = frozenset(public)
