"""Providers, their integration types, and the per-provider shapes of an integration's ``config``
(non-secret settings, returned by the API and carried in events) and ``credentials`` (secret, never
returned, never logged, encrypted at rest).

Unknown keys are refused everywhere, so a typo is a 422 rather than a setting silently ignored;
booleans and numbers are JSON's own (``"yes"`` or ``"15"`` is refused, not guessed at).
Every string that may reach Postgres as text is printable (Postgres refuses NUL); a base URL is an
absolute http(s) URL without user info (config is not secret), query or fragment, so it can point at
a provider's sandbox or a local fake. Secrets are ``SecretStr``: hidden from ``repr`` and ``str``,
written out only in JSON (the command that carries them to the integrations service).
"""
from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Union
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, SecretStr, StrictBool, StrictInt, StringConstraints,
)


class IntegrationType(StrEnum):
    DELIVERY = "delivery"
    ACCOUNTING = "accounting"


class Provider(StrEnum):
    DOORDASH = "doordash"
    UBEREATS = "ubereats"
    GRUBHUB = "grubhub"
    CUSTOM = "custom"
    QUICKBOOKS = "quickbooks"
    XERO = "xero"


PROVIDER_TYPES: dict[Provider, IntegrationType] = {
    Provider.DOORDASH: IntegrationType.DELIVERY,
    Provider.UBEREATS: IntegrationType.DELIVERY,
    Provider.GRUBHUB: IntegrationType.DELIVERY,
    Provider.CUSTOM: IntegrationType.DELIVERY,
    Provider.QUICKBOOKS: IntegrationType.ACCOUNTING,
    Provider.XERO: IntegrationType.ACCOUNTING,
}
PROVIDER_NAMES: dict[Provider, str] = {
    Provider.DOORDASH: "DoorDash",
    Provider.UBEREATS: "Uber Eats",
    Provider.GRUBHUB: "Grubhub",
    Provider.CUSTOM: "Custom",
    Provider.QUICKBOOKS: "QuickBooks",
    Provider.XERO: "Xero",
}

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=PRINTABLE)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def _http_base_url(value: str) -> str:
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("must be an absolute http(s) URL") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if url.username is not None or url.password is not None:
        raise ValueError("must not carry user info: config is not secret, put secrets in credentials")
    if url.query or url.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


BaseUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^[\x21-\x7e]+$"), AfterValidator(_http_base_url)]
Secret = Annotated[
    SecretStr, Field(min_length=1, max_length=4096),
    PlainSerializer(lambda value: value.get_secret_value(), return_type=str, when_used="json"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _DeliveryConfig(_Strict):
    auto_accept: StrictBool = Field(default=False, description="Accept new orders without staff action.")
    prep_time_minutes: StrictInt = Field(default=15, ge=1, le=240, description="Default preparation time sent on accept.")
    accept_window_seconds: StrictInt | None = Field(
        default=None, ge=1, le=86_400, exclude_if=lambda value: value is None,  # unset: not shown, not stored
        description="Seconds a new order may wait for acceptance before it expires (default: the provider's window).")


class DoorDashConfig(_DeliveryConfig):
    store_id: ExternalId = Field(description="The store's id at DoorDash.")
    api_base_url: BaseUrl = "https://openapi.doordash.com"


class UberEatsConfig(_DeliveryConfig):
    store_id: ExternalId = Field(description="The store's id at Uber Eats.")
    api_base_url: BaseUrl = "https://api.uber.com"
    token_url: BaseUrl = "https://auth.uber.com/oauth/v2/token"


class GrubhubConfig(_DeliveryConfig):
    merchant_id: ExternalId = Field(description="The restaurant's merchant id at Grubhub.")
    api_base_url: BaseUrl = "https://api-gtm.grubhub.com"


class CustomConfig(_DeliveryConfig):
    api_base_url: BaseUrl | None = Field(default=None, description="Where order status updates go; none: push only.")


class QuickBooksConfig(_Strict):
    realm_id: ExternalId = Field(description="The QuickBooks company (realm) id.")
    api_base_url: BaseUrl = "https://quickbooks.api.intuit.com"
    token_url: BaseUrl = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


class XeroConfig(_Strict):
    xero_tenant_id: ExternalId = Field(description="The Xero organisation (Xero-tenant-id header).")
    api_base_url: BaseUrl = "https://api.xero.com"
    token_url: BaseUrl = "https://identity.xero.com/connect/token"


class DoorDashCredentials(_Strict):
    """DoorDash signs requests with a JWT made from these (developer portal access key)."""

    developer_id: Secret
    key_id: Secret
    signing_secret: Secret


class UberEatsCredentials(_Strict):
    """OAuth client credentials; also the key of the X-Uber-Signature on inbound webhooks."""

    client_id: Secret
    client_secret: Secret


class GrubhubCredentials(_Strict):
    client_id: Secret
    secret_key: Secret


class CustomCredentials(_Strict):
    """Optional: a key sent on status updates to ``api_base_url`` (inbound pushes are signed with
    the integration's ``inbound_secret`` instead)."""

    api_key: Secret | None = None


class OAuthCredentials(_Strict):
    """OAuth 2.0 authorization-code grant: the app's client and the tenant's refresh token."""

    client_id: Secret
    client_secret: Secret
    refresh_token: Secret


CONFIG_MODELS: dict[Provider, type[_Strict]] = {
    Provider.DOORDASH: DoorDashConfig,
    Provider.UBEREATS: UberEatsConfig,
    Provider.GRUBHUB: GrubhubConfig,
    Provider.CUSTOM: CustomConfig,
    Provider.QUICKBOOKS: QuickBooksConfig,
    Provider.XERO: XeroConfig,
}
CREDENTIAL_MODELS: dict[Provider, type[_Strict]] = {
    Provider.DOORDASH: DoorDashCredentials,
    Provider.UBEREATS: UberEatsCredentials,
    Provider.GRUBHUB: GrubhubCredentials,
    Provider.CUSTOM: CustomCredentials,
    Provider.QUICKBOOKS: OAuthCredentials,
    Provider.XERO: OAuthCredentials,
}

# For documentation (OpenAPI); validation picks the provider's model (see integrations.py).
AnyConfig = Union[DoorDashConfig, UberEatsConfig, GrubhubConfig, CustomConfig, QuickBooksConfig, XeroConfig]
AnyCredentials = Union[DoorDashCredentials, UberEatsCredentials, GrubhubCredentials, CustomCredentials, OAuthCredentials]
