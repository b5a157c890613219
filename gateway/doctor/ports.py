"""The ports and limits checks: the SIP port bindable for every transport, the RTP range
(enough pairs for sip.max_calls, no overlap with the SIP port or the ephemeral range, a sample
bindable), the port quarantine's churn, and file descriptors for max_calls.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.doctor.network import describe_bind_error, try_bind
from gateway.doctor.results import CheckResult, Status, severity

RTP_SAMPLE_PAIRS = 16


EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def check_sip_port(config: GatewayConfig) -> list[CheckResult]:
    sip = config.sip
    results = []
    for transport in sip.transports:
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        name = f"SIP port {transport}"
        address = f"{sip.host}:{sip.port}/{transport}"
        error = try_bind(sip.host, sip.port, kind)
        if error is None:
            results.append(CheckResult(name, Status.OK, f"{address} is free"))
            continue
        fix = {
            errno.EADDRINUSE: (
                "stop the other process (a PBX, another gateway; `ss -lunp`/`ss -ltnp` shows "
                "it) or set sip.port / --sip-port. If this gateway is already running, "
                "that is expected"
            ),
            errno.EACCES: "use a port >= 1024 or grant CAP_NET_BIND_SERVICE",
            errno.EADDRNOTAVAIL: "set sip.host to an address of this host, or 0.0.0.0",
        }.get(error.errno or 0, "check sip.host and sip.port")
        results.append(
            CheckResult(name, Status.FAIL, f"{address}: {describe_bind_error(error)}", fix)
        )
    return results


def _ephemeral_range() -> tuple[int, int] | None:
    try:
        low, high = Path(EPHEMERAL_RANGE_FILE).read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _sample_pairs(first: int, last: int, count: int) -> list[int]:
    """Up to `count` even ports spread evenly over [first, last - 1], ends included."""
    pairs = (last - first + 1) // 2
    if pairs <= 0:
        return []
    if pairs <= count:
        return [first + 2 * i for i in range(pairs)]
    step = (pairs - 1) / (count - 1)
    return sorted({first + 2 * round(i * step) for i in range(count)})


def check_rtp_ports(
    config: GatewayConfig,
    sample: int = RTP_SAMPLE_PAIRS,
    ephemeral: tuple[int, int] | None = None,
) -> list[CheckResult]:
    media, sip = config.media, config.sip
    low, high = media.rtp_port_min, media.rtp_port_max
    first = low + (low % 2)  # RFC 3550 11: RTP on an even port, RTCP on the next odd one
    pairs = max(0, (high - first + 1) // 2)
    results = []
    name = "RTP port range"
    if pairs == 0:
        return [
            CheckResult(
                name,
                Status.FAIL,
                f"{low}-{high} holds no even RTP port with its RTCP port",
                "widen media.rtp_port_min/max (two ports per call)",
            )
        ]
    problems = []
    status = Status.OK
    if low <= sip.port <= high:
        status = Status.FAIL
        problems.append(f"contains the SIP port {sip.port}")
    if pairs < sip.max_calls:
        status = max(status, Status.WARN, key=severity)
        problems.append(f"{pairs} RTP/RTCP pairs for sip.max_calls = {sip.max_calls}")
    ephemeral = ephemeral if ephemeral is not None else _ephemeral_range()
    if ephemeral is not None and low <= ephemeral[1] and ephemeral[0] <= high:
        # Outbound connections (the Realtime WebSocket, webhooks) take local ports from the
        # ephemeral range: an overlap makes RTP binds fail at random under load.
        status = max(status, Status.WARN, key=severity)
        problems.append(f"overlaps the kernel's ephemeral port range {ephemeral[0]}-{ephemeral[1]}")
    if problems:
        results.append(
            CheckResult(
                name,
                status,
                f"{low}-{high}: " + "; ".join(problems),
                "choose media.rtp_port_min/max outside the SIP port and the ephemeral range "
                f"({EPHEMERAL_RANGE_FILE}), with at least 2 ports per concurrent call",
            )
        )
    else:
        results.append(
            CheckResult(name, Status.OK, f"{low}-{high}: {pairs} RTP/RTCP pairs (calls)")
        )

    sampled = _sample_pairs(first, high, sample)
    busy: list[str] = []
    for port in sampled:
        for p in (port, port + 1):
            error = try_bind(sip.host, p, socket.SOCK_DGRAM)
            if error is not None:
                busy.append(f"{p} ({describe_bind_error(error)})")
    if not busy:
        results.append(
            CheckResult(
                "RTP ports bindable",
                Status.OK,
                f"{len(sampled)} sampled pairs bindable on {sip.host}",
            )
        )
    else:
        all_busy = len(busy) >= 2 * len(sampled)
        results.append(
            CheckResult(
                "RTP ports bindable",
                Status.FAIL if all_busy else Status.WARN,
                f"{len(busy)} of {2 * len(sampled)} sampled ports on {sip.host} not bindable: "
                + ", ".join(busy[:6])
                + (" ..." if len(busy) > 6 else ""),
                "another process holds ports in the RTP range: choose a range it does not use",
            )
        )
    return results


def check_descriptors(config: GatewayConfig, fd_limit: int | None = None) -> CheckResult:
    """The open-file limit against what calls and SIP TCP connections need (issue 9)."""
    from gateway.limits import sip_limits

    limits = sip_limits(config, fd_limit)
    name = "open-file limit"
    if limits.fd_limit < 0:
        return CheckResult(name, Status.OK, "unlimited")
    room = (
        f"{limits.fd_limit}: {limits.fd_for_calls} descriptors for calls, "
        f"{limits.tcp_max_connections} SIP TCP connections"
    )
    if "tcp" not in config.sip.transports or not limits.tcp_lowered:
        return CheckResult(name, Status.OK, room)
    fix = "raise it (ulimit -n, LimitNOFILE= in the systemd unit, the container's nofile)"
    if limits.tcp_max_connections == 0:
        return CheckResult(name, Status.FAIL, f"{room}: no descriptor left for SIP TCP", fix)
    return CheckResult(
        name,
        Status.WARN,
        f"{room} (sip.tcp_max_connections {limits.tcp_configured} is lowered to fit)",
        fix,
    )


def check_port_quarantine(config: GatewayConfig) -> CheckResult:
    """The RTP range against sip.max_calls plus the pairs the port quarantine holds (issue 14)."""
    from gateway.media.ports import pair_count, pairs_needed, range_shortfall

    media = config.media
    name = "RTP range vs quarantine"
    short = range_shortfall(
        media.rtp_port_min, media.rtp_port_max, config.sip.max_calls, media.rtp_port_quarantine_s
    )
    if short:
        fix = (
            "widen media.rtp_port_min-rtp_port_max, lower sip.max_calls or "
            "media.rtp_port_quarantine_s (docs/deployment.md)"
        )
        return CheckResult(name, Status.WARN, short, fix)
    have = pair_count(media.rtp_port_min, media.rtp_port_max)
    need = pairs_needed(config.sip.max_calls, media.rtp_port_quarantine_s)
    return CheckResult(
        name,
        Status.OK,
        f"{have} pairs >= {need} for {config.sip.max_calls} calls with a "
        f"{media.rtp_port_quarantine_s:g} s quarantine",
    )
