"""Managing integrations: the get query and the create, update and delete commands.

Commands run in the consumer's transaction with their inbox row; the events they emit and their
reply go to the outbox in that transaction. An answer the requester must act on (404, 409, 422) is
a reply, never an exception: an exception would be retried and dead-lettered as a 500.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from posint_common.consumer import MessageContext
from posint_common.contracts import integrations as contract, topics
from posint_common.contracts.problem import FieldError, field_errors, problem, validation_problem
from posint_common.contracts.providers import CREDENTIAL_MODELS, Provider
from posint_common.contracts.replies import Reply
from posint_common.envelope import utcnow

from integrations.adapters.repository import IntegrationRepository
from integrations.domain.model import merged_config, new_inbound_secret
from integrations.service_layer import views
from integrations.service_layer.secrets import Secrets


def not_found(integration_id: int) -> Reply:
    return Reply(status=404, problem=problem(404, "not-found", "Not Found", f"No integration {integration_id}."))


def document(status: int, model, headers: dict[str, str] | None = None) -> Reply:
    """Every key of the document is kept, null included: the detail's shape is fixed."""
    return Reply(status=status, body=model.model_dump(mode="json"), headers=headers)


@dataclass(frozen=True)
class IntegrationHandlers:
    secrets: Secrets
    public_base_url: str | None = None

    def _repository(self, ctx: MessageContext) -> IntegrationRepository:
        return IntegrationRepository(ctx.conn, ctx.envelope.tenantid)

    async def get(self, ctx: MessageContext, query: contract.IntegrationRef) -> Reply:
        integration = await self._repository(ctx).get(query.id)
        if integration is None:
            return not_found(query.id)
        return document(200, contract.IntegrationDocument(data=views.detail(integration, self.public_base_url)))

    async def create(self, ctx: MessageContext, command: contract.CreateIntegration) -> Reply:
        repository, tenant_id = self._repository(ctx), ctx.envelope.tenantid
        new_id = await repository.next_id()
        inbound_secret = new_inbound_secret()
        created = await repository.create(
            new_id, command.name, command.integration_type.value, command.provider.value,
            command.config.model_dump(mode="json"),
            self.secrets.seal_credentials(tenant_id, new_id, command.credentials),
            self.secrets.seal_inbound_secret(tenant_id, new_id, inbound_secret),
        )
        if created is None:
            existing = await repository.live_id(command.provider.value)
            return Reply(status=409, problem=problem(
                409, "integration-exists", "Conflict",
                f"This tenant already has a {command.provider.value} integration (id {existing}); "
                "change it with PATCH or delete it first.",
            ))
        await ctx.emit(
            topics.INTEGRATIONS_EVENTS, contract.INTEGRATION_CREATED,
            contract.IntegrationCreated(**views.state(created), created_at=created.created_at), subject=str(created.id),
        )
        shown = contract.NewIntegration(**dict(views.detail(created, self.public_base_url)), inbound_secret=inbound_secret)
        return document(201, contract.NewIntegrationDocument(data=shown), {"Location": f"/api/v1/integrations/{created.id}"})

    async def update(self, ctx: MessageContext, command: contract.UpdateIntegration) -> Reply:
        repository, tenant_id = self._repository(ctx), ctx.envelope.tenantid
        current = await repository.get(command.id, for_update=True)
        if current is None:
            return not_found(command.id)
        given = command.model_fields_set
        errors: list[FieldError] = []
        config = current.config
        if "config" in given:
            try:
                config = merged_config(current.provider, current.config, command.config).model_dump(mode="json")
            except ValidationError as error:
                errors += field_errors(error, ("config",))
        sealed = None
        if "credentials" in given:
            try:
                credentials = CREDENTIAL_MODELS[Provider(current.provider)].model_validate(
                    {name: value.get_secret_value() for name, value in command.credentials.items()})
            except ValidationError as error:
                errors += field_errors(error, ("credentials",))
            else:
                sealed = self.secrets.seal_credentials(tenant_id, current.id, credentials)
        if errors:
            return Reply(status=422, problem=validation_problem(errors, "request body"))
        name = command.name if "name" in given else current.name
        is_active = command.is_active if "is_active" in given else current.is_active
        changed = [field for field, new, old in (("name", name, current.name), ("is_active", is_active, current.is_active),
                                                 ("config", config, current.config)) if new != old]
        changed += ["credentials"] if sealed is not None else []
        if not changed:
            return document(200, contract.IntegrationDocument(data=views.detail(current, self.public_base_url)))
        updated = await repository.update(current.id, name=name, is_active=is_active, config=config, credentials=sealed)
        await ctx.emit(
            topics.INTEGRATIONS_EVENTS, contract.INTEGRATION_UPDATED,
            contract.IntegrationUpdated(**views.state(updated), changed=changed, updated_at=updated.updated_at),
            subject=str(updated.id),
        )
        return document(200, contract.IntegrationDocument(data=views.detail(updated, self.public_base_url)))

    async def delete(self, ctx: MessageContext, command: contract.IntegrationRef) -> Reply:
        repository = self._repository(ctx)
        current = await repository.get(command.id, for_update=True)
        if current is None:
            return not_found(command.id)
        deleted_at = await repository.delete(current.id) or utcnow()
        await ctx.emit(
            topics.INTEGRATIONS_EVENTS, contract.INTEGRATION_DEACTIVATED,
            contract.IntegrationDeactivated(id=current.id, integration_type=current.integration_type,
                                            provider=current.provider, deactivated_at=deleted_at),
            subject=str(current.id),
        )
        return Reply(status=204)
