"""One stream's outbound RTP path: header, send, counters, in one call per packet (issue 14).

The pacer's `CallOutput` calls, once per 20 ms tick, one of:

- `send_frame(payload, marker=False, pt=None, timestamp_step=160)`: an audio frame (PT from
  `config.payload_type` unless given); the media timestamp then moves by `timestamp_step`;
- `send_event(payload, marker, timestamp_offset)`: an RFC 4733 packet (PT telephone-event), all
  packets of one event carrying its start timestamp (2.3.5); nothing is sent without a
  negotiated telephone-event PT; the timestamp moves by 160 either way;
- `send_comfort_noise(payload)`: an RFC 3389 packet (PT 13); timestamp += 160;
- `advance(samples)`: nothing sent this tick: the timestamp stays locked to time (RFC 3550 5.1).

Each packet is the 12-byte fixed header (continuous sequence numbers and timestamps from random
initial values, RFC 3550 5.1) and the payload, built in one allocation, protected by `srtp`
when set (RFC 3711: SRTP stays Python), handed to the RTP transport's `sendto` with the send
address: the latched source when `config.latching` is on and the latch holds one, else the
SDP's `remote_rtp`; nothing while there is no transport or no address (hold with c=0.0.0.0) or
the direction forbids sending (`may_send`). A failed send (OSError; ValueError, uvloop's answer
to an address of the other family; SrtpError) is counted in `stats.send_errors`, never raised
into the shared clock's tick; a sent one counts `packets_sent`, `bytes_sent` (payload octets)
and keeps what the next RTCP sender report needs (`last_send_ts`, `last_send_time` from `clock`,
the loop's time; `sent_since_report`). `stream.py` owns the rest: the sockets, RTCP
(`build_report` reads this object), negotiation.

As for the inbound path (`inbound.py`): `_outbound.c` in the extension `gateway.media._jitter`
is the compiled twin of `PyOutboundPath`, selected with the jitter buffer (`SRG_PURE_PYTHON`
forces both pure); tests/media/test_outbound_parity.py holds the two to identical bytes,
addresses, counters and RTCP reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.media import jitter as _jitter_module
from gateway.media.latch import SourceLatch
from gateway.media.rtp import encode_rtp_header
from gateway.media.srtp import SrtpError
from gateway.media.stats import StreamStats

if TYPE_CHECKING:
    from gateway.media.srtp import SrtpSession
    from gateway.media.stream import StreamConfig

CN_PAYLOAD_TYPE = 13  # RFC 3389 comfort noise, static PT

Address = tuple[str, int]


class PyOutboundPath:
    """The pure-Python outbound path; `OutboundPath` (below) is the compiled twin when built.

    `config` is read on every packet (`payload_type`, `telephone_event_pt`, `latching`: a
    re-INVITE changes them); `stats` and `latch` are the stream's own objects. The stream sets
    `transport`, `remote_rtp`, `may_send`, `srtp` and `clock` as the call goes."""

    __slots__ = (
        "clock",
        "config",
        "last_send_time",
        "last_send_ts",
        "latch",
        "may_send",
        "remote_rtp",
        "sent_since_report",
        "seq",
        "srtp",
        "ssrc",
        "stats",
        "transport",
        "ts",
    )

    def __init__(
        self,
        config: StreamConfig,
        stats: StreamStats,
        latch: SourceLatch,
        ssrc: int,
        seq: int,
        ts: int,
    ) -> None:
        self.config = config
        self.stats = stats
        self.latch = latch
        self.ssrc = ssrc
        self.seq = seq
        self.ts = ts
        self.last_send_ts = ts
        self.last_send_time: float | None = None
        self.sent_since_report = False
        self.transport: Any = None  # the RTP socket's asyncio.DatagramTransport
        self.remote_rtp: Address | None = None  # from the SDP (None: unknown or held)
        self.may_send = True  # the negotiated direction lets us send
        self.srtp: SrtpSession | None = None
        self.clock: Callable[[], float] | None = None  # the loop's time()

    @property
    def send_address(self) -> Address | None:
        """The latched source when latching is on and latched, else the SDP's; None without."""
        remote = self.remote_rtp
        if remote is None:
            return None
        if self.config.latching:
            return self.latch.latched or remote
        return remote

    def send_frame(
        self,
        payload: bytes,
        marker: bool = False,
        pt: int | None = None,
        timestamp_step: int = 160,
    ) -> None:
        self._send(self.config.payload_type if pt is None else pt, marker, self.ts, payload)
        self.ts = (self.ts + timestamp_step) & 0xFFFFFFFF

    def send_event(self, payload: bytes, marker: bool, timestamp_offset: int) -> None:
        pt = self.config.telephone_event_pt
        if pt is not None:
            self._send(pt, marker, (self.ts - timestamp_offset) & 0xFFFFFFFF, payload)
        self.ts = (self.ts + 160) & 0xFFFFFFFF

    def send_comfort_noise(self, payload: bytes) -> None:
        self._send(CN_PAYLOAD_TYPE, False, self.ts, payload)
        self.ts = (self.ts + 160) & 0xFFFFFFFF

    def advance(self, samples: int) -> None:
        self.ts = (self.ts + samples) & 0xFFFFFFFF

    def _send(self, pt: int, marker: bool, timestamp: int, payload: bytes) -> None:
        transport = self.transport
        addr = self.remote_rtp
        if transport is None or addr is None or not self.may_send:
            return
        if self.config.latching:
            addr = self.latch.latched or addr
        packet = encode_rtp_header(pt, marker, self.seq, timestamp, self.ssrc) + payload
        try:
            if self.srtp is not None:
                packet = self.srtp.protect_rtp(packet)
            transport.sendto(packet, addr)
        except (OSError, ValueError, SrtpError):
            # ValueError: uvloop's answer to an address of the other family (or a name); the
            # gateway never answers such an offer (gateway/media_address.py), but a send
            # failure must stay a counter, never an exception in the shared clock's tick.
            self.stats.send_errors += 1
            return
        self.seq = (self.seq + 1) & 0xFFFF
        stats = self.stats
        stats.packets_sent += 1
        stats.bytes_sent += len(payload)
        self.sent_since_report = True
        self.last_send_ts = timestamp
        if self.clock is not None:
            self.last_send_time = self.clock()


# -- the implementation in use -------------------------------------------------------------------
# The compiled twin lives in the jitter buffer's extension, so one switch selects both:
# jitter.IMPLEMENTATION (SRG_PURE_PYTHON forces the pure classes).
def _bind_extension() -> type[PyOutboundPath] | None:
    """The compiled class, bound to the Python types it reads and updates, or None."""
    return _jitter_module.compiled_twin(  # type: ignore[no-any-return]
        "OutboundPath", "_bind_outbound", StreamStats, SrtpError, CN_PAYLOAD_TYPE
    )


# "c" or "python"; "python" with the compiled buffer only with an extension built from sources
# older than _outbound.c.
OutboundPath, IMPLEMENTATION = _jitter_module.select_twin(PyOutboundPath, _bind_extension)
