from pydantic import Field

from posint_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=0, le=65535)
    reply_timeout_ms: int = Field(default=5_000, ge=50, le=120_000)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=16_777_216)
    auth_cache_seconds: float = Field(default=30.0, ge=0, le=3_600)
    auth_miss_cache_seconds: float = Field(default=5.0, ge=0, le=3_600)  # unknown keys: a flood of them is not a flood of queries
    max_pending_replies: int = Field(default=10_000, ge=1, le=1_000_000)  # past it: 503 with Retry-After
    idempotency_ttl_hours: float = Field(default=24.0, gt=0, le=720)  # how long a POST's response is kept for replay
    idempotency_purge_interval_s: int = Field(default=300, ge=1, le=86_400)
    rate_limit_per_second: float = Field(default=100.0, gt=0, le=1_000_000)  # per key and gateway process
    rate_limit_burst: int = Field(default=200, ge=1, le=1_000_000)  # bucket size: requests allowed at once after a quiet spell
    max_in_flight_per_key: int = Field(default=64, ge=1, le=100_000)  # past it: 429
    # False: no Idempotency-Key handling, no per-key limits or RateLimit-* headers, no scopes (a read key
    # may write): the foundation's gateway, only so `make bench` can measure what they cost. Never in production.
    request_controls: bool = True
