"""Benchmark: latency the gateway adds on the call path, at N concurrent calls.

One gateway process runs the real per-call path for N calls: `RtpStream` (socket, latching,
jitter buffer) on the shared `MediaClock`, `CallSession` (state machine) with a `RealtimeClient`
(reader/writer tasks, websockets + orjson), a `PlayoutQueue` and a `CallOutput` wired exactly as
the call object (`gateway/call/call.py`, `gateway/media/leg.py`) wires them (the session's
per-tick hook after every frame). No SIP: the calls are set up directly, since signalling is not
on the measured paths. Two helper processes, so
their CPU does not count against the gateway:

- a minimal Realtime-shaped WebSocket server (hand-written RFC 6455 framing on uvloop, cheaper per
  frame than a websockets server so it keeps up with 25 000 appends/s): it answers
  `session.update`, discards appends, and every `--period` seconds per call plays one scripted
  turn: `response.created`, 1 s of bot audio in 4 deltas sent at once (the real service also
  sends faster than real time), then after `--barge-after` seconds `speech_started` (the caller
  interrupts while the bot is still playing), `response.done` (cancelled, as with
  `interrupt_response`), `speech_stopped` and `committed`. It runs no VAD: the turns are timed,
  so every call gets the same load;
- N simulated callers sending 20 ms PCMU RTP on loopback UDP, paced by their own media clock.
  Each payload starts with a 4-byte packet counter so the gateway side can match an append to
  the datagrams whose audio it carries.

Measured inside the gateway process with `time.perf_counter()` (CLOCK_MONOTONIC), by wrapping
methods on the bench's own instances (no product code changes):
1. RTP datagram received (`RtpStream._on_rtp` entry) -> the `input_audio_buffer.append` frame
   carrying its audio written to the WebSocket (the client's `_write_now` wrote it from the tick,
   or, when it had to queue, the writer's `ws.send` returned). Split into the
   jitter-buffer hold (received -> released by the clock tick, intentional: `jitter_min_ms`) and
   the processing after release (release -> written), which is what the 1 ms target is about.
2. First audio delta of a response received (the frame completed in websockets'
   `process_event`, i.e. in the socket read callback) -> the first RTP packet of its audio sent
   (`RtpStream.send_frame` returned). Split into delta received -> in the playout queue
   (processing), and -> the packet's tick (the wait for the next 20 ms frame boundary of the
   call's clock slot, uniform 0-20 ms by design of a paced stream).
3. `speech_started` received while bot audio is still queued -> the last bot RTP packet sent
   (0 when no bot packet left after it), closed at the first silence frame after it; and
   speech_started received -> playout flushed. A barge-in whose audio stopped without a flush
   (it ran out instead) is counted as "not flushed".
CPU % = process time / wall time of the gateway over the measured window (helpers shown apart);
CPU steal % and the load average say how much the machine was shared. A run stays bounded on an
overloaded machine: no new call batch after a 40 s setup budget, every helper has a lifetime.

    .venv/bin/python bench/latency.py                        # 1, 100, 500 calls, 15 s each
    .venv/bin/python bench/latency.py --calls 100 --seconds 5 --loop asyncio
    .venv/bin/python bench/latency.py --calls 500 --cpu 0   # gateway pinned, helpers elsewhere
    .venv/bin/python bench/latency.py --send-cost           # CPU per WebSocket append frame
    .venv/bin/python bench/latency.py --calls 1 100 --seconds 10 --caller-phase random \
        --jitter-ms 30 --release arrival      # jitter-buffer hold: any phase, 30 ms jitter,
                                              # released on arrival as well as on the tick
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench._procstat import cpu_times, proc_cpu_s, steal_pct
from gateway.call.session import CallSession, SessionSettings
from gateway.call_settings import call_policy_for, session_config_for
from gateway.cli import settle_heap
from gateway.config import GatewayConfig
from gateway.media.jitter import Frame
from gateway.media.pacer import (
    CallOutput,
    IdlePolicy,
    LatenessStats,
    MediaClock,
    PlayoutQueue,
    shared_clock,
)
from gateway.media.playout import FlushReport
from gateway.media.ports import PortAllocator
from gateway.media.stream import RtpStream, StreamConfig
from gateway.observe.logs import configure_logging
from gateway.realtime import events as rte
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint, RealtimeClient

perf = time.perf_counter
RTP_HEADER = struct.Struct("!BBHII")
CALLER_BODY = bytes(range(1, 157))  # 156 bytes of non-silent u-law after the 4-byte counter
BOT_TAG = 0xA5  # first byte of a response's audio: marks its first RTP packet
BOT_FILL = 0x2A  # the rest of the bot audio (never the u-law silence byte 0xFF)
SILENCE = 0xFF
DELTAS_PER_TURN = 4
BOT_AUDIO_BYTES = 8000  # 1 s of G.711 per turn
SETUP_BATCH = 50  # calls connected at once (500 handshakes at once only measure the server)
SETUP_BUDGET_S = 40.0  # no new batch after this: keeps a run on an overloaded machine bounded

# ============================================================================================
# Realtime-shaped WebSocket server (separate process)

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """Unmasked server frame (RFC 6455 5.2), FIN set."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


@dataclass
class ServerOptions:
    period_s: float = 2.0
    barge_after_s: float = 0.6


@dataclass
class ServerStats:
    connections: int = 0
    text_frames: int = 0
    text_bytes: int = 0
    turns: int = 0


class LiteRealtime(asyncio.Protocol):
    """One client connection: handshake, session.update -> session.updated, timed turns."""

    def __init__(
        self, options: ServerOptions, stats: ServerStats, conn_id: int, go: asyncio.Event
    ) -> None:
        self.options = options
        self.go = go
        self.stats = stats
        self.conn_id = conn_id
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.configured = False
        self.turns: asyncio.Task[None] | None = None
        self.events = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.turns is not None:
            self.turns.cancel()
        self.transport = None

    def send(self, event: dict[str, Any]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.events += 1
        # The send time rides in event_id (perf_counter is CLOCK_MONOTONIC on Linux: one clock
        # for every process), so the gateway side can time from the server's write too.
        event["event_id"] = f"event_{self.conn_id}_{self.events}_{time.perf_counter_ns()}"
        self.transport.write(ws_frame(0x1, orjson.dumps(event)))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 16384 and self.transport is not None:
                    self.transport.close()
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[: end + 4]
            key = ""
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            assert self.transport is not None
            if not key:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()
                return
            accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
            )
            self.open = True
            self.send(
                {
                    "type": "session.created",
                    "session": {
                        "id": f"sess_{self.conn_id}",
                        "object": "realtime.session",
                        "type": "realtime",
                        "model": "gpt-realtime",
                    },
                }
            )
        self._read_frames()

    def _read_frames(self) -> None:
        buf = self.buf
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            mask_at = pos + hdr
            start = mask_at + (4 if b1 & 0x80 else 0)
            end = start + length
            if end > n:
                break
            opcode = b0 & 0x0F
            if opcode == 0x1:
                self.stats.text_frames += 1
                self.stats.text_bytes += length
                if not self.configured:
                    self._control(unmask(bytes(buf[start:end]), bytes(buf[mask_at:start])))
            elif opcode == 0x9 and self.transport is not None:  # ping -> pong, same payload
                payload = unmask(bytes(buf[start:end]), bytes(buf[mask_at:start]))
                self.transport.write(ws_frame(0xA, payload))
            elif opcode == 0x8 and self.transport is not None:  # close handshake
                payload = unmask(bytes(buf[start:end]), bytes(buf[mask_at:start]))
                self.transport.write(ws_frame(0x8, payload[:2]))
                self.transport.close()
                return
            pos = end
        if pos:
            del buf[:pos]

    def _control(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if event.get("type") != "session.update":
            return
        session = dict(event.get("session") or {})
        session.update({"id": f"sess_{self.conn_id}", "object": "realtime.session"})
        self.send({"type": "session.updated", "session": session})
        self.configured = True
        self.turns = asyncio.get_running_loop().create_task(self._run_turns())

    async def _run_turns(self) -> None:
        opts = self.options
        rng = random.Random(self.conn_id)
        await self.go.wait()  # every call is set up: turns start, spread over one period
        await asyncio.sleep(rng.random() * opts.period_s)
        turn = 0
        audio_ms = 0
        while self.transport is not None:
            turn += 1
            self.stats.turns += 1
            started = time.monotonic()
            response_id = f"resp_{self.conn_id}_{turn}"
            item_id = f"item_{self.conn_id}_{turn}"
            user_item = f"item_user_{self.conn_id}_{turn}"
            self.send(
                {
                    "type": "response.created",
                    "response": {
                        "id": response_id,
                        "object": "realtime.response",
                        "status": "in_progress",
                        "output": [],
                    },
                }
            )
            # 4-byte tag (0xA5 + turn number) then fill: the gateway spots the first packet.
            audio = bytes((BOT_TAG,)) + (turn & 0xFFFFFF).to_bytes(3, "big")
            audio += bytes((BOT_FILL,)) * (BOT_AUDIO_BYTES - 4)
            step = BOT_AUDIO_BYTES // DELTAS_PER_TURN
            for offset in range(0, BOT_AUDIO_BYTES, step):
                self.send(
                    {
                        "type": "response.output_audio.delta",
                        "response_id": response_id,
                        "item_id": item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": base64.b64encode(audio[offset : offset + step]).decode(),
                    }
                )
            await asyncio.sleep(opts.barge_after_s)
            audio_ms += int(opts.period_s * 1000)
            self.send(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": audio_ms,
                    "item_id": user_item,
                }
            )
            self.send(
                {
                    "type": "response.done",
                    "response": {
                        "id": response_id,
                        "object": "realtime.response",
                        "status": "cancelled",
                        "status_details": {"type": "cancelled", "reason": "turn_detected"},
                        "output": [],
                        "usage": None,
                    },
                }
            )
            await asyncio.sleep(0.3)
            self.send(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": audio_ms + 300,
                    "item_id": user_item,
                }
            )
            self.send(
                {
                    "type": "input_audio_buffer.committed",
                    "item_id": user_item,
                    "previous_item_id": None,
                }
            )
            # A random phase per turn, so first deltas land anywhere in the 20 ms frame.
            rest = opts.period_s - (time.monotonic() - started) + rng.uniform(0.0, 0.02)
            await asyncio.sleep(max(0.05, rest))


async def run_server(options: ServerOptions, lifetime_s: float) -> None:
    loop = asyncio.get_running_loop()
    stats = ServerStats()
    ids = iter(range(1, 1 << 30))
    go = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    server = await loop.create_server(
        lambda: LiteRealtime(options, stats, next(ids), go), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime_s)  # bounded even if the parent dies
    server.close()
    print(json.dumps(stats.__dict__), file=sys.stderr, flush=True)


# ============================================================================================
# Simulated callers (separate process)


def _send_quietly(sock: socket.socket, packet: bytes, addr: tuple[str, int]) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
        sock.sendto(packet, addr)


async def run_callers(
    host: str,
    ports: list[int],
    lifetime_s: float,
    caller_phase: str = "slot",
    jitter_s: float = 0.0,
) -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock(loop)
    sockets: list[socket.socket] = []
    if caller_phase == "random":
        # The callers' clock and the gateway's both hand out slots in registration order, so
        # by default caller i sends in the slot that call i's tick runs in: every call gets
        # one phase (the difference of the two clocks' epochs), and the jitter-buffer hold
        # (1a) shows the release granularity of that one phase. Real peers have any phase.
        ports = random.sample(ports, len(ports))
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        # The gateway's RTP back to us is never read: keep the kernel buffer small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.bind((host, 0))
        sockets.append(sock)
        state = {"seq": random.getrandbits(16), "ts": random.getrandbits(32), "count": 0}
        ssrc = random.getrandbits(32)

        def tick(
            frame: int,
            deadline: float,
            sock: socket.socket = sock,
            addr: tuple[str, int] = (host, port),
            state: dict[str, int] = state,
            ssrc: int = ssrc,
        ) -> None:
            state["count"] += 1
            packet = RTP_HEADER.pack(0x80, 0, state["seq"], state["ts"], ssrc)
            packet += state["count"].to_bytes(4, "big")
            packet += time.perf_counter_ns().to_bytes(8, "big") + CALLER_BODY[8:]
            if jitter_s > 0:
                # Injected network jitter: each packet leaves 0..jitter_s late, so packets
                # overtake each other when it exceeds the 20 ms packet time.
                loop.call_later(random.uniform(0.0, jitter_s), _send_quietly, sock, packet, addr)
            else:
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    sock.sendto(packet, addr)
            state["seq"] = (state["seq"] + 1) & 0xFFFF
            state["ts"] = (state["ts"] + 160) & 0xFFFFFFFF

        clock.register(tick)
    print("READY", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime_s)
    clock.close()
    for sock in sockets:
        sock.close()


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
    bot_packets_after_speech: list[int] = field(default_factory=list)
    not_flushed: int = 0  # barge-ins where the bot audio stopped without a flush


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


class BenchClient(RealtimeClient):
    """The product client, observed: when append frames are written, when events arrive."""

    def __init__(self, endpoint: Endpoint, probe: CallProbe) -> None:
        super().__init__(endpoint)
        self._probe = probe
        self._received_at = 0.0
        self._sent_at = 0.0

    async def connect(self, timeout: float = 10.0) -> rte.SessionCreated:  # noqa: ASYNC109
        created = await super().connect(timeout)
        ws = self._ws
        assert ws is not None
        probe = self._probe
        send, parse = ws.send, self.parser.parse
        marks = probe.marks

        async def timed_send(message: Any, text: bool | None = None) -> None:
            mark = marks.pop(id(message), None)
            await send(message, text=text)
            if mark is not None:
                probe.on_frame_written(mark)

        def observed_parse(frame: bytes | str) -> Any:
            event = parse(frame)
            probe.on_server_event(event, self._received_at, self._sent_at)
            return event

        ws.send = timed_send  # type: ignore[method-assign]
        self.parser.parse = observed_parse  # type: ignore[method-assign]
        return created

    def _on_message(self, data: bytes) -> None:
        # The product reads each message in the socket's read callback: stamp it there.
        self._received_at = now = perf()
        self._sent_at = _server_sent(data)
        if self._probe.rec.measuring:
            self._probe.rec.samples.event_socket_wait.append(now - self._sent_at)
        super()._on_message(data)

    def _enqueue(self, frame: bytes) -> None:
        # Mark before the product code runs: the frame may be written synchronously in there.
        self._probe.on_append_queued(frame)
        super()._enqueue(frame)

    def _write_now(self, ws: Any, frame: bytes) -> bool:
        # The product's fast path (framed and written without ws.send): stamp it here.
        written = super()._write_now(ws, frame)
        if written:
            mark = self._probe.marks.pop(id(frame), None)
            if mark is not None:
                self._probe.on_frame_written(mark)
        return written


class BenchCall:
    """One call wired like gateway/call/call.py (`open_media`, `start_session`, and the media
    leg's `start_output`)."""

    def __init__(self, index: int, rec: Recorder, clock: MediaClock) -> None:
        self.index = index
        self.clock = clock
        self.stream = RtpStream(StreamConfig(codec="PCMU", payload_type=0))
        self.queue = PlayoutQueue(codec="PCMU", idle_policy=IdlePolicy.SILENCE)
        self.probe = CallProbe(rec, self.queue)
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

        def observed_enqueue(item_id: str, g711: bytes) -> None:
            enqueue(item_id, g711)
            probe.on_enqueue(g711)

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
            backend=RealtimeBackend(client_factory=lambda endpoint: BenchClient(endpoint, probe)),
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

        def observed_send(payload: bytes, marker: bool) -> None:
            send_frame(payload, marker)
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


def _helper(role: str, *args: str) -> list[str]:
    cmd = [sys.executable, __file__, "--role", role, "--cpu", str(HELPER_PIN[0])]
    return [*cmd, "--helper-nice", str(HELPER_NICE[0]), *args]


HELPER_PIN = [-1]  # the gateway's --cpu, passed on so helpers avoid that CPU
HELPER_NICE = [0]  # the --helper-nice of this run
CALLER_PHASE = ["slot"]  # --caller-phase of this run
RELEASE = ["tick"]  # --release of this run
JITTER_MS = [0.0]  # --jitter-ms of this run


async def _read_line(proc: asyncio.subprocess.Process, timeout: float) -> str:  # noqa: ASYNC109
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"helper {proc.pid} exited early (rc={proc.returncode})")
    return line.decode().strip()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round((ordered[-1] if ordered else float("nan")) * 1000, 3),
    }


async def run_gateway(
    calls: int,
    seconds: float,
    warmup: float,
    server_opts: ServerOptions,
    rtp_range: tuple[int, int],
    gc_mode: str = "on",
    measure_at: float | None = None,
    samples_out: str | None = None,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    settle_heap()  # as `sip-realtime-gateway run` does once it is up, before any call
    log_file = tempfile.NamedTemporaryFile("w+", prefix="latency-bench-", suffix=".log")
    configure_logging("INFO", "json", log_file)  # the product's log path, to a file
    lifetime = str(seconds + warmup + SETUP_BUDGET_S + 120)
    server = await asyncio.create_subprocess_exec(
        *_helper(
            "server",
            "--period",
            str(server_opts.period_s),
            "--barge-after",
            str(server_opts.barge_after_s),
            "--lifetime",
            lifetime,
        ),
        stdout=asyncio.subprocess.PIPE,
    )
    callers: asyncio.subprocess.Process | None = None
    rec = Recorder()
    bench_calls: list[BenchCall] = []
    try:
        port = int((await _read_line(server, 10)).split()[1])
        config = GatewayConfig()
        settings = SessionSettings(
            endpoint=Endpoint.custom(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"),
            config=session_config_for(config, "PCMU", "Latency benchmark."),
            policy=call_policy_for(config),
            backend=RealtimeBackend(),
        )
        clock = shared_clock(loop)
        allocator = PortAllocator(*rtp_range)
        setup_started = perf()
        for first in range(0, calls, SETUP_BATCH):
            if perf() - setup_started > SETUP_BUDGET_S:
                break  # the machine cannot set up more calls in time: measure those we have
            count = min(calls, first + SETUP_BATCH) - first
            batch = [BenchCall(first + i, rec, clock) for i in range(count)]
            bench_calls += batch
            for call in batch:
                await call.open(allocator, settings)
            # A call whose session setup fails (503 after setup_timeout_s) is counted, not fatal:
            # on an overloaded machine that is itself the finding.
            await asyncio.wait([asyncio.ensure_future(c.answered) for c in batch], timeout=30)
            for call in batch:
                if call.answered.done() and call.answered.exception() is None:
                    assert call.session is not None
                    call.session.on_ack()
                elif call.problem is None:
                    call.problem = "not answered within 30 s"
        setup_s = perf() - setup_started
        answered = [c for c in bench_calls if c.problem is None]
        callers = await asyncio.create_subprocess_exec(
            *_helper(
                "callers",
                "--lifetime",
                lifetime,
                "--caller-phase",
                CALLER_PHASE[0],
                "--jitter-ms",
                str(JITTER_MS[0]),
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert callers.stdin is not None
        callers.stdin.write(json.dumps([c.rtp_port for c in answered]).encode() + b"\n")
        await callers.stdin.drain()
        await _read_line(callers, 30)
        server.send_signal(signal.SIGUSR1)
        if gc_mode == "freeze":
            # What a gateway could do once started: move everything allocated so far (modules,
            # calls set up) out of the collector's reach, so collections only scan new objects.
            gc.collect()
            gc.freeze()
        await asyncio.sleep(warmup)
        if measure_at is not None:
            # Several workers: measure the same window (CLOCK_MONOTONIC is system-wide).
            await asyncio.sleep(max(0.0, measure_at - time.monotonic()))
        appended0 = sum(c.session.stats.audio_appended_bytes for c in bench_calls if c.session)
        inbound0 = _inbound_counts(bench_calls)
        load0 = os.getloadavg()
        machine0 = cpu_times()
        server0, callers0 = proc_cpu_s(server.pid), proc_cpu_s(callers.pid)
        buckets0 = list(clock.stats.bucket_counts)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        rec.measuring = True
        cpu0, wall0 = time.process_time(), perf()
        await asyncio.sleep(seconds)
        rec.measuring = False
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        lateness = LatenessStats()
        lateness.bucket_counts = [
            b - a for a, b in zip(buckets0, clock.stats.bucket_counts, strict=True)
        ]
        lateness.wakeups = sum(lateness.bucket_counts)
        cpu, wall = time.process_time() - cpu0, perf() - wall0
        server_cpu = proc_cpu_s(server.pid) - server0
        callers_cpu = proc_cpu_s(callers.pid) - callers0
        load1 = os.getloadavg()
        steal = steal_pct(machine0, cpu_times())
        appended = sum(c.session.stats.audio_appended_bytes for c in bench_calls if c.session)
        dropped = sum(c.session.stats.appends_dropped for c in bench_calls if c.session)
        inbound = [b - a for a, b in zip(inbound0, _inbound_counts(bench_calls), strict=True)]
        windows = [c.stream.jitter.delay_ms for c in answered]
        window_ms = round(sum(windows) / len(windows), 1) if windows else 0.0
    finally:
        if callers is not None:
            await _stop(callers)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in bench_calls)), 30)
        await _stop(server)
    problems: dict[str, int] = {}
    for call in bench_calls:
        if call.problem:
            problems[call.problem] = problems.get(call.problem, 0) + 1
    if calls > len(bench_calls):
        problems[f"not attempted: {SETUP_BUDGET_S:.0f} s setup budget spent"] = calls - len(
            bench_calls
        )
    log_file.flush()
    log_file.seek(0)
    warnings: dict[str, int] = {}
    for line in log_file:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                warnings[record.get("event", "log")] = (
                    warnings.get(record.get("event", "log"), 0) + 1
                )
    log_file.close()
    s = rec.samples
    raw = {name: list(getattr(s, name)) for name in SAMPLE_LISTS} if samples_out else None
    return {
        "_raw": raw,
        "calls": calls,
        "answered": len(answered),
        "set_up": len(bench_calls),
        "loop": type(loop).__module__.split(".")[0],
        "setup_s": round(setup_s, 1),
        "seconds": round(wall, 2),
        "cpu_pct": round(100 * cpu / wall, 1),
        "server_cpu_pct": round(100 * server_cpu / wall, 1),
        "callers_cpu_pct": round(100 * callers_cpu / wall, 1),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in load1],
        "steal_pct": steal,
        "append_bytes_per_s": round((appended - appended0) / wall),
        "expected_bytes_per_s": calls * 8000,
        "appends_dropped": dropped,
        "inbound_late": inbound[0],
        "inbound_concealed": inbound[1],
        "inbound_reordered": inbound[2],
        "window_ms": window_ms,
        "problems": problems,
        "warnings": warnings,
        "rx_to_written": summary(s.rx_to_written),
        "hold": summary(s.hold),
        "release_to_written": summary(s.release_to_written),
        "delta_to_packet": summary(s.delta_to_packet),
        "delta_to_queued": summary(s.delta_to_queued),
        "queued_to_packet": summary(s.queued_to_packet),
        "speech_to_last_bot": summary(s.speech_to_last_bot),
        "speech_to_flush": summary(s.speech_to_flush),
        "sent_delta_to_queued": summary(s.sent_delta_to_queued),
        "sent_delta_to_packet": summary(s.sent_delta_to_packet),
        "sent_speech_to_last_bot": summary(s.sent_speech_to_last_bot),
        "rtp_socket_wait": summary(s.rtp_socket_wait),
        "event_socket_wait": summary(s.event_socket_wait),
        "bot_packets_after_speech_max": max(s.bot_packets_after_speech, default=0),
        # The clock's slot timers, late by at most this (histogram bucket bounds, ms): how
        # long the loop was busy (or the process descheduled) when a tick was due.
        "clock_late_p50_ms": lateness.quantile(0.5) * 1000,
        "clock_late_p99_ms": lateness.quantile(0.99) * 1000,
        # Involuntary context switches per second: the kernel took the CPU away (other
        # processes on it), as opposed to the loop waiting in epoll (voluntary).
        "preempted_per_s": round((usage1.ru_nivcsw - usage0.ru_nivcsw) / wall, 1),
        "not_flushed": s.not_flushed,
    }


async def run_send_cost(frames: int = 20000) -> dict[str, float]:
    """CPU per append frame: one `ws.send` per frame, 4 frames coalesced into one write, and
    the product's fast path (our framing + one `transport.write` per frame)."""
    from websockets.asyncio.client import connect

    from gateway.realtime import protocol
    from gateway.realtime.client import _mask_keys, masked_text_frame

    server = await asyncio.create_subprocess_exec(
        *_helper("server", "--lifetime", "120"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port = int((await _read_line(server, 10)).split()[1])
        ws = await asyncio.wait_for(connect(f"ws://127.0.0.1:{port}/", compression=None), 10)
        await asyncio.wait_for(ws.recv(), 10)
        frame = protocol.input_audio_append(bytes(160))
        for _ in range(2000):  # warm-up
            await ws.send(frame, text=True)
        cpu0 = time.process_time()
        for _ in range(frames):
            await ws.send(frame, text=True)
        one = (time.process_time() - cpu0) / frames
        cpu0 = time.process_time()
        for _ in range(frames // 4):
            # websockets' sans-I/O layer queues 4 frames, then one transport write.
            for _ in range(4):
                ws.protocol.send_text(frame)
            ws.send_data()
            await asyncio.sleep(0)
        four = (time.process_time() - cpu0) / (frames // 4 * 4)
        # The product's fast path (RealtimeClient._write_now): frame + mask here, one
        # transport.write per frame, no task wakeup, no drain; yield as often as above.
        transport = ws.transport
        cpu0 = time.process_time()
        for _ in range(frames // 4):
            for _ in range(4):
                transport.write(masked_text_frame(frame, _mask_keys.next()))
            await asyncio.sleep(0)
        direct = (time.process_time() - cpu0) / (frames // 4 * 4)
        cpu0 = time.process_time()
        for _ in range(frames):
            protocol.input_audio_append(bytes(160))
        encode = (time.process_time() - cpu0) / frames
        await asyncio.wait_for(ws.close(), 5)
    finally:
        await _stop(server)
    return {
        "one_send_per_frame_us": round(one * 1e6, 2),
        "four_frames_per_write_us": round(four * 1e6, 2),
        "fast_path_write_per_frame_us": round(direct * 1e6, 2),
        "encode_only_us": round(encode * 1e6, 2),
    }


# ============================================================================================
# Orchestration

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
)


def _inbound_counts(calls: list[BenchCall]) -> tuple[int, int, int]:
    """Jitter-buffer counters summed over the calls: late, concealed frames, reordered."""
    late = concealed = reordered = 0
    for call in calls:
        stats = call.stream.jitter.stats
        late += stats.late
        concealed += stats.concealed_frames
        reordered += stats.reordered
    return late, concealed, reordered


def merge_workers(
    parts: list[dict[str, Any]], raws: list[dict[str, list[float]]]
) -> dict[str, Any]:
    """One result for N calls split over several gateway processes: percentiles over every
    worker's samples, CPU summed, counters added, worst case of the rest."""
    merged = dict(parts[0])
    for key in ("calls", "answered", "set_up", "append_bytes_per_s", "expected_bytes_per_s"):
        merged[key] = sum(p[key] for p in parts)
    for key in (
        "appends_dropped",
        "not_flushed",
        "preempted_per_s",
        "inbound_late",
        "inbound_concealed",
        "inbound_reordered",
    ):
        merged[key] = round(sum(p[key] for p in parts), 1)
    for key in ("cpu_pct", "server_cpu_pct", "callers_cpu_pct"):
        merged[key] = round(sum(p[key] for p in parts), 1)
    for key in (
        "setup_s",
        "steal_pct",
        "clock_late_p50_ms",
        "clock_late_p99_ms",
        "bot_packets_after_speech_max",
    ):
        merged[key] = max(p[key] for p in parts)
    merged["window_ms"] = round(sum(p["window_ms"] for p in parts) / len(parts), 1)
    merged["cpu_pct_each"] = [p["cpu_pct"] for p in parts]
    merged["problems"] = {k: v for p in parts for k, v in p["problems"].items()}
    merged["warnings"] = {k: v for p in parts for k, v in p["warnings"].items()}
    for name in SAMPLE_LISTS:
        merged[name] = summary([x for raw in raws for x in raw[name]])
    return merged


ROWS = (
    ("rx_to_written", "1. RTP read -> append written (total)", ""),
    ("hold", "1a. of which jitter-buffer hold (read -> released)", "by design"),
    ("release_to_written", "1b. of which released -> append written", "<= 1 ms"),
    ("sent_delta_to_packet", "2. first delta written by the server -> first RTP sent", ""),
    ("sent_delta_to_queued", "2a. of which written by the server -> in playout queue", "<= 2 ms"),
    ("delta_to_queued", "2a'. of 2a: read from the socket -> in playout queue", ""),
    ("queued_to_packet", "2b. of which wait for the 20 ms frame + send", "by design"),
    (
        "sent_speech_to_last_bot",
        "3. speech_started written by the server -> last bot RTP",
        "<= 20 ms",
    ),
    ("speech_to_last_bot", "3'. speech_started read from the socket -> last bot RTP", ""),
    ("speech_to_flush", "3a. speech_started read -> playout flushed", ""),
    ("rtp_socket_wait", "4a. RTP written by the caller -> read by the gateway", ""),
    ("event_socket_wait", "4b. server event written -> read by the gateway", ""),
)


def _run(loop_kind: str, coro: Any) -> Any:
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_workers(args: argparse.Namespace, n: int) -> dict[str, Any] | None:
    """Run N calls in `args.workers` gateway processes at once (each with its own helpers and
    RTP port range) and merge their figures; None (and a line saying why) on failure."""
    workers = min(args.workers, n)
    low, high = args.rtp_ports
    span = (high - low + 1) // workers
    budget = SETUP_BUDGET_S if workers == 1 else 20.0
    measure_at = time.monotonic() + budget + args.warmup if workers > 1 else None
    procs = []
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
        for w in range(workers):
            calls = n // workers + (1 if w < n % workers else 0)
            first = low + w * span
            cmd = [sys.executable, __file__, "--one", "--calls", str(calls)]
            cmd += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
            cmd += ["--loop", args.loop, "--period", str(args.period), "--cpu", str(args.cpu)]
            cmd += ["--gc", args.gc, "--barge-after", str(args.barge_after)]
            cmd += ["--helper-nice", str(args.helper_nice)]
            cmd += ["--caller-phase", args.caller_phase]
            cmd += ["--release", args.release, "--jitter-ms", str(args.jitter_ms)]
            cmd += ["--rtp-ports", str(first), str(first + span - 1)]
            cmd += ["--samples-out", f"{tmp}/w{w}.json"]
            if measure_at is not None:
                cmd += ["--measure-at", repr(measure_at)]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        parts, raws = [], []
        timeout = args.seconds + args.warmup + SETUP_BUDGET_S + 150
        for w, proc in enumerate(procs):
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            if proc.returncode != 0:
                print(f"calls={n} worker {w}: failed: {err.strip().splitlines()[-3:]}")
                for other in procs:
                    if other.poll() is None:
                        other.kill()
                        other.communicate()
                return None
            parts.append(json.loads(out.strip().splitlines()[-1]))
            raws.append(orjson.loads(Path(f"{tmp}/w{w}.json").read_bytes()))
    return parts[0] if workers == 1 else merge_workers(parts, raws)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per N")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between bot turns")
    parser.add_argument("--barge-after", type=float, default=0.6)
    parser.add_argument("--rtp-ports", type=int, nargs=2, default=[14000, 17999])
    parser.add_argument(
        "--cpu",
        type=int,
        default=-1,
        help="CPU for the gateway process, helpers on the others (-1: no pinning)",
    )
    parser.add_argument("--json", action="store_true", help="print raw JSON per N as well")
    parser.add_argument(
        "--gc",
        choices=["on", "freeze"],
        default="on",
        help="freeze: gc.freeze() again after the calls are set up (the product freezes "
        "only what exists at startup)",
    )
    parser.add_argument(
        "--send-cost", action="store_true", help="only measure the CPU per WebSocket append"
    )
    parser.add_argument("--role", choices=["server", "callers"], help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the calls (one event loop each, as several instances "
        "behind the dispatcher): percentiles over all of them, CPU summed",
    )
    parser.add_argument(
        "--helper-nice",
        type=int,
        default=10,
        help="niceness of the stand-in peers (callers, Realtime server): they stand for "
        "machines elsewhere, so they yield the CPU to the gateway when both want it (0: equal)",
    )
    parser.add_argument(
        "--caller-phase",
        choices=["slot", "random"],
        default="slot",
        help="slot: caller i sends in the clock slot of call i's tick (one phase for all calls); "
        "random: callers take the gateway's slots in random order (any phase, as real peers)",
    )
    parser.add_argument(
        "--release",
        choices=["tick", "arrival", "due"],
        default="tick",
        help="when inbound audio leaves the jitter buffer: tick (the product: the call's 20 ms "
        "clock tick only), arrival (also right after each packet), due (also a timer at "
        "JitterBuffer.next_due): what stream.py could do",
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="injected network jitter: each caller packet is sent 0..J ms late (uniform)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure-at", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--samples-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    server_opts = ServerOptions(period_s=args.period, barge_after_s=args.barge_after)

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = args.cpu >= 0 and len(cpus) > 1 and args.cpu in cpus
    if pin:
        # The gateway gets its CPU; our own load generators run on the others, so at least
        # they do not compete with it (other jobs on the machine still can).
        mine = {args.cpu} if args.role is None else set(cpus) - {args.cpu}
        os.sched_setaffinity(0, mine)
    if args.role is not None and args.helper_nice > 0:
        os.nice(args.helper_nice)
    if args.role == "server":
        _run("uvloop", run_server(server_opts, args.lifetime))
        return
    if args.role == "callers":
        ports = json.loads(sys.stdin.readline())
        _run(
            "uvloop",
            run_callers(
                "127.0.0.1", ports, args.lifetime, args.caller_phase, args.jitter_ms / 1000.0
            ),
        )
        return
    # 500 calls: 2 UDP sockets + 1 TCP connection each, beyond the usual 1024 soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    if args.send_cost:
        print(json.dumps(_run(args.loop, run_send_cost())))
        return
    if args.one:
        HELPER_PIN[0] = args.cpu
        HELPER_NICE[0] = args.helper_nice
        CALLER_PHASE[0] = args.caller_phase
        RELEASE[0] = args.release
        JITTER_MS[0] = args.jitter_ms
        result = _run(
            args.loop,
            run_gateway(
                args.calls[0],
                args.seconds,
                args.warmup,
                server_opts,
                tuple(args.rtp_ports),
                args.gc,
                args.measure_at,
                args.samples_out,
            ),
        )
        raw = result.pop("_raw")
        if args.samples_out and raw is not None:
            Path(args.samples_out).write_bytes(orjson.dumps(raw))
        print(json.dumps(result))
        return
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    print(
        f"loop={args.loop} seconds={args.seconds} warmup={args.warmup} period={args.period} "
        f"barge_after={args.barge_after} gateway_cpu={args.cpu if pin else 'any'} gc={args.gc} "
        f"cpus={os.cpu_count()} workers={args.workers} helper_nice={args.helper_nice} "
        f"caller_phase={args.caller_phase} release={args.release} jitter_ms={args.jitter_ms:g}"
    )
    results = []
    for n in args.calls:
        result = run_workers(args, n)
        if result is not None:
            results.append(result)
    print()
    print("| calls | metric | n | p50 ms | p99 ms | max ms | target (p99) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for key, label, target in ROWS:
            m = r[key]
            print(
                f"| {r['calls']} | {label} | {m['n']} | {m['p50_ms']} | {m['p99_ms']} | "
                f"{m['max_ms']} | {target} |"
            )
    print()
    print(
        "| calls (answered) | gateway CPU % | server CPU % | callers CPU % | load avg (1 min) before/after "
        "| CPU steal % | appended B/s (expected) | appends dropped | bot pkts after speech_started (max) "
        "| barge-ins not flushed | clock late p50/p99 ms | preempted /s | setup s "
        "| inbound late / concealed / reordered | jitter window ms (mean at end) | warnings |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['calls']} ({r['answered']}) | {r['cpu_pct']} | {r['server_cpu_pct']} | {r['callers_cpu_pct']} | "
            f"{r['load_before'][0]} / {r['load_after'][0]} | {r['steal_pct']} | "
            f"{r['append_bytes_per_s']} "
            f"({r['expected_bytes_per_s']}) | {r['appends_dropped']} | "
            f"{r['bot_packets_after_speech_max']} | {r['not_flushed']} | "
            f"{r['clock_late_p50_ms']:g} / {r['clock_late_p99_ms']:g} | {r['preempted_per_s']} | "
            f"{r['setup_s']} | "
            f"{r['inbound_late']} / {r['inbound_concealed']} / {r['inbound_reordered']} | "
            f"{r['window_ms']} | "
            f"{r['warnings'] or ''}{' problems: ' + str(r['problems']) if r['problems'] else ''} |"
        )
    if args.json:
        for r in results:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
