"""One module per delivery provider behind one small interface (``InboundAdapter``): check the
signature of a push on its exact bytes, and parse the provider's native payload into the
``NormalizedOrder``. What each provider's public documentation leaves open is said in its module."""
from __future__ import annotations

from types import MappingProxyType

from integrations.adapters.providers import custom, doordash, grubhub, ubereats
from integrations.adapters.providers.base import Cancellation, InboundAdapter, InvalidOrder, Keys, Parsed, SignatureError

ADAPTERS: MappingProxyType[str, InboundAdapter] = MappingProxyType({
    "custom": custom.ADAPTER,
    "ubereats": ubereats.ADAPTER,
    "doordash": doordash.ADAPTER,
    "grubhub": grubhub.ADAPTER,
})

__all__ = ["ADAPTERS", "Cancellation", "InboundAdapter", "InvalidOrder", "Keys", "Parsed", "SignatureError"]
