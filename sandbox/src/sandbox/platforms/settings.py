"""Settings of ``python -m sandbox.platforms`` (environment variables)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

DEFAULT_PORT = 8090


@dataclass(frozen=True)
class SandboxSettings:
    port: int = DEFAULT_PORT  # SANDBOX_PLATFORMS_PORT; 0 picks a free one (printed)
    health_port: int | None = None  # HEALTH_PORT: /readyz also there (the launcher polls it)
    sample_orders: int = 3  # SANDBOX_SAMPLE_ORDERS: orders each delivery platform lists at start
    token_ttl_s: int = 3600  # SANDBOX_TOKEN_TTL_S: lifetime of the access tokens the fakes issue

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SandboxSettings":
        def number(name: str, default: int, low: int, high: int) -> int:
            text = env.get(name, "").strip()
            if not text:
                return default
            if not text.isdigit() or not low <= int(text) <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
            return int(text)

        health = env.get("HEALTH_PORT", "").strip()
        return cls(port=number("SANDBOX_PLATFORMS_PORT", DEFAULT_PORT, 0, 65535),
                   health_port=number("HEALTH_PORT", 0, 0, 65535) if health else None,
                   sample_orders=number("SANDBOX_SAMPLE_ORDERS", 3, 0, 100),
                   token_ttl_s=number("SANDBOX_TOKEN_TTL_S", 3600, 1, 10_000_000))
