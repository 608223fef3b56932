"""Provider ``custom``: any system that pushes our own normalized order.

Signed as Standard Webhooks (https://www.standardwebhooks.com): headers ``webhook-id``,
``webhook-timestamp`` (Unix seconds; more than 5 minutes off is refused) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, several may be given separated by
spaces), keyed with the base64-decoded part of the integration's ``inbound_secret`` after
``whsec_``. Checked by the ``standardwebhooks`` package (constant-time comparison). The body is the
``NormalizedOrder`` itself; ``webhook-id`` identifies a delivery, so a retry is recognised.

A cancellation is a body with a ``status`` (a key no order has): ``{"external_id", "status":
"cancelled", "reason"?, "cancelled_at"?}``, signed the same way. It names an order received before.
"""
from __future__ import annotations

from typing import Any, Mapping

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict
from standardwebhooks import Webhook, WebhookVerificationError

from posint_common.contracts.inbound import Text
from posint_common.contracts.providers import ExternalId

from integrations.adapters.providers.base import (
    Cancellation, InboundAdapter, Keys, Parsed, SignatureError, order, validated,
)


def verify(body: bytes, headers: Mapping[str, str], keys: Keys, integration_id: int) -> None:
    if not keys.inbound_secret:
        raise SignatureError("the integration has no inbound secret")
    try:
        Webhook(keys.inbound_secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as error:
        raise SignatureError(str(error)) from None
    except ValueError:  # a body that is not UTF-8, a malformed signature list or base64
        raise SignatureError("malformed signature headers or body") from None


class Cancelled(BaseModel):
    """A custom platform's cancellation of one of its orders."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    external_id: ExternalId
    status: Literal["cancelled"]
    reason: Text | None = None
    cancelled_at: AwareDatetime | None = None


def parse(document: dict[str, Any], headers: Mapping[str, str]) -> Parsed | Cancellation:
    if "status" in document:
        cancelled: Cancelled = validated(Cancelled, document)
        return Cancellation(cancelled.external_id, headers.get("webhook-id"), cancelled.reason or None,
                            cancelled.cancelled_at)
    return Parsed(order(document), headers.get("webhook-id"))


ADAPTER = InboundAdapter(verify=verify, parse=parse)
