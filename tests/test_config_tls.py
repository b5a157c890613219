"""[sip.tls] and the SRTP keys of [media] (issue 13): defaults, loading, errors naming the key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import ConfigError, GatewayConfig, TlsConfig, load_config, validate


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_off_and_verifying() -> None:
    config = GatewayConfig()
    tls = config.sip.tls
    assert (tls.enabled, tls.port, tls.min_version) == (False, 5061, "1.2")
    assert tls.verify_server is True
    assert tls.verify_client is False
    assert tls.allow_sdes_over_plain is False
    assert config.media.srtp == "off"
    assert config.media.srtp_suites[0] == "AES_CM_128_HMAC_SHA1_80"
    validate(config)


def test_section_loads(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "[sip.tls]\n"
            'port = 5071\ncert_file = "/etc/srg/tls.crt"\nkey_file = "/etc/srg/tls.key"\n'
            'ca_file = "/etc/srg/trunk-ca.pem"\nclient_ca_file = "/etc/srg/clients.pem"\n'
            'verify_client = true\nverify_server = false\nmin_version = "1.3"\n'
            "allow_sdes_over_plain = true\n"
            '[media]\nsrtp = "off"\nsrtp_suites = ["AEAD_AES_256_GCM", "AES_CM_128_HMAC_SHA1_80"]\n',
        ),
        env={},
    )
    assert config.sip.tls == TlsConfig(
        enabled=False,
        port=5071,
        cert_file="/etc/srg/tls.crt",
        key_file="/etc/srg/tls.key",
        ca_file="/etc/srg/trunk-ca.pem",
        client_ca_file="/etc/srg/clients.pem",
        verify_client=True,
        verify_server=False,
        min_version="1.3",
        allow_sdes_over_plain=True,
    )
    assert config.media.srtp_suites == ("AEAD_AES_256_GCM", "AES_CM_128_HMAC_SHA1_80")


def test_media_srtp_has_an_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"media\.srtp: 'sometimes' is not one of"):
        load_config(write(tmp_path, ""), env={"SRG_MEDIA_SRTP": "sometimes"})


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[sip.tls]\nport = 70000\n", "sip.tls.port: 70000 is not a valid port"),
        ('[sip.tls]\nmin_version = "1.1"\n', "sip.tls.min_version: '1.1' is not one of 1.2, 1.3"),
        ("[sip.tls]\nverify = true\n", "sip.tls.verify: unknown key"),
        ('[sip.tls]\nverify_server = "no"\n', "sip.tls.verify_server: 'no' is not a boolean"),
        ("[sip.tls]\nenabled = true\n", "sip.tls.cert_file: required when sip.tls.enabled"),
        (
            '[sip.tls]\nenabled = true\ncert_file = "c"\n',
            "sip.tls.key_file: required when sip.tls.enabled",
        ),
        ("[sip.tls]\nverify_client = true\n", "sip.tls.client_ca_file: required with"),
        (
            '[sip]\nport = 5061\n[sip.tls]\nenabled = true\ncert_file = "c"\nkey_file = "k"\n',
            "sip.tls.port: 5061 is sip.port",
        ),
        ('[media]\nsrtp = "always"\n', "media.srtp: 'always' is not one of off, optional"),
        ("[media]\nsrtp_suites = []\n", "media.srtp_suites: at least one suite"),
        ('[media]\nsrtp_suites = ["F8_128_HMAC_SHA1_80"]\n', "media.srtp_suites[0]: 'F8_128"),
        (
            '[media]\nsrtp_suites = ["AEAD_AES_128_GCM", "AEAD_AES_128_GCM"]\n',
            "media.srtp_suites[1]: 'AEAD_AES_128_GCM' is listed twice",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, toml), env={})
    assert needle in str(excinfo.value)


def test_tls_and_srtp_can_be_turned_on() -> None:
    """Wired now (issue 13): enabling either is a valid configuration."""
    config = GatewayConfig()
    tls_on = replace(
        config,
        sip=replace(config.sip, tls=TlsConfig(enabled=True, cert_file="c", key_file="k")),
    )
    validate(tls_on)
    for policy in ("optional", "required"):
        validate(replace(config, media=replace(config.media, srtp=policy)))


def test_route_and_registration_srtp_overrides(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[[registrations]]\nregistrar = "sips:pbx.example.com"\nusername = "100"\n'
            'srtp = "required"\n'
            '[[routes]]\nname = "sales"\nsrtp = "optional"\n',
        ),
        env={},
    )
    assert config.registrations[0].srtp == "required"
    assert config.routes[0].srtp == "optional"
    assert config.media.srtp == "off"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        (
            '[[routes]]\nname = "r"\nsrtp = "always"\n',
            "routes[0].srtp: 'always' is not one of off, optional, required",
        ),
        (
            '[[registrations]]\nregistrar = "sip:pbx.example.com"\nusername = "1"\n'
            'srtp = "maybe"\n',
            "registrations[0].srtp: 'maybe' is not one of off, optional, required",
        ),
    ],
)
def test_srtp_overrides_name_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, toml), env={})
    assert needle in str(excinfo.value)


def test_settings_for_sip_tls() -> None:
    tls = TlsConfig(
        cert_file="c.pem",
        key_file="k.pem",
        ca_file="trunks.pem",
        client_ca_file="clients.pem",
        verify_client=True,
        verify_server=False,
        min_version="1.3",
    )
    server = tls.server_settings()
    assert (server.cert_file, server.key_file, server.ca_file) == ("c.pem", "k.pem", "clients.pem")
    assert (server.verify_client, server.min_version) == (True, "1.3")
    client = tls.client_settings()
    assert (client.ca_file, client.verify_server, client.min_version) == (
        "trunks.pem",
        False,
        "1.3",
    )
