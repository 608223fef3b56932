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
