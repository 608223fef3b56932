"""``make run``: starts the embedded Postgres and broker (unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS
are set), creates the topics, starts the four services, seeds the demo tenant, and stops it all on
Ctrl-C."""
