"""Gateway settings: read once from an environment mapping; a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import SettingsError
from gateways.settings import gateway_settings

SECRET = "receiver-secret-0123456789"


def test_the_kind_comes_from_the_command_line_or_gateway_kind():
    assert gateway_settings("log", {}).kind == "log"
    assert gateway_settings(None, {"GATEWAY_KIND": "log"}).kind == "log"


@pytest.mark.parametrize(
    "kind, env, message",
    [
        (None, {}, "GATEWAY_KIND='' is not one of webhook, email, log"),
        ("chat", {}, "GATEWAY_KIND='chat' is not one of"),
        ("log", {"GATEWAY_KIND": "email"}, "GATEWAY_KIND='email' contradicts the command line's 'log'"),
        ("log", {"DEDUP_CAPACITY": "0"}, "DEDUP_CAPACITY='0' must be a whole number"),
        ("log", {"GRPC_PORT": "x"}, "GRPC_PORT='x' is not a port number"),
    ],
)
def test_a_bad_common_setting_names_its_variable(kind, env, message):
    with pytest.raises(SettingsError, match=f"^{message}"):
        gateway_settings(kind, env)


def test_the_log_gateway_writes_to_log_file_or_under_its_data_dir():
    assert gateway_settings("log", {"LOG_FILE": "/tmp/x.jsonl"}).log_file == Path("/tmp/x.jsonl")
    assert gateway_settings("log", {"DATA_DIR": "/data/g"}).log_file == Path("/data/g/deliveries.jsonl")
    assert gateway_settings("log", {}).service.data_dir == Path("var/gateway-log")


def test_webhook_secrets_are_read_inline_as_json_and_kept_out_of_repr():
    settings = gateway_settings("webhook", {"WEBHOOK_SECRETS": f'{{"https://hooks.example/": "{SECRET}", "*": "{SECRET}"}}'})

    assert settings.webhook.secrets == {"https://hooks.example/": SECRET, "*": SECRET}
    assert settings.webhook.timeout == 10.0
    assert SECRET not in repr(settings)


def test_webhook_secrets_are_read_from_a_yaml_file(tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text(f'"https://hooks.example/billing": {SECRET}\n')

    settings = gateway_settings("webhook", {"WEBHOOK_SECRETS_FILE": str(path), "WEBHOOK_TIMEOUT": "2.5"})

    assert settings.webhook.secrets == {"https://hooks.example/billing": SECRET}
    assert settings.webhook.timeout == 2.5


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "set exactly one of WEBHOOK_SECRETS"),
        ({"WEBHOOK_SECRETS": "{}", "WEBHOOK_SECRETS_FILE": "x"}, "set exactly one of WEBHOOK_SECRETS"),
        ({"WEBHOOK_SECRETS": "{nope"}, "WEBHOOK_SECRETS is not JSON"),
        ({"WEBHOOK_SECRETS": "{}"}, "WEBHOOK_SECRETS: expected a non-empty mapping"),
        ({"WEBHOOK_SECRETS": '{"ftp://x/": "' + SECRET + '"}'}, "WEBHOOK_SECRETS: 'ftp://x/': prefix: must be an http"),
        ({"WEBHOOK_SECRETS": '{"*": "short"}'}, "WEBHOOK_SECRETS: the secret for '\\*' is shorter than 16 bytes"),
        ({"WEBHOOK_SECRETS": '{"*": 5}'}, "WEBHOOK_SECRETS: '\\*': prefixes and secrets must be strings"),
        ({"WEBHOOK_SECRETS_FILE": "/nonexistent/secrets.yaml"}, "WEBHOOK_SECRETS_FILE /nonexistent/secrets.yaml: cannot read"),
        ({"WEBHOOK_SECRETS": '{"*": "' + SECRET + '"}', "WEBHOOK_TIMEOUT": "0"}, "WEBHOOK_TIMEOUT='0' must be more than 0"),
        ({"WEBHOOK_SECRETS": '{"*": "' + SECRET + '"}', "WEBHOOK_TIMEOUT": "soon"}, "WEBHOOK_TIMEOUT='soon' is not a number"),
    ],
)
def test_bad_webhook_settings_name_the_variable_and_never_the_secret(env, message):
    with pytest.raises(SettingsError, match=f"^{message}") as raised:
        gateway_settings("webhook", env)

    assert SECRET not in str(raised.value)


def test_a_bad_line_of_a_secrets_file_is_named(tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text('"*": ok-secret-0123456789\nbad: value: other\n')

    with pytest.raises(SettingsError, match=f"^WEBHOOK_SECRETS_FILE {path}:2: not valid YAML: mapping values are not allowed here"):
        gateway_settings("webhook", {"WEBHOOK_SECRETS_FILE": str(path)})


SMTP = {"SMTP_HOST": "relay.example", "SMTP_FROM": "handoff@cc.example"}


def test_smtp_settings_default_to_port_25_and_opportunistic_starttls():
    smtp = gateway_settings("email", SMTP).smtp

    assert (smtp.host, smtp.port, smtp.sender) == ("relay.example", 25, "handoff@cc.example")
    assert smtp.starttls is None
    assert (smtp.user, smtp.password, smtp.ca_file, smtp.timeout, smtp.connections) == (None, None, None, 30.0, 10)


def test_smtp_credentials_are_taken_with_starttls_and_kept_out_of_repr():
    env = {**SMTP, "SMTP_STARTTLS": "true", "SMTP_USER": "handoff", "SMTP_PASSWORD": "pa55-word-xyz", "SMTP_PORT": "587"}

    settings = gateway_settings("email", env)

    assert (settings.smtp.port, settings.smtp.starttls, settings.smtp.user) == (587, True, "handoff")
    assert "pa55-word-xyz" not in repr(settings)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SMTP_FROM": "handoff@cc.example"}, "SMTP_HOST is required"),
        ({**SMTP, "SMTP_FROM": "nobody"}, "SMTP_FROM='nobody' must be a plain e-mail address"),
        ({**SMTP, "SMTP_PORT": "0"}, "SMTP_PORT='0' is not a port number"),
        ({**SMTP, "SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS='maybe' is not one of true, false, auto"),
        ({**SMTP, "SMTP_USER": "handoff"}, "SMTP_USER and SMTP_PASSWORD go together"),
        ({**SMTP, "SMTP_USER": "u", "SMTP_PASSWORD": "p"}, "SMTP_USER needs SMTP_STARTTLS=true"),
        ({**SMTP, "SMTP_CA_FILE": "/nonexistent/ca.pem"}, "SMTP_CA_FILE /nonexistent/ca.pem: no such file"),
        ({**SMTP, "SMTP_CONNECTIONS": "0"}, "SMTP_CONNECTIONS='0' must be a whole number of at least 1"),
    ],
)
def test_bad_smtp_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=f"^{message}"):
        gateway_settings("email", env)


def test_settings_are_frozen():
    settings = gateway_settings("log", {})

    with pytest.raises(AttributeError):
        settings.kind = "webhook"  # type: ignore[misc]
