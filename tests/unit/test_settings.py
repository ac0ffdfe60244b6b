"""Settings read once from an environment mapping; a bad value names its variable."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from common.auth import CustomerRefKeys
from common.settings import SettingsError, role_setting, security_settings, service_settings, setting


def test_service_settings_default_every_value_for_the_service():
    settings = service_settings("sla", {})

    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.grpc_host == "127.0.0.1"
    assert settings.grpc_port == 0
    assert settings.metrics_port == 0
    assert settings.data_dir == Path("var/sla")
    assert settings.log_level == "INFO"
    assert settings.instance == "sla-1"


def test_service_settings_read_every_variable_given():
    env = {
        "KAFKA_BOOTSTRAP": "kafka-0:9092,kafka-1:9092",
        "GRPC_HOST": "0.0.0.0",
        "GRPC_PORT": "50051",
        "METRICS_PORT": "9100",
        "DATA_DIR": "/data/sla",
        "LOG_LEVEL": "debug",
        "INSTANCE": "sla-7",
    }

    settings = service_settings("sla", env)

    assert settings.kafka_bootstrap == "kafka-0:9092,kafka-1:9092"
    assert (settings.grpc_host, settings.grpc_port, settings.metrics_port) == ("0.0.0.0", 50051, 9100)
    assert settings.data_dir == Path("/data/sla")
    assert settings.log_level == "DEBUG"
    assert settings.instance == "sla-7"


def test_service_settings_are_frozen():
    settings = service_settings("sla", {})

    with pytest.raises(AttributeError):
        settings.grpc_port = 1  # type: ignore[misc]


@pytest.mark.parametrize("variable", ["GRPC_PORT", "METRICS_PORT"])
@pytest.mark.parametrize("value", ["http", "", "80.5", "-1", "65536"])
def test_a_bad_port_names_the_variable(variable, value):
    with pytest.raises(SettingsError, match=f"^{variable}="):
        service_settings("sla", {variable: value})


@pytest.mark.parametrize(
    "value",
    ["", "localhost", "localhost:", ":9092", "localhost:kafka", "a:9092,", "a:9092,b", "host: 9092"],
)
def test_a_bad_kafka_bootstrap_names_the_variable(value):
    with pytest.raises(SettingsError, match="^KAFKA_BOOTSTRAP"):
        service_settings("sla", {"KAFKA_BOOTSTRAP": value})


@pytest.mark.parametrize("value", ["127.0.0.1:9092", "a:1, b:2", "[::1]:9092"])
def test_a_good_kafka_bootstrap_is_kept(value):
    assert service_settings("sla", {"KAFKA_BOOTSTRAP": value}).kafka_bootstrap == value


@pytest.mark.parametrize("value", ["verbose", "TRACE", "", "critical"])
def test_a_bad_log_level_names_the_variable(value):
    with pytest.raises(SettingsError, match="^LOG_LEVEL="):
        service_settings("sla", {"LOG_LEVEL": value})


def test_setting_reads_a_value_or_its_default():
    assert setting("POLICY_FILE", "config/sla-policies.yaml", {"POLICY_FILE": "/etc/sla.yaml"}) == "/etc/sla.yaml"
    assert setting("POLICY_FILE", "config/sla-policies.yaml", {}) == "config/sla-policies.yaml"


def test_setting_refuses_an_empty_value_naming_the_variable():
    with pytest.raises(SettingsError, match="^POLICY_FILE is required"):
        setting("POLICY_FILE", "config/sla-policies.yaml", {"POLICY_FILE": ""})


# --- security settings: customer ref keys --------------------------------------------

TOKENS = {"AUTH_TOKENS": "tok=ada:agent"}
CURRENT, PREVIOUS = "n" * 20, "o" * 20


def test_a_rotation_reads_both_keys_and_the_end_of_the_window():
    env = {**TOKENS, "CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_KEY": PREVIOUS,
           "CUSTOMER_REF_PREVIOUS_UNTIL": "2026-03-01T00:00:00Z"}

    keys = security_settings(env).customer_ref_keys

    assert keys == CustomerRefKeys(CURRENT.encode(), PREVIOUS.encode(), datetime(2026, 3, 1, tzinfo=timezone.utc))


def test_without_a_key_nothing_is_pseudonymised():
    assert security_settings(TOKENS).customer_ref_keys is None


@pytest.mark.parametrize(("extra", "message"), [
    ({"CUSTOMER_REF_KEY": "short"}, "CUSTOMER_REF_KEY must be at least 16 bytes"),
    ({"CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_KEY": "short", "CUSTOMER_REF_PREVIOUS_UNTIL": "2026-03-01T00:00:00Z"},
     "CUSTOMER_REF_PREVIOUS_KEY must be at least 16 bytes"),
    ({"CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_KEY": PREVIOUS}, "go together"),
    ({"CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_UNTIL": "2026-03-01T00:00:00Z"}, "go together"),
    ({"CUSTOMER_REF_PREVIOUS_KEY": PREVIOUS, "CUSTOMER_REF_PREVIOUS_UNTIL": "2026-03-01T00:00:00Z"},
     "needs CUSTOMER_REF_KEY"),
    ({"CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_UNTIL": "2026-03-01T00:00:00Z"},
     "needs a new key"),
    ({"CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_KEY": PREVIOUS, "CUSTOMER_REF_PREVIOUS_UNTIL": "March"},
     "CUSTOMER_REF_PREVIOUS_UNTIL=.March. is not an RFC 3339 time"),
    ({"CUSTOMER_REF_KEY": CURRENT, "CUSTOMER_REF_PREVIOUS_KEY": PREVIOUS, "CUSTOMER_REF_PREVIOUS_UNTIL": "2026-03-01T00:00"},
     "needs a UTC offset"),
], ids=["short-key", "short-previous", "previous-without-until", "until-without-previous", "previous-alone",
        "same-key", "bad-until", "naive-until"])
def test_a_bad_customer_ref_key_setting_names_its_variable(extra, message):
    with pytest.raises(SettingsError, match=message):
        security_settings({**TOKENS, **extra})


@pytest.mark.parametrize("name", ["SLA_ROLE", "NOTIFY_ROLE"])
def test_a_role_is_all_unless_set(name):
    assert role_setting(name, env={}) == "all"
    assert role_setting(name, env={name: "worker"}) == "worker"
    assert role_setting(name, env={name: "api"}) == "api"


def test_an_unknown_role_names_the_variable_and_the_choices():
    with pytest.raises(SettingsError, match=r"NOTIFY_ROLE='workers' is not one of: all, worker, api"):
        role_setting("NOTIFY_ROLE", env={"NOTIFY_ROLE": "workers"})
