"""The provider API clients, one module per provider, behind ``providers.client.ProviderClient``
(use ``providers.client.client_for``)."""
from __future__ import annotations

from types import MappingProxyType

from integrations.adapters.providers.api.custom import CustomClient
from integrations.adapters.providers.api.doordash import DoorDashClient
from integrations.adapters.providers.api.grubhub import GrubhubClient
from integrations.adapters.providers.api.quickbooks import QuickBooksClient
from integrations.adapters.providers.api.ubereats import UberEatsClient
from integrations.adapters.providers.api.xero import XeroClient

CLIENTS = MappingProxyType({
    "doordash": DoorDashClient,
    "ubereats": UberEatsClient,
    "grubhub": GrubhubClient,
    "custom": CustomClient,
    "quickbooks": QuickBooksClient,
    "xero": XeroClient,
})
