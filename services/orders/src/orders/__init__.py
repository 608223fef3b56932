"""External-order lifecycle service: receives platform orders, accepts them and injects them into the POS."""
SCHEMA = "orders"
