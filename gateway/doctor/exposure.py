"""The exposure checks: the control API's token and bind, admission, API keys over plain
ws://, record directory permissions, plain http:// tool and webhook URLs, RTP latching.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config import GatewayConfig
from gateway.doctor.network import ip_or_none
from gateway.doctor.results import CheckResult, Status
from gateway.http_post import is_loopback_host


def check_realtime_transport(config: GatewayConfig) -> CheckResult:
    """The API key (and the call's audio) must not cross the network in clear: `ws://` is
    only for a local simulator or proxy."""
    name = "Realtime transport"
    url = config.realtime.url
    parts = urlsplit(url)
    if parts.scheme != "ws" or is_loopback_host(parts.hostname or ""):
        return CheckResult(name, Status.OK, f"{parts.scheme}:// to {parts.hostname}")
    if config.realtime.api_key:
        return CheckResult(
            name,
            Status.FAIL,
            f"realtime.url {url!r} is plain ws:// to a host that is not loopback, and an API "
            "key is set: the key and the calls' audio would cross the network unencrypted",
            "use wss:// (TLS), or reach a proxy on loopback",
        )
    return CheckResult(
        name,
        Status.WARN,
        f"realtime.url {url!r} is plain ws:// to a host that is not loopback: the calls' "
        "audio crosses the network unencrypted",
        "use wss:// (TLS)",
    )


def check_record_permissions(config: GatewayConfig) -> list[CheckResult]:
    """Call records and recordings (who called, what was said, the voices) readable only by
    the gateway's user: directories 0700, files 0600 (what the gateway creates)."""
    records = config.records
    directories = dict.fromkeys(d for d in (records.dir, records.recording_dir) if d)
    results = []
    for directory in directories:
        name = f"permissions of {directory}"
        path = Path(directory)
        if not path.exists():
            results.append(CheckResult(name, Status.OK, "does not exist yet (created 0700)"))
            continue
        try:
            mode = path.stat().st_mode & 0o777
            loose = [
                p.name
                for p in path.iterdir()
                if p.suffix in (".wav", ".json") and p.stat().st_mode & 0o077
            ]
        except OSError as exc:
            results.append(CheckResult(name, Status.WARN, f"cannot inspect: {exc}"))
            continue
        problems = []
        if mode & 0o077:
            problems.append(f"the directory is mode {mode:04o}")
        if loose:
            problems.append(
                f"{len(loose)} record/recording file(s) readable by others (e.g. {loose[0]})"
            )
        if problems:
            results.append(
                CheckResult(
                    name,
                    Status.WARN,
                    "; ".join(problems) + ": other users of this host can read call data",
                    f"chmod 700 {directory} && chmod 600 {directory}/*.wav {directory}/*.json",
                )
            )
        else:
            results.append(CheckResult(name, Status.OK, f"mode {mode:04o}, files private"))
    return results


def check_plain_http_urls(config: GatewayConfig) -> list[CheckResult]:
    """http:// tool and webhook URLs to hosts that are not loopback (allowed only with
    `allow_plain_http`): the call's data leaves the host unencrypted."""
    urls = [(f"tools[{i}].url", t.url, t.allow_plain_http) for i, t in enumerate(config.tools)]
    hooks = config.webhooks
    for key in ("call_started_url", "call_ended_url"):
        urls.append((f"webhooks.{key}", getattr(hooks, key), hooks.allow_plain_http))
    results = []
    for key, url, allowed in urls:
        parts = urlsplit(url)
        if url and parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            results.append(
                CheckResult(
                    f"plain HTTP {key}",
                    Status.WARN,
                    f"{url!r} sends call data unencrypted"
                    + (" (allow_plain_http = true)" if allowed else ""),
                    "use https://",
                )
            )
    return results


def check_exposure(config: GatewayConfig) -> list[CheckResult]:
    """The checks of this section, in order."""
    return [
        check_realtime_transport(config),
        *check_record_permissions(config),
        *check_plain_http_urls(config),
    ]


def check_control(config: GatewayConfig) -> list[CheckResult]:
    """The control API can place and hang up calls: without a token it must stay on loopback
    (issue 9). A token is required unless `control.token_required = false`."""
    control = config.control
    name = "control API"
    if not control.enabled:
        return [CheckResult(name, Status.OK, "disabled")]
    address = f"{control.host}:{control.port}"
    host = ip_or_none(control.host)
    loopback = host is not None and host.is_loopback
    if control.token_env or control.token_file or control.token.reveal():
        source = f"${control.token_env}" if control.token_env else control.token_file or "given"
        return [CheckResult(name, Status.OK, f"{address}, bearer token from {source}")]
    if control.token_required:
        return [
            CheckResult(
                name,
                Status.OK,
                f"{address}, bearer token generated at first start into .srg/control.token "
                "in the working directory",
            )
        ]
    if not loopback:
        return [
            CheckResult(
                name,
                Status.FAIL,
                f"{address} has no token (control.token_required = false) on a non-loopback "
                "address: anyone who reaches it can place calls on your trunks and hang up "
                "live ones",
                "remove control.token_required = false (a token is then generated), or set "
                "control.token_env / control.token_file, or bind control.host = 127.0.0.1",
            )
        ]
    return [
        CheckResult(
            name,
            Status.WARN,
            f"{address} has no token (control.token_required = false): every local process "
            "can place calls",
            "remove control.token_required = false unless the gateway runs in its own "
            "network namespace (a container without published control port)",
        )
    ]


def check_admission(config: GatewayConfig) -> CheckResult:
    """Who may make the gateway place a Realtime session (gateway/config/schema.py SipConfig has the
    rule): open admission (a /0 in sip.allow_networks) without digest is a warning."""
    sip = config.sip
    opened = [n for n in sip.allow_networks if ipaddress.ip_network(n, strict=False).prefixlen == 0]
    digest = bool(sip.inbound_auth.username)
    per_source = min(sip.max_calls_per_source, sip.max_calls)
    limits = (
        f"per source: {sip.invite_rate_per_source:g} INVITE/s (burst "
        f"{sip.invite_burst_per_source}), {per_source} concurrent calls"
    )
    if opened and not digest:
        return CheckResult(
            "admission",
            Status.WARN,
            f"open: sip.allow_networks contains {', '.join(opened)}, so any source may place "
            f"calls (each one a paid Realtime session); {limits}",
            "list the PBX/SBC networks in sip.allow_networks instead, or require digest "
            "credentials with sip.inbound_auth.username/password",
        )
    who = ["the host itself"]
    if sip.allow_networks:
        who.append(f"sip.allow_networks {', '.join(sip.allow_networks)}")
    if config.registrations:
        who.append("the registrars of [[registrations]]")
    if digest and not sip.allow_networks:
        who = ["any source with digest credentials (sip.inbound_auth)"]
    elif digest:
        who[-1] += ", with digest credentials (sip.inbound_auth)"
    message = f"INVITEs admitted from {', '.join(who)}; {limits}"
    if len(who) == 1 and not digest:
        message += (
            "; everyone else gets 403 (set sip.allow_networks, sip.inbound_auth.username or "
            "[[registrations]] to admit a PBX or phones)"
        )
    return CheckResult("admission", Status.OK, message)


def check_media_safety(config: GatewayConfig) -> list[CheckResult]:
    """Strict RTP latching (issue 9): learning media sources on any host re-opens the door to
    RTP injection by whoever reaches a call's port first."""
    media = config.media
    name = "RTP latching"
    if media.rtp_latch_any_host:
        return [
            CheckResult(
                name,
                Status.WARN,
                "media.rtp_latch_any_host = true: any host that sends "
                f"{media.rtp_latch_packets} in-sequence packets to a fresh call's port "
                "before the caller does takes over its media (and hears the bot)",
                "set media.rtp_latch_any_host = false unless callers' media leaves from a host "
                "that is neither in their SDP nor their SIP source",
            )
        ]
    return [
        CheckResult(
            name,
            Status.OK,
            "strict: the SDP's address at once, other sources after "
            f"{media.rtp_latch_packets} in-sequence packets from the SDP's or SIP source's host",
        )
    ]
