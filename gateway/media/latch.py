"""Strict RTP source latching: which address may send a call its RTP and RTCP.

Symmetric RTP (RFC 4961) sends to where the peer's packets come from, because NATs and SBCs put
addresses in their SDP that are not where their media leaves from. Learning that address from
the first packet seen is the "RTP bleed" hole: whoever reaches the port first (and the port is
guessable) hears the bot and talks to the model. So, in the manner of rtpengine's strict source
and Asterisk's `strictrtp` probation:

- Packets from the SDP's address and port are accepted at once and latch it: the signalling,
  not the first packet, says where media comes from.
- Any other source is learned only after `probation_packets` (default 3) consecutive
  in-sequence packets with one SSRC; the probation packets themselves are dropped. Only a
  source on the SDP's host or the SIP signalling source's host may be learned (a NAT maps the
  phone's media to the same public address as its SIP), unless `any_host` allows any host.
- Once latched, every other source is dropped and counted. Silence never re-opens the latch: a
  different source can take over only after a re-INVITE/UPDATE changed the SDP's address (the
  previous latched source then stays excluded, so in-flight packets of the old path do not
  win the new probation). Going on hold (no address) and back to the same address keeps it.
- RTCP follows the latched RTP source: accepted from that address, its port + 1, or the SDP's
  RTCP address when the SDP's RTP address is the one latched; everything else is dropped.

Sans-I/O: addresses, SSRCs and sequence numbers in, verdicts out. `stream.py` owns the socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Address = tuple[str, int]

ACCEPT = 0
PROBATION = 1  # dropped: a learnable source still proving itself
FOREIGN = 2  # dropped: not the latched source, not learnable

DEFAULT_PROBATION_PACKETS = 3
_MAX_CANDIDATES = 4  # sources in probation at once (a spray cannot grow this)


@dataclass(slots=True)
class _Candidate:
    ssrc: int
    next_seq: int
    count: int


class SourceLatch:
    """One call's accepted RTP source (see the module docstring for the rules)."""

    __slots__ = (
        "_candidates",
        "_retired",
        "_sdp_rtcp",
        "_sdp_rtp",
        "any_host",
        "latched",
        "latches",
        "probation_packets",
        "signalling_host",
    )

    def __init__(
        self,
        probation_packets: int = DEFAULT_PROBATION_PACKETS,
        *,
        signalling_host: str | None = None,
        any_host: bool = False,
    ) -> None:
        if probation_packets < 1:
            raise ValueError(f"probation_packets must be >= 1, got {probation_packets}")
        self.probation_packets = probation_packets
        self.signalling_host = _plain_host(signalling_host) if signalling_host else None
        self.any_host = any_host
        self.latched: Address | None = None
        self.latches = 0  # how many times a source was latched (1 in a normal call)
        self._sdp_rtp: Address | None = None  # last address the SDP gave (kept across hold)
        self._sdp_rtcp: Address | None = None
        self._retired: Address | None = None  # latched before the SDP moved the media
        self._candidates: dict[Address, _Candidate] = {}

    @property
    def sdp_rtp(self) -> Address | None:
        return self._sdp_rtp

    def set_sdp(self, rtp: Address | None, rtcp: Address | None) -> None:
        """The remote media address from an offer/answer (None: on hold, no address)."""
        if rtp is None:
            return  # hold: nothing to send to, and the latch stays for the resume
        rtp = (_plain_host(rtp[0]), rtp[1])
        rtcp = (_plain_host(rtcp[0]), rtcp[1]) if rtcp is not None else None
        previous = self._sdp_rtp
        self._sdp_rtp = rtp
        self._sdp_rtcp = rtcp
        if previous is None or previous == rtp:
            return  # the first address (a late offer's ACK), or the same one again
        # The media moved (re-INVITE/UPDATE): learn afresh; the old path is not a candidate.
        if self.latched is not None and self.latched != rtp:
            self._retired = self.latched
        self.latched = None
        self._candidates.clear()

    def check_rtp(self, addr: Any, ssrc: int, seq: int) -> int:
        """ACCEPT, PROBATION or FOREIGN for one RTP packet from `addr` (a socket address)."""
        latched = self.latched
        host = addr[0]
        port = addr[1]
        if latched is not None:
            return ACCEPT if latched[1] == port and latched[0] == host else FOREIGN
        sdp = self._sdp_rtp
        if sdp is not None and sdp[1] == port and sdp[0] == host:
            self._latch(sdp)
            return ACCEPT
        source = (host, port)
        if source == self._retired or not self._learnable(host):
            return FOREIGN
        candidate = self._candidates.get(source)
        if candidate is None or candidate.ssrc != ssrc or candidate.next_seq != seq:
            if candidate is None and len(self._candidates) >= _MAX_CANDIDATES:
                return PROBATION  # the slots are taken: dropped, this source is not tracked
            candidate = self._candidates[source] = _Candidate(ssrc, (seq + 1) & 0xFFFF, 1)
        else:
            candidate.count += 1
            candidate.next_seq = (seq + 1) & 0xFFFF
        if candidate.count >= self.probation_packets:
            self._latch(source)
            return ACCEPT
        return PROBATION

    def check_rtcp(self, addr: Any) -> bool:
        """True when RTCP from `addr` belongs to the latched RTP source (or the SDP's RTCP
        address, before anything latched)."""
        host = addr[0]
        port = addr[1]
        latched = self.latched
        sdp_rtcp = self._sdp_rtcp
        if latched is None:
            return sdp_rtcp is not None and sdp_rtcp[0] == host and sdp_rtcp[1] == port
        if latched[0] == host and port in (latched[1], latched[1] + 1):
            return True
        return (
            latched == self._sdp_rtp
            and sdp_rtcp is not None
            and sdp_rtcp[0] == host
            and sdp_rtcp[1] == port
        )

    def _learnable(self, host: str) -> bool:
        if self.any_host:
            return True
        allowed = []
        if self._sdp_rtp is not None:
            allowed.append(self._sdp_rtp[0])
        if self.signalling_host is not None:
            allowed.append(self.signalling_host)
        # Nothing known yet (no SDP address, no signalling source): probation alone decides.
        return not allowed or host in allowed

    def _latch(self, source: Address) -> None:
        self.latched = source
        self.latches += 1
        self._candidates.clear()


def _plain_host(host: str) -> str:
    # "[::1]" as written in SIP/SDP; sockets report "::1".
    return host.strip("[]")
