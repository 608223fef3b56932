"""Webhook endpoints as the dispatcher sees them; no I/O."""
from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from posint_common.contracts.webhooks import SECRET_PREFIX
from posint_common.egress import EgressPolicy, EgressRefused, literal_address
from posint_common.vault import Sealed

PRINTABLE = re.compile(r"[\x21-\x7e]+")  # no spaces, no control characters, ASCII only


@dataclass(frozen=True)
class Endpoint:
    id: int
    tenant_id: str
    integration_id: int
    url: str
    events: list[str]
    is_active: bool
    secret: Sealed
    created_at: datetime
    updated_at: datetime


def new_secret() -> str:
    """Standard Webhooks' secret form: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def url_error(url: str, allow_http: bool, egress: EgressPolicy) -> str | None:
    """Why ``url`` cannot be an endpoint, or None. A literal address is judged here by the egress
    guard; a name is judged at every delivery, on the addresses it resolves to."""
    schemes = ("https", "http") if allow_http else ("https",)
    wanted = "an absolute https URL" + (" (or http, allowed here)" if allow_http else "")
    if not PRINTABLE.fullmatch(url):
        return f"must be {wanted} without spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        return f"must be {wanted}"
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return f"must be {wanted}"
    if "@" in parts.netloc:
        return "must not contain credentials (user or password)"
    if literal_address(parts.hostname) is not None:
        try:
            egress.check_address(literal_address(parts.hostname))
        except EgressRefused:
            return "points to an address webhooks may not reach (private, loopback, link-local, metadata ...)"
    return None
