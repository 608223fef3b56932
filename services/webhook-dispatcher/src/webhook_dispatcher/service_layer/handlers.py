"""Managing webhook endpoints: the get and list queries, the create, update and delete commands,
and what the dispatcher learns of integrations from their events.

Commands run in the consumer's transaction with their inbox row; their reply goes to the outbox in
that transaction. An answer the requester must act on (404, 422, 503) is a reply, never an exception.

An endpoint's integration must be one of the tenant's live integrations. The dispatcher knows them
from integrations.events; one it has not learnt yet (created a moment ago: the event is still on its
way) is asked of the integrations service, its owner, and learnt from the answer as from the event.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from posint_common.consumer import MessageContext
from posint_common.contracts import integrations as integration_events, webhooks as contract
from posint_common.contracts.problem import FieldError, problem, validation_problem
from posint_common.contracts.replies import Reply
from posint_common.egress import EgressPolicy

from webhook_dispatcher.adapters import messages
from webhook_dispatcher.adapters.integrations import IntegrationDirectory, IntegrationsUnavailable
from webhook_dispatcher.adapters.repository import EndpointRepository, learn_integration
from webhook_dispatcher.adapters.sender import Sender
from webhook_dispatcher.adapters.vault import KeyRing, associated_data
from webhook_dispatcher.domain.model import Endpoint, new_secret, url_error


def not_found(what: str, id: int) -> Reply:
    return Reply(status=404, problem=problem(404, "not-found", "Not Found", f"No {what} {id}."))


def integrations_unavailable(integration_id: int, error: IntegrationsUnavailable) -> Reply:
    """Retryable: the owner of integrations could not say whether the integration exists (never a false 404)."""
    detail = f"The integrations service {error.why}, so integration {integration_id} could not be checked; retry later."
    return Reply(status=503, problem=problem(503, "unavailable", "Service Unavailable", detail),
                 headers={"Retry-After": str(error.retry_after_s)})


def view(endpoint: Endpoint) -> contract.WebhookView:
    return contract.WebhookView(id=endpoint.id, integration_id=endpoint.integration_id, url=endpoint.url,
                                events=endpoint.events, is_active=endpoint.is_active, created_at=endpoint.created_at)


def document(status: int, model, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=model.model_dump(mode="json"), headers=headers)


@dataclass(frozen=True)
class WebhookHandlers:
    keys: KeyRing
    egress: EgressPolicy
    sender: Sender
    allow_http: bool = False
    rotation_overlap_s: float = 86_400
    test_timeout_s: float = 4.0  # a test ping's answer must fit the gateway's reply timeout (5 s)
    integrations: IntegrationDirectory | None = None  # None: only what integrations.events taught

    def _repository(self, ctx: MessageContext) -> EndpointRepository:
        return EndpointRepository(ctx.conn, ctx.envelope.tenantid)

    def _url_problem(self, url: str) -> Reply | None:
        error = url_error(url, self.allow_http, self.egress)
        if error is None:
            return None
        return Reply(status=422, problem=validation_problem([FieldError(field="url", message=error)], "request body"))

    async def create(self, ctx: MessageContext, command: contract.CreateWebhook) -> Reply:
        refused = self._url_problem(command.url)
        if refused is not None:
            return refused
        repository, tenant_id = self._repository(ctx), ctx.envelope.tenantid
        if (refused := await self._integration_problem(ctx, repository, command.integration_id)) is not None:
            return refused
        new_id, secret = await repository.next_id(), new_secret()
        sealed = self.keys.seal(secret.encode(), associated_data(tenant_id, new_id))
        created = await repository.create(new_id, command.integration_id, command.url, list(dict.fromkeys(command.events)), sealed)
        shown = contract.NewWebhook(**view(created).model_dump(), secret=secret)
        return document(201, contract.NewWebhookDocument(data=shown), {"Location": f"/api/v1/webhooks/{created.id}"})

    async def _integration_problem(self, ctx: MessageContext, repository: EndpointRepository,
                                   integration_id: int) -> Reply | None:
        """None when the integration is one of the tenant's live ones, else the answer (404, or 503
        when the integrations service cannot say in time). Asking happens only for an integration
        not known here, inside this command's transaction, and holds the command consumer for at most
        the lookup's bound: it handles a partition in order and fetches the next batch once the whole
        batch is done. Stopping the service mid-question cancels it: the command is handled again
        after the restart (inbox)."""
        if await repository.integration_known(integration_id):
            return None
        if self.integrations is None:
            return not_found("integration", integration_id)
        try:
            facts = await self.integrations.lookup(ctx.envelope.tenantid, integration_id, ctx.envelope.correlationid)
        except IntegrationsUnavailable as error:
            return integrations_unavailable(integration_id, error)
        if facts is None:
            return not_found("integration", integration_id)
        # As the integration-created event would; when it arrives it is an idempotent update.
        await learn_integration(ctx.conn, facts.id, ctx.envelope.tenantid, facts.provider, is_active=facts.is_active,
                                deleted=False, at=facts.updated_at)
        if not await repository.integration_known(integration_id):  # a deletion learnt meanwhile stays
            return not_found("integration", integration_id)
        return None

    async def get(self, ctx: MessageContext, query: contract.WebhookRef) -> Reply:
        endpoint = await self._repository(ctx).get(query.id)
        if endpoint is None:
            return not_found("webhook", query.id)
        return document(200, contract.WebhookDocument(data=view(endpoint)))

    async def list(self, ctx: MessageContext, query: contract.ListWebhooks) -> Reply:
        page = await self._repository(ctx).page(query.limit, query.after_id)
        return document(200, contract.WebhookList(data=[view(endpoint) for endpoint in page]))

    async def update(self, ctx: MessageContext, command: contract.UpdateWebhook) -> Reply:
        repository = self._repository(ctx)
        current = await repository.get(command.id, for_update=True)
        if current is None:
            return not_found("webhook", command.id)
        given = command.model_fields_set
        if "url" in given and (refused := self._url_problem(command.url)) is not None:
            return refused
        updated = await repository.update(
            current.id,
            url=command.url if "url" in given else current.url,
            events=list(dict.fromkeys(command.events)) if "events" in given else current.events,
            is_active=command.is_active if "is_active" in given else current.is_active,
        )
        return document(200, contract.WebhookDocument(data=view(updated)))

    async def test(self, ctx: MessageContext, command: contract.WebhookRef) -> Reply:
        """Send a signed ``webhook.test`` now and answer with the attempt (inactive endpoints too:
        testing one is how a tenant checks it before switching it on)."""
        endpoint = await self._repository(ctx).get(command.id)
        if endpoint is None:
            return not_found("webhook", command.id)
        secret = self.keys.open(endpoint.secret, associated_data(endpoint.tenant_id, endpoint.id)).decode()
        message_id = f"msg_{uuid.uuid4().hex}"
        data = {"webhook_id": endpoint.id, "integration_id": endpoint.integration_id}
        attempt = await self.sender.send(endpoint.url, secret, message_id, contract.TEST_EVENT, data,
                                         total_timeout_s=self.test_timeout_s)
        shown = contract.DeliveryAttempt(
            message_id=attempt.message_id, event_type=contract.TEST_EVENT, success=attempt.outcome == "success",
            outcome=attempt.outcome, status_code=attempt.status_code, latency_ms=attempt.latency_ms, error=attempt.error,
            response_body=attempt.response_body, attempted_at=attempt.attempted_at,
        )
        return document(200, contract.DeliveryAttemptDocument(data=shown))

    async def rotate_secret(self, ctx: MessageContext, command: contract.WebhookRef) -> Reply:
        repository, tenant_id = self._repository(ctx), ctx.envelope.tenantid
        if await repository.get(command.id, for_update=True) is None:
            return not_found("webhook", command.id)
        secret = new_secret()
        until = await repository.rotate(command.id, self.keys.seal(secret.encode(), associated_data(tenant_id, command.id)),
                                        self.rotation_overlap_s)
        shown = contract.NewSecret(id=command.id, secret=secret, previous_secret_expires_at=until)
        return document(200, contract.NewSecretDocument(data=shown))

    async def deliveries(self, ctx: MessageContext, query: contract.ListDeliveries) -> Reply:
        if await self._repository(ctx).get(query.id) is None:
            return not_found("webhook", query.id)
        rows = await messages.deliveries(ctx.conn, query.id, query.limit, query.after_id)
        return document(200, contract.DeliveryList(data=[contract.Delivery(**dict(row)) for row in rows]))

    async def retry_delivery(self, ctx: MessageContext, command: contract.DeliveryRef) -> Reply:
        if await self._repository(ctx).get(command.id) is None:
            return not_found("webhook", command.id)
        if not await messages.resend(ctx.conn, command.id, command.message_id):
            return Reply(status=404, problem=problem(404, "not-found", "Not Found",
                                                     f"No message {command.message_id} to webhook {command.id}."))
        return document(202, contract.ResendDocument(data=contract.Resend(message_id=command.message_id, status="pending")))

    async def recover(self, ctx: MessageContext, command: contract.RecoverWebhook) -> Reply:
        if await self._repository(ctx).get(command.id) is None:
            return not_found("webhook", command.id)
        job = await messages.open_recovery(ctx.conn, command.id, command.since)
        shown = contract.Recovery(id=job["id"], webhook_id=command.id, since=job["since"], messages=job["messages"])
        return document(202, contract.RecoveryDocument(data=shown))

    async def delete(self, ctx: MessageContext, command: contract.WebhookRef) -> Reply:
        repository = self._repository(ctx)
        if await repository.get(command.id, for_update=True) is None:
            return not_found("webhook", command.id)
        await repository.delete(command.id)
        return Reply(status=204)


async def integration_created(ctx: MessageContext, event: integration_events.IntegrationCreated) -> None:
    await learn_integration(ctx.conn, event.id, ctx.envelope.tenantid, event.provider, is_active=event.is_active,
                            deleted=False, at=event.created_at)


async def integration_updated(ctx: MessageContext, event: integration_events.IntegrationUpdated) -> None:
    await learn_integration(ctx.conn, event.id, ctx.envelope.tenantid, event.provider, is_active=event.is_active,
                            deleted=False, at=event.updated_at)


async def integration_deactivated(ctx: MessageContext, event: integration_events.IntegrationDeactivated) -> None:
    await learn_integration(ctx.conn, event.id, ctx.envelope.tenantid, event.provider, is_active=False,
                            deleted=True, at=event.deactivated_at)
