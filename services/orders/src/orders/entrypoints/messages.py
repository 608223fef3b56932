"""Message type -> handler, per consumer. The order lifecycle's handlers arrive with its issue."""
from posint_common.consumer import Route

QUERY_ROUTES: dict[str, Route] = {}
COMMAND_ROUTES: dict[str, Route] = {}
