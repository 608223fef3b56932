"""Prometheus metrics shared by every service (each process has its own registry)."""
from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "posint_messages_total", "Messages handled by a consumer", ["consumer", "type", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "posint_handler_seconds", "Time to handle one message, transaction included", ["consumer"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_RETRIES = Counter("posint_batch_retries_total", "Batches replayed because they could not be finished", ["consumer"])
CONSUMER_STALLED = Gauge(
    "posint_consumer_stalled", "1 while a consumer replays a batch it cannot finish (Postgres or the broker away)", ["consumer"]
)
QUERY_BATCH_FAILURES = Counter(
    "posint_query_batch_failures_total", "Query batches that failed after their answers (e.g. the offset commit)", ["consumer"]
)
DEAD_LETTERS = Counter("posint_dead_letters_total", "Messages sent to a dead-letter topic", ["consumer"])
OUTBOX_PUBLISHED = Counter("posint_outbox_published_total", "Outbox rows published to Kafka", ["schema"])
OUTBOX_FAILURES = Counter("posint_outbox_failures_total", "Outbox relay rounds that failed", ["schema"])
OUTBOX_PARKED = Gauge("posint_outbox_parked", "Outbox rows parked until an operator retries them", ["schema"])
OUTBOX_OLDEST_AGE = Gauge(
    "posint_outbox_oldest_age_seconds", "Age of the oldest outbox row not yet published (parked rows aside); 0 when none",
    ["schema"],
)
INBOX_PRUNED = Counter("posint_inbox_pruned_total", "Inbox rows deleted after their retention", ["schema"])
HTTP_REQUESTS = Counter("posint_http_requests_total", "Gateway HTTP requests", ["route", "status"])
HTTP_SECONDS = Histogram(
    "posint_http_request_seconds", "Gateway request latency", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PENDING_REPLIES = Gauge("posint_gateway_pending_replies", "Commands waiting for their reply")
AUTH_LOOKUPS = Counter(
    "posint_gateway_auth_lookups_total", "API-key lookups that reached Postgres (not answered from a cache)", ["outcome"]
)
RECORD_LAG = Histogram(
    "posint_record_lag_seconds", "From a record's producer timestamp to its consumer receiving it", ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
