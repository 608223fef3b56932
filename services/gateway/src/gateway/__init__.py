"""HTTP gateway: authenticates, validates and turns each /api/v1 call into a Kafka command or query."""
SCHEMA = "gateway"
