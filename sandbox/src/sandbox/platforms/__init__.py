"""Fake delivery and accounting platforms (DoorDash, Uber Eats, Grubhub, custom, QuickBooks, Xero)
for dev, tests and the demo, bound to 127.0.0.1 only.

Each lists orders since a watermark, records status updates and ledger writes (honouring
``requestid`` / ``Idempotency-Key``), issues OAuth tokens, injects faults on demand (timeouts, 429
with ``Retry-After``, 500, malformed bodies, duplicate and out-of-order orders, expired tokens)
and pushes orders, signed its own way, to an inbound URL. In-process: ``Sandbox`` (server.py);
out of process: ``python -m sandbox.platforms`` and the control API ``/<provider>/_control/...``.
"""
