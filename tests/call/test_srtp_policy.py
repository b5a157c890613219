"""Which SRTP policy a call gets (gateway/call/srtp.py) and what the configuration gives it
(gateway/call_settings.py srtp_settings_for): the route's `srtp` over the registration's over
media.srtp; SRTP offered only when required and where SDES may travel."""

from __future__ import annotations

from dataclasses import replace

from gateway.call.srtp import SrtpSettings, offer_crypto, offer_refusal, srtp_warning
from gateway.call_settings import srtp_settings_for
from gateway.config import GatewayConfig, RegistrationConfig, RouteConfig
from sip.sdp_crypto import SrtpPolicy

OFF, OPTIONAL, REQUIRED = SrtpPolicy.OFF, SrtpPolicy.OPTIONAL, SrtpPolicy.REQUIRED


def test_route_over_registration_over_media_srtp() -> None:
    config = GatewayConfig()
    config = replace(
        config,
        media=replace(config.media, srtp="optional"),
        registrations=(
            RegistrationConfig("sips:pbx.example.com", "100", name="pbx", srtp="required"),
            RegistrationConfig("sip:[2001:db8::5]:5070", "200", name="v6", srtp="off"),
            RegistrationConfig("sip:other.example.com", "300", name="plain"),
        ),
        routes=(RouteConfig("sales", srtp="off"), RouteConfig("support")),
    )
    settings = srtp_settings_for(config, "gw.example.com")
    assert settings.policy_for("support") is OPTIONAL
    assert settings.policy_for("support", "PBX.example.com") is REQUIRED  # from its registrar
    assert settings.policy_for("support", "[2001:db8::5]") is OFF
    assert settings.policy_for("support", "other.example.com") is OPTIONAL  # no srtp key
    assert settings.policy_for("sales", "pbx.example.com") is OFF  # the route wins
    assert settings.policy_for("outbound", registration="pbx") is REQUIRED
    assert settings.policy_for("outbound", registration="plain") is OPTIONAL
    assert settings.warning("SRTP is off").startswith('399 gw.example.com "')


def test_allow_sdes_over_plain_and_suites_come_from_the_config() -> None:
    config = GatewayConfig()
    config = replace(
        config,
        sip=replace(config.sip, tls=replace(config.sip.tls, allow_sdes_over_plain=True)),
        media=replace(config.media, srtp="required", srtp_suites=("AEAD_AES_256_GCM",)),
    )
    settings = srtp_settings_for(config)
    terms = settings.terms(REQUIRED, signalling_secure=False)
    assert terms.sdes_allowed and terms.preference == ("AEAD_AES_256_GCM",)
    assert [line.suite for line in offer_crypto(terms)] == ["AEAD_AES_256_GCM"]


def test_offers_are_srtp_only_when_required_and_sdes_may_travel() -> None:
    settings = SrtpSettings()
    assert offer_crypto(settings.terms(OPTIONAL, signalling_secure=True)) == []
    assert offer_crypto(settings.terms(OFF, signalling_secure=True)) == []
    assert len(offer_crypto(settings.terms(REQUIRED, signalling_secure=True))) == 4
    refusal = offer_refusal(settings.terms(REQUIRED, signalling_secure=False))
    assert refusal is not None and "not TLS" in refusal
    assert offer_refusal(settings.terms(OPTIONAL, signalling_secure=False)) is None


def test_warning_is_quoted_safely() -> None:
    assert srtp_warning("2001:db8::1", 'bad "line"') == "399 [2001:db8::1] \"bad 'line'\""
