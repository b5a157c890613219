"""gateway/admission.py: config -> policy, what SIGHUP may change, the admission metrics."""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, generate_latest

from gateway.admission import (
    AdmissionCollector,
    admission_policy,
    apply_to_ua,
    inbound_auth,
    open_networks,
    resolve_registrars,
)
from gateway.config import (
    GatewayConfig,
    InboundAuthConfig,
    RegistrationConfig,
    Secret,
    SipConfig,
)
from gateway.config.reload import changed_keys, reload_plan
from sip.transport import Transport
from sip.useragent import UserAgent


def test_policy_and_digest_from_sip_config() -> None:
    sip = SipConfig(allow_networks=("10.0.0.0/8",), invite_rate_per_source=2.0)
    policy = admission_policy(sip)
    assert policy.allow_networks == ("10.0.0.0/8",) and policy.invite_rate == 2.0
    assert inbound_auth(sip) is None
    auth = InboundAuthConfig(username="pbx", password=Secret("pw"), nonce_ttl_s=60.0)
    made = inbound_auth(dataclasses.replace(sip, inbound_auth=auth))
    assert made is not None and made.password == "pw" and made.nonce_ttl == 60.0
    assert open_networks(SipConfig(allow_networks=("10.0.0.0/8", "::/0"))) == ["::/0"]


def test_changed_keys_are_dotted_leaves() -> None:
    old = GatewayConfig()
    new = dataclasses.replace(
        old,
        sip=dataclasses.replace(
            old.sip,
            port=5070,
            allow_networks=("10.0.0.0/8",),
            inbound_auth=dataclasses.replace(old.sip.inbound_auth, realm="r"),
        ),
    )
    assert changed_keys(old, new) == ["sip.port", "sip.allow_networks", "sip.inbound_auth.realm"]
    assert changed_keys(old, old) == []


def test_reload_plan_splits_applied_and_restart_keys() -> None:
    old = GatewayConfig()
    new = dataclasses.replace(
        old,
        sip=dataclasses.replace(old.sip, max_calls_per_source=3, transports=("udp",)),
        realtime=dataclasses.replace(old.realtime, voice="cedar", url="wss://other/v1"),
        media=dataclasses.replace(old.media, rtp_port_min=30000),
    )
    applied, restart = reload_plan(old, new)
    assert applied == ["sip.max_calls_per_source", "realtime.voice"]
    assert restart == ["sip.transports", "media.rtp_port_min", "realtime.url"]


def test_metrics_read_the_ua_counters() -> None:
    ua = UserAgent(Transport("127.0.0.1", 0))
    ua.counters.rejected_allowlist = 4
    ua.admission.counters.rate_limited = 7
    registry = CollectorRegistry()
    registry.register(AdmissionCollector(lambda: ua))
    text = generate_latest(registry).decode()
    assert 'srg_sip_invites_rejected_total{reason="not_admitted"} 4.0' in text
    assert 'srg_sip_invites_rejected_total{reason="rate_limited"} 7.0' in text
    assert "srg_sip_admission_sources 0.0" in text
    empty = CollectorRegistry()
    empty.register(AdmissionCollector(lambda: None))
    # Before the UA exists every series is there at 0, so rate() works from the first scrape.
    assert (
        'srg_sip_invites_rejected_total{reason="max_calls"} 0.0' in generate_latest(empty).decode()
    )


def test_apply_to_ua_sets_limits_and_keeps_an_unchanged_digest_server() -> None:
    ua = UserAgent(Transport("127.0.0.1", 0))
    auth = InboundAuthConfig(username="pbx", password=Secret("pw"))
    sip = SipConfig(max_calls=7, allow_networks=("10.0.0.0/8",), inbound_auth=auth)
    apply_to_ua(ua, sip)
    assert ua.max_calls == 7
    assert ua.admission.policy.allow_networks == ("10.0.0.0/8",)
    server = ua.digest_server
    assert server is not None and server.username == "pbx"
    apply_to_ua(ua, dataclasses.replace(sip, max_calls_per_source=2))
    assert ua.digest_server is server  # outstanding nonces stay valid
    assert ua.admission.policy.max_calls_per_source == 2
    new_auth = dataclasses.replace(auth, password=Secret("new"))
    apply_to_ua(ua, dataclasses.replace(sip, inbound_auth=new_auth))
    assert ua.digest_server is not server
    apply_to_ua(ua, SipConfig())
    assert ua.digest_server is None and ua.admission.policy.allow_networks == ()


async def test_registrars_resolve_to_addresses_maddr_included() -> None:
    regs = (
        RegistrationConfig(registrar="sip:192.0.2.10:5060", username="a"),
        RegistrationConfig(registrar="sip:localhost;maddr=198.51.100.7", username="b"),
        RegistrationConfig(registrar="sip:[2001:db8::5]", username="c"),
    )
    found = await resolve_registrars(regs)
    assert {"192.0.2.10", "198.51.100.7", "2001:db8::5", "127.0.0.1"} <= set(found)
