"""One call's media: bind the RTP/RTCP pair, apply the negotiated stream, start our output on
the shared clock, tap it for the recorder, close and return the statistics.

Used by the gateway's call object (gateway/call/call.py). The leg knows sockets, the jitter
buffer, the playout queue and the 20 ms tick; it does not know SIP or voice sessions: what
the caller's audio and digits mean is the owner's business (`on_audio`, `on_dtmf`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.media import g711
from gateway.media.dtmf import InbandDtmfDetector
from gateway.media.g711 import PCMU
from gateway.media.jitter import DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS, Frame, JitterBuffer
from gateway.media.negotiated import NegotiatedMedia
from gateway.media.pacer import CallOutput, IdlePolicy, MediaClock, PlayoutQueue
from gateway.media.playout import DEFAULT_MAX_QUEUED_BYTES
from gateway.media.ports import PortAllocator
from gateway.media.stats import StreamStats
from gateway.media.stream import RtpStream, StreamConfig

IDLE_POLICIES = {
    "silence": IdlePolicy.SILENCE,
    "cn": IdlePolicy.COMFORT_NOISE,
    "none": IdlePolicy.NOTHING,
}
# Echo mode keeps at most this much caller audio queued (0.5 s of G.711).
ECHO_MAX_QUEUED_BYTES = 4000


class Recorder(Protocol):
    """The stereo recorder's two channels, placed on the shared clock (8 kHz samples)."""

    def caller(self, at_sample: int, payload: bytes) -> None: ...

    def bot(self, at_sample: int, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class LegSettings:
    """The media configuration one leg needs (plain values: media never reads the config)."""

    codec: str = PCMU  # the codec bound before negotiation (our first preference)
    payload_type: int = 0
    symmetric_rtp: bool = True
    rtp_timeout_s: float = 0.0  # 0: no inactivity timeout
    rtp_latch_packets: int = 3
    rtp_latch_any_host: bool = False
    jitter_min_ms: float = DEFAULT_MIN_DELAY_MS  # the jitter buffer's bounds
    jitter_max_ms: float = DEFAULT_MAX_DELAY_MS
    idle_audio: str = "silence"
    playout_max_s: float = DEFAULT_MAX_QUEUED_BYTES / 8000  # bot audio the queue may hold
    inband_dtmf: bool = False
    echo: bool = False
    wants_audio: bool = False  # an owner consumes the caller's audio (a voice session)


DigitSink = Callable[[str, int | None, str], None]  # digit, duration_ms, source


class MediaLeg:
    """One call's RTP port and, once running, the stream, the playout queue and the output."""

    def __init__(
        self,
        settings: LegSettings,
        signalling_host: str | None,
        on_dtmf: DigitSink,
        on_timeout: Callable[[], None] | None = None,
        clock_sample: Callable[[], int] = lambda: 0,
    ) -> None:
        self.settings = settings
        self._on_dtmf = on_dtmf
        self._clock_sample = clock_sample
        self._owner_audio: Callable[[list[Frame]], None] | None = None  # see `on_audio`
        self._recorder: Any = None
        self._closed = False
        self.stream = RtpStream(
            StreamConfig(
                codec=settings.codec,
                payload_type=settings.payload_type,
                latching=settings.symmetric_rtp,
                inactivity_timeout_s=settings.rtp_timeout_s,
                latch_packets=settings.rtp_latch_packets,
                latch_any_host=settings.rtp_latch_any_host,
                signalling_host=signalling_host,
                jitter_min_ms=settings.jitter_min_ms,
                jitter_max_ms=settings.jitter_max_ms,
            ),
            on_dtmf=lambda digit: on_dtmf(digit.digit, digit.duration_ms, digit.source),
            on_timeout=on_timeout,
        )
        self.rtp_port = 0
        self.negotiated: NegotiatedMedia | None = None
        self.queue: PlayoutQueue | None = None  # created once the codec is negotiated
        self.output: CallOutput | None = None  # our outbound 20 ms tick, from answer on
        self.inband: InbandDtmfDetector | None = None
        self.after_tick: Any = None  # the voice session's per-tick hook (drain detection)
        self.tick_watch: Any = None  # when that hook has work (pacer.TickWatch; None: always)
        self.caller_offset: int | None = None  # media clock samples minus the caller's media_time
        self.last_bot_sample = -1

    async def open(self, ports: PortAllocator, bind_host: str) -> int:
        """Bind the RTP/RTCP pair (NoFreePortError when the range is exhausted)."""
        self.rtp_port = await self.stream.open(ports, bind_host)
        self._wire_audio()
        return self.rtp_port

    @property
    def on_audio(self) -> Callable[[list[Frame]], None] | None:
        """The owner's input for the caller's audio (the voice session's `on_audio`)."""
        return self._owner_audio

    @on_audio.setter
    def on_audio(self, sink: Callable[[list[Frame]], None] | None) -> None:
        self._owner_audio = sink
        self._wire_audio()

    @property
    def recorder(self) -> Any:
        """A Recorder, from answer on (None: the call is not recorded)."""
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: Any) -> None:
        self._recorder = recorder
        self._wire_audio()

    def _wire_audio(self) -> None:
        """Point the stream's released audio at its consumer. When the leg has nothing of its
        own to do with it (no in-band DTMF detector, no recorder), straight at the owner: one
        Python frame less per packet (issue 14, docs/benchmarks.md); otherwise at
        `_on_inbound_audio`, which detects, records, then hands on (or echoes). Rewired
        whenever one of them changes (`on_audio`, `recorder`, `apply` creating the
        detector); never after close (a bound method of the leg in the stream is a cycle)."""
        if self._closed:
            return
        s = self.settings
        owner = self._owner_audio
        if not (s.echo or s.inband_dtmf or s.wants_audio):
            self.stream.on_audio = None  # nobody consumes the caller's audio
        elif owner is not None and self.inband is None and self._recorder is None:
            self.stream.on_audio = owner
        else:
            self.stream.on_audio = self._on_inbound_audio

    def start(self, clock: MediaClock) -> None:
        """Inbound release on the shared clock: the gateway starts it at bind time (so early
        RTP is counted and latched), the softphone at answer. Our outbound stream starts with
        `start_output`."""
        self.stream.start(clock)

    def new_queue(self, codec: str) -> PlayoutQueue:
        return PlayoutQueue(
            codec=codec,
            idle_policy=IDLE_POLICIES[self.settings.idle_audio],
            max_queued_bytes=int(self.settings.playout_max_s * 8000),
        )

    def apply(self, media: NegotiatedMedia) -> None:
        """Negotiated (or re-negotiated: hold, resume, new address) stream parameters."""
        self.negotiated = media
        stream = self.stream
        if stream.config.codec != media.codec or stream.config.payload_type != media.payload_type:
            # The codec is only known after the answer, the port had to be bound before it.
            stream.config.codec = media.codec
            stream.config.payload_type = media.payload_type
            stream.jitter = JitterBuffer(
                media.codec,
                min_delay_ms=stream.config.jitter_min_ms,
                max_delay_ms=stream.config.jitter_max_ms,
                clock_rate=stream.config.clock_rate,
            )
        stream.apply_media_info(media)
        if self.queue is None:
            self.queue = self.new_queue(media.codec)
        if self.inband is None and self.settings.inband_dtmf:
            self.inband = InbandDtmfDetector()
            self._wire_audio()

    def start_output(self, send_events: bool = True) -> None:
        """Start sending (silence/CN/echo) on the shared clock: keeps NATs and PBX RTP
        timeouts happy even before the bot has anything to say. `send_events` False: no
        RFC 4733 digits (send_digits then raises ValueError)."""
        if self.output is not None or self.queue is None:
            return
        stream = self.stream
        # The stream's senders are its outbound path's own methods (outbound.py, compiled where
        # built): the pacer's tick calls them with no Python frame in between. Only a recorded
        # call wraps send_frame (in Python).
        send_frame = stream.send_frame
        if self.recorder is not None:
            send_frame = self._recording_sender(send_frame)
        self.output = CallOutput(
            self.queue,
            send_frame,
            send_event=stream.send_event if send_events else None,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        # One clock callback per call per 20 ms: the stream's (already running for inbound
        # release) runs this output's tick, then the session's hook, which hears every tick
        # right after the frame went out (drained playout, hold-gap filling) on the ticks its
        # watch says it has work.
        self.output.ride(stream, after=self.after_tick, watch=self.tick_watch)

    def stop_output(self) -> None:
        if self.output is not None:
            self.output.stop()

    def send_digits(self, digits: str) -> None:
        """RFC 4733 out; ValueError when there is no stream to send them on yet."""
        if self.output is None:
            raise ValueError("no media stream to send DTMF on")
        self.output.send_digits(digits)

    def _recording_sender(self, send_frame: Any) -> Any:
        """Wrap the outbound frame sender: every frame we send also goes to the right channel,
        placed at the clock tick it went out on (catch-up ticks take the following slots)."""

        def send(payload: bytes, marker: bool) -> None:
            send_frame(payload, marker)
            recorder = self.recorder
            if recorder is not None:
                at = max(self._clock_sample(), self.last_bot_sample + 160)
                self.last_bot_sample = at
                recorder.bot(at, payload)

        return send

    def _on_inbound_audio(self, frames: list[Frame]) -> None:
        """Jitter-buffered caller audio (wired when echo, in-band DTMF or a session needs it)."""
        media = self.negotiated
        if self.inband is not None and media is not None:
            for frame in frames:
                pcm = g711.decode(media.codec, frame.payload)
                for digit in self.inband.feed(pcm):
                    self._on_dtmf(digit.digit, digit.duration_ms, "inband")
        recorder = self._recorder
        if recorder is not None and frames:
            # Both channels sit on the shared media clock: the caller's contiguous media_time
            # is anchored to the clock once, at the first frame after the answer.
            if self.caller_offset is None:
                self.caller_offset = self._clock_sample() - frames[0].media_time
            for frame in frames:
                recorder.caller(frame.media_time + self.caller_offset, frame.payload)
        owner = self._owner_audio
        if owner is not None:
            owner(frames)
            return
        queue = self.queue
        if self.settings.echo and queue is not None and self.output is not None:
            if queue.queued_bytes > ECHO_MAX_QUEUED_BYTES:
                # The clock fell behind the caller: drop the backlog rather than let the
                # echo delay grow for the rest of the call.
                queue.flush()
            for frame in frames:
                queue.enqueue("echo", frame.payload)

    def close(self, cause: str) -> StreamStats:
        """Stop sending, RTCP BYE, close sockets, release the port; return the statistics.

        Then drop every callback into the owner (its call and voice session) and the output,
        whose recording sender refers back to this leg: those references are cycles, and an
        ended call must be freed by reference counting the moment its owner lets it go, not
        by a later full collection (issue 14, docs/benchmarks.md). The recorder stays: the
        owner accounts it after close."""
        output, self.output = self.output, None
        if output is not None:
            output.stop()
        self._closed = True
        self.stream.close(reason=cause)
        self._owner_audio = None
        self.after_tick = None
        self.tick_watch = None
        self._on_dtmf = _ignore_digit
        self._clock_sample = _no_clock
        return self.stream.snapshot()


def _ignore_digit(digit: str, duration_ms: int | None, source: str) -> None:
    """A closed leg's digit sink: a late in-band digit goes nowhere."""


def _no_clock() -> int:
    return 0


def rtp_summary(stats: StreamStats) -> dict[str, Any]:
    """The media statistics of a call as `call.ended` and the call record carry them."""
    return {
        "rtp_packets_in": stats.packets_received,
        "rtp_packets_out": stats.packets_sent,
        "rtp_lost": stats.lost,
        "rtp_jitter_ms": round(stats.jitter_ms, 2),
        "rtp": stats.as_dict(),
    }


__all__ = [
    "ECHO_MAX_QUEUED_BYTES",
    "IDLE_POLICIES",
    "LegSettings",
    "MediaLeg",
    "Recorder",
    "rtp_summary",
]
