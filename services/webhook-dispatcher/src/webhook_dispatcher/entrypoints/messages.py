"""Message type -> handler, per consumer. Delivery handlers arrive with the webhook issue."""
from posint_common.consumer import Route

COMMAND_ROUTES: dict[str, Route] = {}
EVENT_ROUTES: dict[str, Route] = {}
