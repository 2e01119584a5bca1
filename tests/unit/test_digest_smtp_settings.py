"""Reading the SMTP connection from Airflow with the provider's meaning of its extras."""

from __future__ import annotations

import json

import pytest

from retention_pipeline.digest.delivery import SmtpSettings, smtp_settings_from_airflow


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "smtp", **fields}))


def test_provider_defaults_mean_implicit_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(monkeypatch, "digest_smtp_a", host="mail.example.com")
    assert smtp_settings_from_airflow("digest_smtp_a") == SmtpSettings(
        host="mail.example.com", port=465, ssl=True, starttls=False, timeout=30.0
    )


def test_starttls_with_login_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(
        monkeypatch,
        "digest_smtp_b",
        host="smtp.example.com",
        port=587,
        login="digest",
        password="s3cret-pass",
        extra={"disable_ssl": True, "timeout": 10, "ssl_context": "none"},
    )
    settings = smtp_settings_from_airflow("digest_smtp_b")
    assert settings is not None
    assert (settings.port, settings.ssl, settings.starttls, settings.timeout) == (587, False, True, 10.0)
    assert (settings.login, settings.password, settings.verify_certificate) == (
        "digest",
        "s3cret-pass",
        False,
    )
    assert "s3cret-pass" not in repr(settings)


def test_string_flags_from_a_uri_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Extras in a connection URI are strings; "false" must not count as true.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DIGEST_SMTP_C", "smtp://mailcatcher:1025?disable_ssl=true&disable_tls=true"
    )
    settings = smtp_settings_from_airflow("digest_smtp_c")
    assert settings is not None
    assert (settings.host, settings.port, settings.ssl, settings.starttls) == (
        "mailcatcher",
        1025,
        False,
        False,
    )
    monkeypatch.setenv("AIRFLOW_CONN_DIGEST_SMTP_D", "smtp://mail:25?disable_ssl=true&disable_tls=false")
    other = smtp_settings_from_airflow("digest_smtp_d")
    assert other is not None and other.starttls is True


def test_missing_connection_means_no_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DIGEST_SMTP_MISSING", raising=False)
    assert smtp_settings_from_airflow("digest_smtp_missing") is None
