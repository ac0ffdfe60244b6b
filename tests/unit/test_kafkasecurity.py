"""Kafka security settings: read once, refused naming the variable, spoken in each client's dialect."""

from __future__ import annotations

import ssl

import pytest

from common.kafkasecurity import PLAINTEXT, kafka_security
from common.settings import SettingsError, service_settings


@pytest.fixture
def ca_file(tmp_path):
    # Only existence is checked when settings are read; a context is built from it later.
    path = tmp_path / "ca.crt"
    path.write_text("not read here\n")
    return path


def sasl_ssl(ca_file, **extra) -> dict[str, str]:
    return {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "sla",
            "KAFKA_SASL_PASSWORD": "s3cret", "KAFKA_SSL_CA_FILE": str(ca_file), **extra}


def test_nothing_set_is_plaintext_and_every_client_gets_no_extra_arguments():
    security = kafka_security({})
    assert security == PLAINTEXT
    assert (security.aiokafka(), security.kafka_python()) == ({}, {})
    assert security.librdkafka() == {"security.protocol": "plaintext"}


def test_sasl_ssl_defaults_to_scram_sha_512_and_keeps_the_password_out_of_repr(ca_file):
    security = kafka_security(sasl_ssl(ca_file))
    assert (security.protocol, security.sasl_mechanism, security.username) == ("SASL_SSL", "SCRAM-SHA-512", "sla")
    assert "s3cret" not in repr(security)


def test_service_settings_carry_the_kafka_security(ca_file):
    settings = service_settings("sla", sasl_ssl(ca_file, KAFKA_SASL_MECHANISM="SCRAM-SHA-256"))
    assert settings.kafka_security.sasl_mechanism == "SCRAM-SHA-256"


def test_librdkafka_configuration(ca_file):
    assert kafka_security(sasl_ssl(ca_file)).librdkafka() == {
        "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "sla",
        "sasl.password": "s3cret", "ssl.ca.location": str(ca_file),
    }


def test_kafka_python_arguments(ca_file):
    assert kafka_security(sasl_ssl(ca_file)).kafka_python() == {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": str(ca_file),
        "ssl_certfile": None, "ssl_keyfile": None, "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "sla", "sasl_plain_password": "s3cret",
    }


def test_aiokafka_gets_a_verifying_tls_context():
    # Without a CA file the system's trust store verifies the broker.
    security = kafka_security({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "sla",
                               "KAFKA_SASL_PASSWORD": "s3cret"})
    kwargs = security.aiokafka()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_plain_password"] == "s3cret"
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED and kwargs["ssl_context"].check_hostname
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"


def test_ssl_alone_has_no_sasl():
    security = kafka_security({"KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert "sasl_mechanism" not in security.aiokafka()
    assert security.aiokafka()["security_protocol"] == "SSL"
    assert security.librdkafka() == {"security.protocol": "ssl"}


@pytest.mark.parametrize("env, message", [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "x"},
     "KAFKA_SASL_USERNAME is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "sla"},
     "KAFKA_SASL_PASSWORD is required when KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b",
      "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM='GSSAPI' is not one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN"),
    ({"KAFKA_SASL_USERNAME": "sla", "KAFKA_SASL_PASSWORD": "x"},
     "KAFKA_SASL_USERNAME is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use it"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SSL_CA_FILE": "/ca.crt", "KAFKA_SASL_USERNAME": "a",
      "KAFKA_SASL_PASSWORD": "b"}, "KAFKA_SSL_CA_FILE is set but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use it"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "a",
      "KAFKA_SASL_PASSWORD": "b"}, "KAFKA_SASL_MECHANISM=PLAIN over SASL_PLAINTEXT would send the password in clear"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nowhere/ca.crt"},
     "KAFKA_SSL_CA_FILE='/nowhere/ca.crt': no such file"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/nowhere/tls.crt"},
     "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together"),
])
def test_incomplete_or_contradictory_settings_are_refused_naming_the_variable(env, message):
    with pytest.raises(SettingsError) as refused:
        kafka_security(env)
    assert str(refused.value).startswith(message)
