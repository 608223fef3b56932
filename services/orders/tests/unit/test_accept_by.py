"""The acceptance deadline every order gets on arrival, per provider."""
from datetime import datetime, timedelta, timezone

from orders.domain.model import accept_by

RECEIVED = datetime(2026, 1, 4, 18, 0, tzinfo=timezone.utc)


def test_uber_eats_gets_eleven_and_a_half_minutes_and_the_others_eight():
    assert accept_by("ubereats", RECEIVED) - RECEIVED == timedelta(minutes=11, seconds=30)
    for provider in ("doordash", "grubhub", "custom"):
        assert accept_by(provider, RECEIVED) - RECEIVED == timedelta(minutes=8)
