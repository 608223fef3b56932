"""What orders takes from an integration's config: auto-accept, prep time (the POS gets at most 180
minutes) and the acceptance window, which overrides the provider's."""
from datetime import datetime, timedelta, timezone

from orders.domain.model import IntegrationSettings, accept_by
from orders.service_layer.handlers import integration_settings

RECEIVED = datetime(2026, 1, 4, 18, 0, tzinfo=timezone.utc)


def test_a_config_without_order_settings_gets_the_defaults():
    assert integration_settings({"store_id": "dd-1"}) == IntegrationSettings(False, 15, None)
    assert integration_settings({"realm_id": "q"}) == IntegrationSettings()  # accounting: none of them


def test_the_config_is_read_and_the_pos_gets_at_most_180_minutes():
    settings = integration_settings({"auto_accept": True, "prep_time_minutes": 240, "accept_window_seconds": 90})
    assert (settings.auto_accept, settings.prep_time, settings.accept_window_seconds) == (True, 180, 90)
    assert integration_settings({"auto_accept": "yes"}).auto_accept is False  # only a real true


def test_an_integrations_window_overrides_the_providers():
    assert accept_by("ubereats", RECEIVED, 90) - RECEIVED == timedelta(seconds=90)
    assert accept_by("ubereats", RECEIVED, None) - RECEIVED == timedelta(minutes=11.5)
