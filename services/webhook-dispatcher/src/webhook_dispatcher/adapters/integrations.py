"""Asking the owner of integrations about one the dispatcher has not learnt yet.

The dispatcher learns integrations from ``integrations.events``, which the integrations service's
outbox relay publishes a moment after the create commits; a webhook registered right after its
integration would find it unknown. So the dispatcher asks the integrations service with the query
the gateway's ``GET /api/v1/integrations/{id}`` uses (``get-integration`` on
``integrations.queries``, scoped to the tenant by ``ce_tenantid``), over the shared request/reply
mechanism (posint_common.requests) with its own reply topic, ``webhooks.replies``.

The wait is bounded (``WEBHOOKS_INTEGRATION_LOOKUP_TIMEOUT_MS``): the command consumer handles a
partition in order, and a batch waits for its slowest command.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from posint_common.contracts import integrations as contract, topics
from posint_common.requests import BrokerUnavailable, Overloaded, ReplyTimeout, Requester, ServiceUnavailable

# Share of the bound given to the reply itself; the rest leaves room to tell a stopped integrations
# service (its query group never consumed the request) from a silent one.
REPLY_SHARE = 0.8


@dataclass(frozen=True)
class IntegrationFacts:
    """What the dispatcher keeps of an integration (``known_integrations``)."""

    id: int
    provider: str
    is_active: bool
    updated_at: datetime


class IntegrationsUnavailable(Exception):
    """The integrations service could not be asked, or did not answer, within the bound."""

    def __init__(self, why: str, retry_after_s: int = 1) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after_s = retry_after_s


def reply_timeout_s(bound_s: float) -> float:
    """The requester's own reply deadline for a lookup bounded by ``bound_s``."""
    return bound_s * REPLY_SHARE


class IntegrationDirectory:
    def __init__(self, requester: Requester, bound_s: float) -> None:
        self._requester = requester
        self._bound_s = bound_s

    async def lookup(self, tenant_id: str, integration_id: int, request_id: str | None) -> IntegrationFacts | None:
        """The tenant's live integration (active or not), or None when the integrations service says 404."""
        try:
            async with asyncio.timeout(self._bound_s):
                reply = await self._requester.request(
                    topics.INTEGRATIONS_QUERIES, contract.GET_INTEGRATION, contract.IntegrationRef(id=integration_id),
                    tenant_id=tenant_id, request_id=request_id,
                )
        except ServiceUnavailable:
            raise IntegrationsUnavailable("is not running or not keeping up", retry_after_s=5) from None
        except (ReplyTimeout, TimeoutError):
            raise IntegrationsUnavailable(f"did not answer within {self._bound_s:g} s") from None
        except (BrokerUnavailable, Overloaded) as error:
            raise IntegrationsUnavailable(f"could not be asked ({type(error).__name__})") from None
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise IntegrationsUnavailable(f"answered {reply.status}")
        try:
            detail = contract.IntegrationDocument.model_validate(reply.body).data
        except ValidationError:
            raise IntegrationsUnavailable("answered something unreadable") from None
        return IntegrationFacts(id=detail.id, provider=detail.provider, is_active=detail.is_active,
                                updated_at=detail.updated_at)
