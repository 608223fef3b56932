"""The retry schedule of platform pushes and the booking's idempotency key: pure functions, no I/O."""
from integrations.service_layer.pushes import PushSettings, Pusher, idempotency_key

SETTINGS = PushSettings(status_deadline_s=600, sale_max_attempts=20, retry_initial_s=1.0, retry_max_s=60.0)


def pusher() -> Pusher:
    return Pusher(schema="integrations", source="posint/integrations", clients=None, settings=SETTINGS)


def test_the_wait_doubles_per_try_with_jitter_up_to_the_maximum():
    waits = [pusher()._backoff(attempts, None) for attempts in range(1, 12)]
    for attempts, wait in enumerate(waits, start=1):
        nominal = min(60.0, 2 ** (attempts - 1))
        assert 0.8 * nominal <= wait <= 1.2 * nominal, (attempts, wait)
    assert max(waits) <= 72.0


def test_retry_after_is_honoured_when_longer():
    assert pusher()._backoff(1, 30.0) == 30.0
    assert pusher()._backoff(1, 0.1) >= 0.8


def test_the_booking_key_is_the_same_on_every_try_and_fits_quickbooks():
    assert idempotency_key(9_223_372_036_854_775_807) == idempotency_key(9_223_372_036_854_775_807)
    assert idempotency_key(1) != idempotency_key(2)
    assert len(idempotency_key(9_223_372_036_854_775_807)) <= 50  # QuickBooks requestid
