"""A reference POS: takes posint's injection commands from ``pos.orders`` and answers on
``pos.order-events``, the way a restaurant's POS integration would (see
posint_common.contracts.pos). For dev, tests, the demo and the bench; tell it to fail or be slow
through its loopback control API."""
