"""One-shot deployment step (docker-compose's ``setup`` service, a Kubernetes Job): create every
topic posint uses (``topics.ALL``, dead-letter topics included) and migrate every service's schema,
then exit 0. Safe to run again: existing topics are left alone, applied migrations skipped.

The services also migrate at start (under the same advisory lock); running it first means a bad
migration fails one visible step instead of four crash-looping services."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import gateway
import integrations
import orders
import webhook_dispatcher
from gateway.bootstrap import MIGRATIONS as GATEWAY_MIGRATIONS
from integrations.bootstrap import MIGRATIONS as INTEGRATIONS_MIGRATIONS
from orders.bootstrap import MIGRATIONS as ORDERS_MIGRATIONS
from posint_common import db
from posint_common.contracts import topics
from posint_common.contracts.limits import MAX_RECORD_BYTES
from posint_common.kafka import DEFAULT_PARTITIONS, ensure_topics
from posint_common.log import configure_logging, get_logger
from posint_common.settings import load_settings, postgres_location
from webhook_dispatcher.bootstrap import MIGRATIONS as WEBHOOK_DISPATCHER_MIGRATIONS

log = get_logger(__name__)

# schema -> its service's migrations directory, in the order the services start
SCHEMAS = {
    integrations.SCHEMA: INTEGRATIONS_MIGRATIONS,
    orders.SCHEMA: ORDERS_MIGRATIONS,
    webhook_dispatcher.SCHEMA: WEBHOOK_DISPATCHER_MIGRATIONS,
    gateway.SCHEMA: GATEWAY_MIGRATIONS,
}


class SetupSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = Field(min_length=1)
    kafka_bootstrap_servers: str = Field(min_length=1)
    kafka_topic_partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1, le=1000)  # new topics only
    kafka_max_record_bytes: int = Field(default=MAX_RECORD_BYTES, ge=MAX_RECORD_BYTES)  # as the services take
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")


async def setup(settings: SetupSettings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, topics.ALL, settings.kafka_topic_partitions,
                        settings.kafka_max_record_bytes)
    log.info("topics_ready", topics=len(topics.ALL), partitions=settings.kafka_topic_partitions)
    for schema, migrations in SCHEMAS.items():
        applied = await db.migrate(settings.database_url, schema, migrations)
        log.info("migrated", schema=schema, versions=applied)


def without_password(text: str, dsn: str) -> str:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return text
    return text.replace(password, "[redacted]") if password else text


def main() -> int:
    settings = load_settings(SetupSettings)
    configure_logging("setup", settings.log_level)
    try:
        asyncio.run(setup(settings))
    except Exception as error:  # one line naming what failed; never the DSN's password
        log.error("setup_failed", error=without_password(repr(error), settings.database_url),
                  postgres=postgres_location(settings.database_url), kafka=settings.kafka_bootstrap_servers)
        return 1
    log.info("setup_done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
