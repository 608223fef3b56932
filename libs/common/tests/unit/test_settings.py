import pytest

from posint_common.log import REDACTED, redact_secrets
from posint_common.settings import ServiceSettings, load_settings


def test_missing_variable_is_named_and_exits_without_traceback(monkeypatch, capsys):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    with pytest.raises(SystemExit) as exited:
        load_settings(ServiceSettings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err and "Traceback" not in err


def test_bad_value_is_named(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("KAFKA_FETCH_WAIT_IDLE_MS", "soon")
    with pytest.raises(SystemExit):
        load_settings(ServiceSettings)
    assert "KAFKA_FETCH_WAIT_IDLE_MS" in capsys.readouterr().err


def test_environment_values_are_read(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("HEALTH_PORT", "9100")
    settings = load_settings(ServiceSettings)
    assert settings.health_port == 9100 and settings.kafka_bootstrap_servers == "127.0.0.1:9092"


def test_secret_looking_fields_are_redacted_from_logs():
    event = redact_secrets(None, "info", {"event": "x", "api_key": "pk_secret", "database_url": "postgresql://u:pw@h/d", "tenant": "t"})
    assert event == {"event": "x", "api_key": REDACTED, "database_url": REDACTED, "tenant": "t"}
