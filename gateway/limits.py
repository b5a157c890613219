"""SIP resource limits from the configuration and the process's descriptor limit (issue 9).

The SIP TCP connection cap must stay below RLIMIT_NOFILE minus what calls need, or a flood of
connections makes accept() fail with EMFILE and, worse, leaves no descriptor for the next
call's RTP socket. Per call: an RTP and an RTCP socket (gateway/media/stream.py) and the
Realtime WebSocket; for up to min(max_calls, RTP port pairs in the range) calls. Plus a fixed
reserve for the process itself (stdio, the event loop, SIP UDP and TCP listeners, the control
API and its clients, log and recording files, DNS).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Protocol

from sip.transport import Transport
from sip.useragent import UserAgent

FDS_PER_CALL = 3  # RTP + RTCP sockets, the Realtime WebSocket
FD_RESERVE = 64


# What the limits read from the configuration ([sip] and the RTP range of [media], gateway.config
# SipConfig and MediaConfig): the process passes its configuration down as a value.
class SipLimitSettings(Protocol):
    @property
    def max_calls(self) -> int: ...
    @property
    def max_server_transactions(self) -> int: ...
    @property
    def max_server_transactions_per_source(self) -> int: ...
    @property
    def tcp_max_connections(self) -> int: ...
    @property
    def tcp_max_connections_per_source(self) -> int: ...
    @property
    def tcp_message_deadline_s(self) -> float: ...
    @property
    def tcp_max_header_bytes(self) -> int: ...
    @property
    def tcp_max_body_bytes(self) -> int: ...


class RtpRangeSettings(Protocol):
    @property
    def rtp_port_min(self) -> int: ...
    @property
    def rtp_port_max(self) -> int: ...


class LimitSettings(Protocol):
    @property
    def sip(self) -> SipLimitSettings: ...
    @property
    def media(self) -> RtpRangeSettings: ...


def server_transaction_cap(sip: SipLimitSettings) -> int:
    """sip.max_server_transactions, or its automatic value: 100 per call (a call holds a few at
    once: INVITE until Timer L, BYE, refreshes, one per INFO digit for 64*T1), at least 1000."""
    return sip.max_server_transactions or max(1000, 100 * sip.max_calls)


@dataclass(frozen=True)
class SipLimits:
    max_server_transactions: int
    max_server_transactions_per_source: int
    tcp_max_connections: int  # after the descriptor budget
    tcp_configured: int  # sip.tcp_max_connections as configured
    fd_limit: int  # RLIMIT_NOFILE soft limit (-1: unlimited)
    fd_for_calls: int

    @property
    def tcp_lowered(self) -> bool:
        return self.tcp_max_connections < self.tcp_configured


def open_file_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return -1 if soft == resource.RLIM_INFINITY else int(soft)


def sip_limits(config: LimitSettings, fd_limit: int | None = None) -> SipLimits:
    sip = config.sip
    media = config.media
    nofile = open_file_limit() if fd_limit is None else fd_limit
    pairs = max(0, (media.rtp_port_max - media.rtp_port_min + 1) // 2)
    for_calls = FDS_PER_CALL * min(sip.max_calls, pairs)
    tcp = sip.tcp_max_connections
    if nofile >= 0:
        tcp = max(0, min(tcp, nofile - FD_RESERVE - for_calls))
    return SipLimits(
        max_server_transactions=server_transaction_cap(sip),
        max_server_transactions_per_source=sip.max_server_transactions_per_source,
        tcp_max_connections=tcp,
        tcp_configured=sip.tcp_max_connections,
        fd_limit=nofile,
        fd_for_calls=for_calls,
    )


def transport_options(config: LimitSettings, limits: SipLimits) -> dict[str, int | float]:
    """Keyword arguments of sip.transport.Transport for these limits."""
    sip = config.sip
    return {
        "max_connections": limits.tcp_max_connections,
        "max_connections_per_source": sip.tcp_max_connections_per_source,
        "message_deadline": sip.tcp_message_deadline_s,
        "max_header_size": sip.tcp_max_header_bytes,
        "max_body_size": sip.tcp_max_body_bytes,
    }


def limit_counts(ua: UserAgent | None, transport: Transport | None) -> dict[str, int]:
    """The plain counters behind gateway.observe.metrics SIP_LIMIT_* (read at each scrape)."""
    values: dict[str, int] = {}
    if ua is not None:
        values["server_transactions"] = ua.server_transactions
        values["transactions_dropped"] = ua.counters.transactions_dropped
        values["transactions_evicted"] = ua.counters.transactions_evicted
        values["options_stateless"] = ua.counters.options_stateless
    if transport is not None:
        c = transport.counters
        values.update(
            tcp_connections=transport.connection_count,
            tcp_refused_total_cap=c.connections_rejected,
            tcp_refused_source_cap=c.connections_rejected_per_source,
            tcp_closed_deadline=c.connections_deadline_closed,
            tcp_closed_oversize=c.oversize_closed,
            tcp_closed_framing=max(0, c.framing_errors - c.oversize_closed),
            tcp_closed_idle=c.connections_idle_closed,
            tcp_accept_errors=c.accept_errors,
            udp_oversize=c.oversize,
        )
    return values
