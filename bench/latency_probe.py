"""The latency bench's gateway side: per-call probes (timestamps matched by content), the observed
Realtime client, and one call wired as gateway/call/call.py wires it. Imported by
bench/latency.py; the GPT-Live probe and client are in bench/latency_live.py."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.latency_peers import BOT_TAG, SILENCE
from gateway.call.session import CallSession, SessionSettings
from gateway.media.jitter import Frame
from gateway.media.pacer import (
    CallOutput,
    IdlePolicy,
    MediaClock,
    PlayoutQueue,
)
from gateway.media.playout import FlushReport
from gateway.media.ports import PortAllocator
from gateway.media.stream import RtpStream, StreamConfig
from gateway.realtime import events as rte
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint, RealtimeClient

perf = time.perf_counter
RELEASE = ["tick"]  # --release of this run

# ============================================================================================
# Gateway side: per-call probes


def _floats() -> array[float]:
    # array, not list: the collector does not walk it (a list of 250 000 floats made each full
    # collection of the bench process tens of ms longer, stalling the loop it measures).
    return array("d")


@dataclass
class Samples:
    rx_to_written: array[float] = field(default_factory=_floats)
    hold: array[float] = field(default_factory=_floats)
    release_to_written: array[float] = field(default_factory=_floats)
    delta_to_packet: array[float] = field(default_factory=_floats)
    delta_to_queued: array[float] = field(default_factory=_floats)
    queued_to_packet: array[float] = field(default_factory=_floats)
    speech_to_last_bot: array[float] = field(default_factory=_floats)
    speech_to_flush: array[float] = field(default_factory=_floats)
    sent_delta_to_queued: array[float] = field(default_factory=_floats)
    sent_delta_to_packet: array[float] = field(default_factory=_floats)
    sent_speech_to_last_bot: array[float] = field(default_factory=_floats)
    rtp_socket_wait: array[float] = field(default_factory=_floats)
    event_socket_wait: array[float] = field(default_factory=_floats)
    pacing_deviation: array[float] = field(default_factory=_floats)
    # GPT-Live: a reply's later deltas (steady state), as delta_to_* are its first delta.
    steady_delta_to_packet: array[float] = field(default_factory=_floats)
    steady_delta_to_queued: array[float] = field(default_factory=_floats)
    steady_queued_to_packet: array[float] = field(default_factory=_floats)
    steady_sent_delta_to_packet: array[float] = field(default_factory=_floats)
    bot_packets_after_speech: list[int] = field(default_factory=list)
    not_flushed: int = 0  # barge-ins where the bot audio stopped without a flush


SAMPLE_LISTS = (
    "rx_to_written",
    "hold",
    "release_to_written",
    "delta_to_packet",
    "delta_to_queued",
    "queued_to_packet",
    "speech_to_last_bot",
    "speech_to_flush",
    "sent_delta_to_queued",
    "sent_delta_to_packet",
    "sent_speech_to_last_bot",
    "rtp_socket_wait",
    "event_socket_wait",
    "pacing_deviation",
    "steady_delta_to_packet",
    "steady_delta_to_queued",
    "steady_queued_to_packet",
    "steady_sent_delta_to_packet",
)


class Recorder:
    def __init__(self) -> None:
        self.measuring = False
        self.samples = Samples()


class CallProbe:
    """Timestamps of one call's events, matched by content (packet counter, response tag)."""

    def __init__(self, rec: Recorder, queue: PlayoutQueue) -> None:
        self.rec = rec
        self.queue = queue
        self.rx: dict[int, float] = {}  # caller packet counter -> datagram received
        self.pending: tuple[list[float], float] | None = None  # set while on_audio runs
        self.marks: dict[int, tuple[list[float], float]] = {}  # id(append frame) -> rx, release
        self.first_delta: dict[bytes, tuple[float, float]] = {}  # tag -> delta read, sent
        self.queued: dict[bytes, float] = {}  # response tag -> first delta in the playout queue
        self.speech_at: float | None = None
        self.speech_sent: float | None = None  # the server's write of that speech_started
        self.last_bot_sent: float | None = None  # last bot packet after speech_sent
        self.flushed_at: float | None = None
        self.last_bot: float | None = None
        self.bot_after = 0
        # Send times of the last bot packets: speech_started is only seen when parsed, so the
        # packets sent between its receipt (socket read) and the parse are counted from here.
        self.bot_sent: deque[float] = deque(maxlen=64)

    # metric 1 -----------------------------------------------------------------------------

    def on_rtp(self, data: bytes) -> None:
        now = perf()
        self.rx[int.from_bytes(data[12:16], "big")] = now
        if self.rec.measuring:
            sent = int.from_bytes(data[16:24], "big") / 1e9
            self.rec.samples.rtp_socket_wait.append(now - sent)

    def on_audio_released(self, frames: list[Frame]) -> None:
        now = perf()
        rx_times = []
        for frame in frames:
            if not frame.concealed:
                rx = self.rx.pop(int.from_bytes(frame.payload[:4], "big"), None)
                if rx is not None:
                    rx_times.append(rx)
        self.pending = (rx_times, now) if rx_times else None

    def on_append_queued(self, frame: bytes) -> None:
        if self.pending is not None:
            self.marks[id(frame)] = self.pending
            self.pending = None

    def on_frame_written(self, mark: tuple[list[float], float]) -> None:
        if not self.rec.measuring:
            return
        now = perf()
        s = self.rec.samples
        rx_times, released = mark
        for rx in rx_times:
            s.rx_to_written.append(now - rx)
            s.hold.append(released - rx)
        s.release_to_written.append(now - released)

    # metrics 2 and 3 ----------------------------------------------------------------------

    def on_server_event(self, event: Any, received: float, sent: float) -> None:
        kind = type(event)
        if kind is rte.AudioDelta:
            if event.audio[:1] == b"\xa5":
                self.first_delta[event.audio[:4]] = (received, sent)
        elif kind is rte.SpeechStarted and self.queue.queued_bytes > 0:
            # Bot audio still queued when the caller interrupts: a barge-in to time.
            self.speech_at = received
            self.speech_sent = sent
            self.flushed_at = None
            late = [t for t in self.bot_sent if t > received]
            self.last_bot = late[-1] if late else None
            self.bot_after = len(late)
            late_sent = [t for t in self.bot_sent if t > sent]
            self.last_bot_sent = late_sent[-1] if late_sent else None

    def on_enqueue(self, audio: bytes) -> None:
        if audio[:1] == b"\xa5":
            self.queued[audio[:4]] = perf()

    def on_flush(self, report: FlushReport) -> None:
        if self.speech_at is not None and self.flushed_at is None:
            self.flushed_at = perf()

    def on_packet_sent(self, payload: bytes) -> None:
        now = perf()
        first = payload[0]
        if first != SILENCE:  # bot audio (the tail frame is padded with silence at its end)
            if first == BOT_TAG:
                tag = payload[:4]
                stamps = self.first_delta.pop(tag, None)
                queued = self.queued.pop(tag, None)
                if self.rec.measuring and stamps is not None and queued is not None:
                    received, sent = stamps
                    s = self.rec.samples
                    s.delta_to_packet.append(now - received)
                    s.delta_to_queued.append(queued - received)
                    s.queued_to_packet.append(now - queued)
                    s.sent_delta_to_queued.append(queued - sent)
                    s.sent_delta_to_packet.append(now - sent)
            self.bot_sent.append(now)
            if self.speech_at is not None:
                self.last_bot = now
                self.last_bot_sent = now
                self.bot_after += 1
        elif self.speech_at is not None:
            # First silence after speech_started: the bot has stopped (flushed, or, if the
            # gateway failed to flush, only once its queued audio ran out: that shows).
            if self.rec.measuring:
                s = self.rec.samples
                last = self.last_bot
                s.speech_to_last_bot.append(0.0 if last is None else last - self.speech_at)
                last_sent, speech_sent = self.last_bot_sent, self.speech_sent
                assert speech_sent is not None
                s.sent_speech_to_last_bot.append(
                    0.0 if last_sent is None else last_sent - speech_sent
                )
                s.bot_packets_after_speech.append(self.bot_after)
                if self.flushed_at is None:
                    s.not_flushed += 1
                else:
                    s.speech_to_flush.append(self.flushed_at - self.speech_at)
            self.speech_at = None


def _server_sent(message: bytes) -> float:
    """The server's send time, from the end of its event_id ("event_<conn>_<n>_<ns>")."""
    start = message.find(b'"event_id":"event_')
    if start < 0:
        return perf()
    end = message.index(b'"', start + 18)
    return int(message[message.rindex(b"_", start, end) + 1 : end]) / 1e9


class ObservedLink:
    """Mixed into a product voice client (gateway/wsock.py `WebSocketLink`): stamps when append
    frames are written and when server messages are read. `self._probe` is the call's probe."""

    _probe: CallProbe
    _received_at = 0.0
    _sent_at = 0.0

    def _time_sends(self, ws: Any) -> None:
        """The writer's path (a frame that had to queue): `ws.send` returned = written."""
        probe = self._probe
        send = ws.send
        marks = probe.marks

        async def timed_send(message: Any, text: bool | None = None) -> None:
            mark = marks.pop(id(message), None)
            await send(message, text=text)
            if mark is not None:
                probe.on_frame_written(mark)

        ws.send = timed_send

    def _on_message(self, data: bytes) -> None:
        # The product reads each message in the socket's read callback: stamp it there.
        self._received_at = now = perf()
        self._sent_at = _server_sent(data)
        if self._probe.rec.measuring:
            self._probe.rec.samples.event_socket_wait.append(now - self._sent_at)
        super()._on_message(data)  # type: ignore[misc]

    def _enqueue(self, frame: bytes) -> None:
        # Mark before the product code runs: the frame may be written synchronously in there.
        self._probe.on_append_queued(frame)
        super()._enqueue(frame)  # type: ignore[misc]

    def _send_text(self, prefix: bytes, suffix: bytes, audio: bytes = b"") -> bool | None:
        # Audio appends (the session's appender binds this method): written at once (the
        # fast path: stamp now), or queued as text that the writer sends later (`_write_now`
        # or ws.send stamp it by its id). Control events were marked by `_enqueue`.
        if not audio:
            return super()._send_text(prefix, suffix, audio)  # type: ignore[misc,no-any-return]
        stats: Any = self.stats  # type: ignore[attr-defined]
        written_before = stats.frames_written_sync
        outbound: Any = self._outbound  # type: ignore[attr-defined]
        queued_before = len(outbound)
        taken: bool | None = super()._send_text(prefix, suffix, audio)  # type: ignore[misc]
        probe = self._probe
        if stats.frames_written_sync > written_before:
            mark = probe.pending
            probe.pending = None
            if mark is not None:
                probe.on_frame_written(mark)
        elif len(outbound) > queued_before:
            probe.on_append_queued(outbound[-1])
        return taken

    def _write_now(self, ws: Any, frame: bytes) -> bool:
        # The product's fast path (framed and written without ws.send): stamp it here.
        written: bool = super()._write_now(ws, frame)  # type: ignore[misc]
        if written:
            mark = self._probe.marks.pop(id(frame), None)
            if mark is not None:
                self._probe.on_frame_written(mark)
        return written


class BenchClient(ObservedLink, RealtimeClient):
    """The product Realtime client, observed."""

    def __init__(self, endpoint: Endpoint, probe: CallProbe) -> None:
        super().__init__(endpoint)
        self._probe = probe

    async def connect(self, timeout: float = 10.0) -> rte.SessionCreated:  # noqa: ASYNC109
        created = await super().connect(timeout)
        assert self._ws is not None
        self._time_sends(self._ws)
        parse = self.parser.parse

        def observed_parse(frame: bytes | str) -> Any:
            event = parse(frame)
            self._probe.on_server_event(event, self._received_at, self._sent_at)
            return event

        # The client's read callback calls its `_parse`, bound to the parser's method when
        # the client was built: both names must lead here.
        self.parser.parse = observed_parse  # type: ignore[method-assign]
        self._parse = observed_parse  # type: ignore[method-assign]
        return created


def _realtime_backend(probe: CallProbe) -> RealtimeBackend:
    return RealtimeBackend(client_factory=lambda endpoint: BenchClient(endpoint, probe))


class BenchCall:
    """One call wired like gateway/call/call.py (`open_media`, `start_session`, and the media
    leg's `start_output`)."""

    def __init__(
        self,
        index: int,
        rec: Recorder,
        clock: MediaClock,
        probe_factory: Callable[[Recorder, PlayoutQueue], CallProbe] | None = None,
        backend_factory: Callable[[Any], Any] | None = None,
    ) -> None:
        """`probe_factory(rec, queue)` and `backend_factory(probe)`: the voice backend's
        observed form (default: Realtime, `CallProbe` and `BenchClient`)."""
        self.index = index
        self.clock = clock
        self.rec = rec
        self.stream = RtpStream(StreamConfig(codec="PCMU", payload_type=0))
        self.queue = PlayoutQueue(codec="PCMU", idle_policy=IdlePolicy.SILENCE)
        self.probe = (probe_factory or CallProbe)(rec, self.queue)
        self.backend_factory = backend_factory or _realtime_backend
        self.output: CallOutput | None = None
        self.session: CallSession | None = None
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.problem: str | None = None
        self.rtp_port = 0

    async def open(self, allocator: PortAllocator, settings: SessionSettings) -> None:
        stream, probe = self.stream, self.probe
        self.rtp_port = await stream.open(allocator, "127.0.0.1")
        on_rtp = stream._on_rtp

        def observed_rtp(data: bytes, addr: Any) -> None:
            probe.on_rtp(data)
            on_rtp(data, addr)

        if RELEASE[0] != "tick":
            observed_rtp = self._release_early(observed_rtp, RELEASE[0])
        stream._on_rtp = observed_rtp  # type: ignore[method-assign]
        queue = self.queue
        enqueue, flush = queue.enqueue, queue.flush

        def observed_enqueue(item_id: str, g711: bytes) -> bool:
            queued = enqueue(item_id, g711)
            probe.on_enqueue(g711)
            return queued

        def observed_flush() -> FlushReport:
            report = flush()
            probe.on_flush(report)
            return report

        queue.enqueue = observed_enqueue  # type: ignore[method-assign]
        queue.flush = observed_flush  # type: ignore[method-assign]
        session = CallSession(
            f"bench-{self.index}",
            settings,
            self,
            queue,
            backend=self.backend_factory(probe),
        )
        self.session = session

        def on_audio(frames: list[Frame]) -> None:
            probe.on_audio_released(frames)
            session.on_audio(frames)
            probe.pending = None

        stream.on_audio = on_audio
        stream.start(self.clock)
        session.start()

    def _release_early(
        self, on_rtp: Callable[[bytes, Any], None], mode: str
    ) -> Callable[[bytes, Any], None]:
        """--release arrival|due: what stream.py could do besides the call's 20 ms tick (which
        still runs). arrival: release what is due right after each packet is pushed (no timer:
        with a one-packet-time window, packet n is due when packet n+1 arrives), with 1 ms of
        tolerance because uvloop's `loop.time()` (the arrival stamp) has 1 ms resolution, so
        packet n+1's stamp can fall just short of packet n's due time. due: also arm a timer at
        `JitterBuffer.next_due` (one `call_at` per packet)."""
        stream = self.stream
        loop = asyncio.get_running_loop()
        armed: list[Any] = [None, 0.0]  # timer handle, its time

        def release(tolerance: float = 0.0) -> None:
            frames = stream.jitter.pop_ready(loop.time() + tolerance)
            if frames and stream.on_audio is not None:
                stream.on_audio(frames)

        def fire() -> None:
            armed[0] = None
            release()
            arm()

        def arm() -> None:
            due = stream.jitter.next_due
            if due is None:
                return
            if armed[0] is not None:
                if armed[1] <= due:
                    return
                armed[0].cancel()
            armed[0] = loop.call_at(due, fire)
            armed[1] = due

        def released_on_arrival(data: bytes, addr: Any) -> None:
            on_rtp(data, addr)
            release(0.001)

        def released_at_due(data: bytes, addr: Any) -> None:
            on_rtp(data, addr)
            release()
            arm()

        return released_at_due if mode == "due" else released_on_arrival

    # CallControl ---------------------------------------------------------------------------

    def answer(self) -> None:
        stream, probe = self.stream, self.probe
        send_frame = stream.send_frame

        rec = self.rec
        last_sent = [0.0]

        def observed_send(payload: bytes, marker: bool) -> None:
            send_frame(payload, marker)
            now = perf()
            if rec.measuring and last_sent[0]:
                # Pacing: how far this packet's send is from 20 ms after the previous one's.
                rec.samples.pacing_deviation.append(abs(now - last_sent[0] - 0.020))
            last_sent[0] = now
            probe.on_packet_sent(payload)

        assert self.session is not None
        self.output = CallOutput(
            self.queue,
            observed_send,
            send_event=stream.send_event,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        # As gateway/media/leg.py `start_output`: one clock callback per call (the stream's).
        self.output.ride(stream, after=self.session.on_output_tick)
        if not self.answered.done():
            self.answered.set_result(None)

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        self.problem = f"rejected {status} {reason}"
        if not self.answered.done():
            self.answered.set_exception(RuntimeError(self.problem))

    def hangup(self, cause: str, text: str = "") -> None:
        self.problem = f"hangup {text or cause}"

    async def refer(self, target_uri: str) -> int:
        return 501

    def send_digits(self, digits: str) -> None:
        raise ValueError("bench calls have no telephone-event")

    def stop_media(self) -> None:
        if self.output is not None:
            self.output.stop()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.output is not None:
            self.output.stop()
        self.stream.close("bench over")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min_ms": round((ordered[0] if ordered else float("nan")) * 1000, 3),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round((ordered[-1] if ordered else float("nan")) * 1000, 3),
    }
