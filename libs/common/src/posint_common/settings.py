"""Settings from the environment; a bad or missing value stops the process with the variable's name."""
from __future__ import annotations

import sys
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from posint_common.contracts.limits import MAX_RECORD_BYTES

T = TypeVar("T", bound=BaseSettings)


class KafkaSettings(BaseSettings):
    """Broker connection and the adaptive fetch wait (see posint_common.fetch_pacing)."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = Field(min_length=1)
    kafka_fetch_wait_busy_ms: int = Field(default=5, ge=1, le=10_000)  # Tansu never delivers to a 0 ms fetch
    kafka_fetch_wait_idle_ms: int = Field(default=750, ge=1, le=10_000)  # Tansu: idle CPU vs the first request after a quiet spell (bench/RESULTS.md)
    kafka_busy_window_ms: int = Field(default=2_000, ge=0, le=600_000)
    kafka_session_timeout_ms: int = Field(default=6_000, ge=3_000, le=300_000)
    kafka_request_timeout_ms: int = Field(default=5_000, ge=100, le=120_000)
    # Idempotent producer: no duplicates from the producer's own retries. Off by default because the
    # embedded Tansu refuses it; on with a real Kafka (docker-compose). Correctness never depends on it.
    kafka_enable_idempotence: bool = False
    # Queries and replies through short-lived topic generations (posint_common.topic_roll): on where
    # make run/test/bench start the embedded Tansu, off for a broker that applies retention.
    kafka_roll_topics: bool = False
    kafka_roll_records: int = Field(default=2_000, ge=10, le=1_000_000)
    # The largest record produced and consumed (producer max_request_size, consumer fetch sizes, the
    # topics' max.message.bytes): never below what a 1 MiB inbound order needs (contracts.limits).
    kafka_max_record_bytes: int = Field(default=MAX_RECORD_BYTES, ge=MAX_RECORD_BYTES, le=67_108_864)


class ServiceSettings(KafkaSettings):
    """What every service needs: its database, broker and operational port."""

    database_url: str = Field(min_length=1)
    health_port: int = Field(default=0, ge=0, le=65535)
    health_host: str = "127.0.0.1"
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    db_pool_max_size: int = Field(default=10, ge=1, le=200)
    handler_max_attempts: int = Field(default=5, ge=1, le=100)
    outbox_max_attempts: int = Field(default=10, ge=1, le=1000)  # then the row is parked for an operator
    outbox_retry_backoff_ms: int = Field(default=1_000, ge=1, le=600_000)  # first retry delay, doubling, at most 60 s
    inbox_retention_hours: int = Field(default=168, ge=1, le=87_600)  # must outlast any redelivery
    inbox_prune_interval_s: int = Field(default=300, ge=1, le=86_400)
    # Outbound HTTP (posint_common.egress): networks allowed despite the SSRF guard, and whether
    # only those may be dialled (names refused before DNS); make run/test/bench: 127.0.0.0/8, true.
    egress_allow: str = ""
    egress_allow_only: bool = False
    # Seals the messages that carry secrets on the broker (posint_common.envelope), ``kid:base64key,...``
    # like the other key rings; the same value for gateway, integrations and webhook-dispatcher.
    transport_keys: SecretStr | None = None

    @field_validator("egress_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        from posint_common.egress import parse_networks  # egress imports aiohttp; settings stay light

        parse_networks(value)
        return value

    @field_validator("transport_keys")
    @classmethod
    def _transport_ring(cls, value: SecretStr | None) -> SecretStr | None:
        from posint_common.envelope import TransportKeyRing

        return None if value is None else TransportKeyRing.checked_setting(value)


def describe_errors(error: ValidationError) -> str:
    """One line per bad variable, named as it is spelled in the environment."""
    lines = []
    for item in error.errors():
        variable = "_".join(str(part) for part in item["loc"]).upper() or "(settings)"
        lines.append(f"{variable}: {item['msg']}")
    return "; ".join(lines)


def load_settings(cls: type[T], **overrides) -> T:
    """Build settings or exit(2) with a message naming each bad variable (never a traceback)."""
    try:
        return cls(**overrides)
    except ValidationError as error:
        print(f"configuration error: {describe_errors(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def postgres_location(dsn: str) -> str:
    """``host:port/database`` of a Postgres DSN, for messages: never its user or password."""
    try:
        url = urlsplit(dsn)
        host, port = url.hostname or "localhost", url.port or 5432
    except ValueError:
        return "an unreadable address"
    return f"{host}:{port}/{url.path.lstrip('/') or 'postgres'}"
