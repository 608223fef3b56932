"""The one table from CloudEvents types to catalog names, the webhook body's data, the derived
webhook-ids, and the retry policy's arithmetic."""
from datetime import datetime, timedelta, timezone
from random import Random

from posint_common.contracts import orders
from posint_common.contracts.webhooks import CATALOG, EVENT_NAMES, webhook_data
from webhook_dispatcher.domain.retry import RetryPolicy, retry_after_seconds
from webhook_dispatcher.service_layer.fanout import message_id

NOW = datetime(2026, 1, 4, 18, 0, tzinfo=timezone.utc)


def test_every_mapped_name_is_in_the_catalog_and_the_agreed_ones_are_mapped():
    assert set(EVENT_NAMES.values()) <= set(CATALOG)
    assert EVENT_NAMES[orders.ORDER_INJECTION_FAILED] == "order.injection_failed"
    assert EVENT_NAMES[orders.PAYMENT_COMPLETED] == "payment.completed"
    assert EVENT_NAMES["posint.integrations.sync-completed.v1"] == "integration.sync.completed"
    assert EVENT_NAMES["posint.integrations.sync-failed.v1"] == "integration.sync.failed"
    assert "posint.integrations.sync-started.v1" not in EVENT_NAMES


def test_data_is_the_order_plus_the_events_own_fields():
    example = CATALOG["order.injection_failed"].example
    order = {name: value for name, value in example.items() if name != "reason"}
    payload = {"tenant_id": "t", "integration_id": 7, "order": order, "reason": "item 'burger' unknown"}
    assert webhook_data(payload) == {**order, "reason": "item 'burger' unknown"}
    assert webhook_data({"tenant_id": "t", "integration_id": 7, "provider": "quickbooks"}) == {
        "integration_id": 7, "provider": "quickbooks"}
    assert webhook_data({**payload, "reason": example["reason"]}) == example


def test_webhook_ids_are_stable_per_event_and_endpoint():
    assert message_id("posint/orders/1", 3) == message_id("posint/orders/1", 3)
    assert message_id("posint/orders/1", 3) != message_id("posint/orders/1", 4)
    assert message_id("posint/orders/1", 3).startswith("msg_")


def test_the_schedule_with_jitter_then_giving_up():
    policy = RetryPolicy((5, 300), jitter=0.2)
    delays = [policy.delay(1, 500, None, NOW, Random(seed)) for seed in range(50)]
    assert all(4 <= delay <= 6 for delay in delays) and len(set(delays)) > 1
    assert 240 <= policy.delay(2, None, None, NOW) <= 360
    assert policy.delay(3, 500, None, NOW) is None


def test_retry_after_on_429_and_503_only():
    policy = RetryPolicy((5,), jitter=0, retry_after_max_s=60)
    assert policy.delay(1, 429, "7", NOW) == 7
    assert policy.delay(1, 503, "7000", NOW) == 60  # capped
    assert policy.delay(1, 500, "7", NOW) == 5
    later = (NOW + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(later, NOW) == 30
    assert retry_after_seconds("soon", NOW) is None


def test_failing_too_long():
    policy = RetryPolicy((5,), disable_after_s=5 * 86_400)
    assert policy.failing_too_long(NOW - timedelta(days=5), NOW)
    assert not policy.failing_too_long(NOW - timedelta(days=4), NOW)
