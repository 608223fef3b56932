"""Query handlers: read-only, so they run concurrently and need no inbox."""
from __future__ import annotations

from posint_common.consumer import MessageContext
from posint_common.contracts.integrations import IntegrationList, ListIntegrations
from posint_common.contracts.replies import Reply

from integrations.adapters.repository import IntegrationRepository


async def list_integrations(ctx: MessageContext, query: ListIntegrations) -> Reply:
    repository = IntegrationRepository(ctx.conn, ctx.envelope.tenantid)
    page = await repository.page(query.limit, query.after_id)
    return Reply(status=200, body=IntegrationList(data=page).model_dump(mode="json", exclude_none=True))
