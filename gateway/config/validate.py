"""`validate(config)`: value ranges and cross-field rules of the whole configuration, raising
`ConfigError` naming the first bad key. The per-call sections are checked by per_call.py.
"""

from __future__ import annotations

import ipaddress
import re

from gateway.config.checks import (
    HOSTNAME,
    SIP_URI,
    check_choice,
    check_ip,
    check_plain_http,
    check_port,
    is_ip_address,
    parses_as_uri,
)
from gateway.config.per_call import route_config, validate_calls, validate_realtime
from gateway.config.schema import (
    VALID_CODECS,
    VALID_IDLE_AUDIO,
    VALID_LOG_FORMATS,
    VALID_LOG_LEVELS,
    VALID_SRTP_POLICIES,
    VALID_SRTP_SUITES,
    VALID_TLS_VERSIONS,
    VALID_TRANSPORTS,
    ConfigError,
    GatewayConfig,
    MediaConfig,
    RegistrationConfig,
    SipConfig,
)

# sip.timer_t1_ms bounds: below 100 ms retransmissions flood a path with any real delay; above
# 5 s a lost INVITE response waits minutes for Timer H (64 x T1).
MIN_T1_MS = 100
MAX_T1_MS = 5000


def _validate_admission(sip: SipConfig) -> None:
    if not 0 < sip.invite_rate_per_source <= 10000:
        raise ConfigError(
            f"sip.invite_rate_per_source: {sip.invite_rate_per_source} must be > 0 and <= 10000"
        )
    if not 1 <= sip.invite_burst_per_source <= 100000:
        raise ConfigError(
            f"sip.invite_burst_per_source: {sip.invite_burst_per_source} must be 1-100000"
        )
    if sip.max_calls_per_source < 1:
        raise ConfigError(f"sip.max_calls_per_source: {sip.max_calls_per_source} must be >= 1")
    if not 16 <= sip.max_tracked_sources <= 1_000_000:
        raise ConfigError(f"sip.max_tracked_sources: {sip.max_tracked_sources} must be 16-1000000")
    if not 1 <= sip.inbound_auth.nonce_ttl_s <= 86400:
        raise ConfigError(
            f"sip.inbound_auth.nonce_ttl_s: {sip.inbound_auth.nonce_ttl_s} must be 1-86400 seconds"
        )


def _validate_media_bounds(media: MediaConfig) -> None:
    """Issue 9 media keys: latching and the input/playout bounds."""
    if not 1 <= media.rtp_latch_packets <= 50:
        raise ConfigError(f"media.rtp_latch_packets: {media.rtp_latch_packets} is not in 1-50")
    if not 20 <= media.input_burst_ms <= 5000:
        raise ConfigError(f"media.input_burst_ms: {media.input_burst_ms} is not in 20-5000 ms")
    if not 20 <= media.append_ms <= 100:
        raise ConfigError(f"media.append_ms: {media.append_ms} is not in 20-100 ms")
    if not 0 <= media.rtp_port_quarantine_s <= 600:
        raise ConfigError(
            f"media.rtp_port_quarantine_s: {media.rtp_port_quarantine_s:g} is not in 0-600 s "
            "(0 = off)"
        )
    if not 0 <= media.jitter_min_ms <= 500:
        raise ConfigError(f"media.jitter_min_ms: {media.jitter_min_ms:g} is not in 0-500 ms")
    if not media.jitter_min_ms <= media.jitter_max_ms <= 2000:
        raise ConfigError(
            f"media.jitter_max_ms: {media.jitter_max_ms:g} is not between media.jitter_min_ms "
            f"({media.jitter_min_ms:g}) and 2000 ms"
        )
    if not 1 <= media.playout_max_s <= 3600:
        raise ConfigError(f"media.playout_max_s: {media.playout_max_s:g} is not in 1-3600 s")
    if media.ipv6_address:
        try:
            ipaddress.IPv6Address(media.ipv6_address.strip("[]"))
        except ValueError:
            raise ConfigError(
                f"media.ipv6_address: {media.ipv6_address!r} is not an IPv6 address literal"
            ) from None


def _validate_sip_limits(sip: SipConfig) -> None:
    for key in ("max_server_transactions", "max_server_transactions_per_source"):
        if getattr(sip, key) < 0:
            raise ConfigError(f"sip.{key}: {getattr(sip, key)} must be >= 0 (0 = automatic)")
    for key in ("tcp_max_connections", "tcp_max_connections_per_source"):
        if getattr(sip, key) < 1:
            raise ConfigError(f"sip.{key}: {getattr(sip, key)} must be at least 1")
    if not sip.tcp_message_deadline_s > 0:
        raise ConfigError(f"sip.tcp_message_deadline_s: {sip.tcp_message_deadline_s} must be > 0")
    if not MIN_T1_MS <= sip.timer_t1_ms <= MAX_T1_MS:
        raise ConfigError(
            f"sip.timer_t1_ms: {sip.timer_t1_ms} is not in {MIN_T1_MS}-{MAX_T1_MS} "
            "(RFC 3261 T1 in milliseconds; 500 is the default)"
        )
    # 65535 is the cap on a whole message (sip.transport DEFAULT_MAX_MESSAGE).
    for key, low in (("tcp_max_header_bytes", 1024), ("tcp_max_body_bytes", 0)):
        value = getattr(sip, key)
        if not low <= value <= 65535:
            raise ConfigError(f"sip.{key}: {value} is not in {low}-65535")


def _validate_tls_srtp(config: GatewayConfig) -> None:
    """[sip.tls] and the SRTP keys of [media] (issue 13)."""
    tls = config.sip.tls
    check_port("sip.tls.port", tls.port)
    if tls.enabled and tls.port == config.sip.port and "tcp" in config.sip.transports:
        raise ConfigError(
            f"sip.tls.port: {tls.port} is sip.port, where SIP over TCP listens; use 5061"
        )
    check_choice("sip.tls.min_version", tls.min_version, VALID_TLS_VERSIONS)
    if tls.enabled:
        for key in ("cert_file", "key_file"):
            if not getattr(tls, key):
                raise ConfigError(f"sip.tls.{key}: required when sip.tls.enabled = true")
    if tls.verify_client and not tls.client_ca_file:
        raise ConfigError(
            "sip.tls.client_ca_file: required with verify_client = true "
            "(the CAs that sign the clients' certificates)"
        )
    media = config.media
    check_choice("media.srtp", media.srtp, VALID_SRTP_POLICIES)
    if not media.srtp_suites:
        raise ConfigError(
            f"media.srtp_suites: at least one suite is required ({', '.join(VALID_SRTP_SUITES)})"
        )
    for i, suite in enumerate(media.srtp_suites):
        check_choice(f"media.srtp_suites[{i}]", suite, VALID_SRTP_SUITES)
        if suite in media.srtp_suites[:i]:
            raise ConfigError(f"media.srtp_suites[{i}]: {suite!r} is listed twice")


def _check_srtp_override(key: str, value: str) -> None:
    if value and value not in VALID_SRTP_POLICIES:
        raise ConfigError(
            f"{key}: {value!r} is not one of {', '.join(VALID_SRTP_POLICIES)} "
            "(or leave it out for media.srtp)"
        )


def validate(config: GatewayConfig) -> None:
    """Check values and cross-field rules; raise `ConfigError` naming the first bad key."""
    sip = config.sip
    # The bind address must be a literal: resolving names at start hides which interface
    # the gateway really listens on.
    check_ip("sip.host", sip.host)
    check_port("sip.port", sip.port)
    if sip.advertised_host and not (
        HOSTNAME.match(sip.advertised_host) or is_ip_address(sip.advertised_host)
    ):
        raise ConfigError(
            f"sip.advertised_host: {sip.advertised_host!r} is not an IP address or host name"
        )
    if not sip.transports:
        raise ConfigError("sip.transports: at least one transport is required (udp, tcp)")
    for i, transport in enumerate(sip.transports):
        check_choice(f"sip.transports[{i}]", transport, VALID_TRANSPORTS)
    if sip.max_calls < 1:
        raise ConfigError(f"sip.max_calls: {sip.max_calls} must be at least 1")
    for i, net in enumerate(sip.allow_networks):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"sip.allow_networks[{i}]: {net!r} is not a CIDR network") from None
    if not sip.codecs:
        raise ConfigError("sip.codecs: at least one codec is required (PCMU, PCMA)")
    for i, codec in enumerate(sip.codecs):
        check_choice(f"sip.codecs[{i}]", codec, VALID_CODECS)
    if sip.inbound_auth.username and not sip.inbound_auth.password:
        raise ConfigError("sip.inbound_auth.password: required when inbound_auth.username is set")
    _validate_admission(sip)
    _validate_sip_limits(sip)

    for i, reg in enumerate(config.registrations):
        key = f"registrations[{i}]"
        if not SIP_URI.match(reg.registrar) or not parses_as_uri(reg.registrar):
            raise ConfigError(f"{key}.registrar: {reg.registrar!r} is not a sip: or sips: URI")
        if not reg.username:
            raise ConfigError(f"{key}.username: must not be empty")
        if not 10 <= reg.expires <= 86400:
            raise ConfigError(f"{key}.expires: {reg.expires} is not in 10-86400 seconds")
        _check_srtp_override(f"{key}.srtp", reg.srtp)
        for j, caller in enumerate(reg.allowed_caller_ids):
            if not re.fullmatch(r"[A-Za-z0-9+*#._~-]{1,64}", caller):
                raise ConfigError(
                    f"{key}.allowed_caller_ids[{j}]: {caller!r} is not a SIP user part "
                    "(1-64 of A-Z a-z 0-9 + * # . _ ~ -)"
                )

    media = config.media
    # Below 1024 needs root and collides with system services; RTP wants an even base port
    # (RFC 3550 11) with RTCP on the next odd one, so a range needs at least two ports.
    check_port("media.rtp_port_min", media.rtp_port_min, low=1024)
    check_port("media.rtp_port_max", media.rtp_port_max, low=1024)
    if media.rtp_port_max <= media.rtp_port_min:
        raise ConfigError(
            f"media.rtp_port_max: {media.rtp_port_max} must be greater than "
            f"media.rtp_port_min ({media.rtp_port_min})"
        )
    check_choice("media.idle_audio", media.idle_audio, VALID_IDLE_AUDIO)
    if media.rtp_timeout_s < 0:
        raise ConfigError(f"media.rtp_timeout_s: {media.rtp_timeout_s} must be >= 0 (0 = off)")
    _validate_media_bounds(media)
    _validate_tls_srtp(config)

    if not 0 <= config.calls.answer_delay_ms <= 60000:
        raise ConfigError(
            f"calls.answer_delay_ms: {config.calls.answer_delay_ms} is not in 0-60000 ms"
        )
    if config.calls.max_duration_s < 0:
        raise ConfigError(
            f"calls.max_duration_s: {config.calls.max_duration_s} must be >= 0 (0 = unlimited)"
        )

    check_choice("log.level", config.log.level.upper(), VALID_LOG_LEVELS)
    check_choice("log.format", config.log.format, VALID_LOG_FORMATS)

    url = config.realtime.url
    if not (url.startswith("ws://") or url.startswith("wss://")):
        raise ConfigError(f"realtime.url: {url!r} is not a ws:// or wss:// URL")
    validate_realtime(config)
    validate_calls(config)
    _validate_product(config)
    for i in range(len(config.routes)):
        route_config(config, i)  # raises naming routes[i].<key>


def _validate_product(config: GatewayConfig) -> None:
    """[control], [records], [webhooks], [shutdown], registration names and [[routes]]."""
    control = config.control
    check_ip("control.host", control.host)
    check_port("control.port", control.port, low=0)
    for i, name in enumerate(control.allowed_hosts):
        if not (HOSTNAME.match(name) or is_ip_address(name)):
            raise ConfigError(f"control.allowed_hosts[{i}]: {name!r} is not a host name")
    if not 1024 <= control.max_head_bytes <= 1024 * 1024:
        raise ConfigError(
            f"control.max_head_bytes: {control.max_head_bytes} is not in 1024-1048576"
        )
    if not 1024 <= control.max_body_bytes <= 16 * 1024 * 1024:
        raise ConfigError(
            f"control.max_body_bytes: {control.max_body_bytes} is not in 1024-16777216"
        )
    if not 0.5 <= control.read_timeout_s <= 300:
        raise ConfigError(f"control.read_timeout_s: {control.read_timeout_s} is not in 0.5-300 s")
    if config.records.recording and not (config.records.recording_dir or config.records.dir):
        raise ConfigError("records.recording: true needs records.dir or records.recording_dir")
    if any(r.recording == "on" for r in config.routes) and not (
        config.records.recording_dir or config.records.dir
    ):
        raise ConfigError("records.dir: a route records calls, so a directory is required")
    hooks = config.webhooks
    for key in ("call_started_url", "call_ended_url"):
        url = getattr(hooks, key)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhooks.{key}: {url!r} is not an http:// or https:// URL")
        check_plain_http(f"webhooks.{key}", url, hooks.allow_plain_http, "webhooks")
    if not 0.1 <= hooks.timeout_s <= 60:
        raise ConfigError(f"webhooks.timeout_s: {hooks.timeout_s} is not in 0.1-60 s")
    if not 0 <= hooks.max_response_bytes <= 64 * 1024 * 1024:
        raise ConfigError(
            f"webhooks.max_response_bytes: {hooks.max_response_bytes} is not in 0-67108864"
        )
    if not 0 <= config.shutdown.drain_timeout_s <= 3600:
        raise ConfigError(
            f"shutdown.drain_timeout_s: {config.shutdown.drain_timeout_s} is not in 0-3600 s"
        )
    reg_names: set[str] = set()
    for i, reg in enumerate(config.registrations):
        name = registration_name(reg)
        if name in reg_names:
            raise ConfigError(f"registrations[{i}].name: {name!r} is used twice")
        reg_names.add(name)
    route_names: set[str] = set()
    tool_names = {t.name for t in config.tools}
    for i, route in enumerate(config.routes):
        key = f"routes[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", route.name) or route.name in route_names:
            raise ConfigError(
                f"{key}.name: {route.name!r} must be unique, 1-64 of A-Z a-z 0-9 _ . -"
            )
        route_names.add(route.name)
        match = route.match
        for field_name in ("request_user_regex", "to_user_regex", "header_regex"):
            pattern = getattr(match, field_name)
            if pattern:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(
                        f"{key}.match.{field_name}: {pattern!r} is not a regular expression ({exc})"
                    ) from None
        if (match.header_value or match.header_regex) and not match.header:
            raise ConfigError(f"{key}.match.header: required with header_value / header_regex")
        if match.header and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", match.header):
            raise ConfigError(f"{key}.match.header: {match.header!r} is not a header name")
        if match.source_network:
            try:
                ipaddress.ip_network(match.source_network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"{key}.match.source_network: {match.source_network!r} is not a CIDR network"
                ) from None
        if match.registration and match.registration not in reg_names:
            raise ConfigError(
                f"{key}.match.registration: {match.registration!r} is not a registrations name"
            )
        for j, tool in enumerate(route.tools):
            if tool != "*" and tool not in tool_names:
                raise ConfigError(f"{key}.tools[{j}]: {tool!r} is not a [[tools]] name")
        check_choice(f"{key}.recording", route.recording, ("", "on", "off"))
        _check_srtp_override(f"{key}.srtp", route.srtp)


def registration_name(reg: RegistrationConfig) -> str:
    return reg.name or reg.username
