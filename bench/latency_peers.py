"""The latency bench's stand-in peers, each run as a helper process of bench/latency.py (so their
CPU does not count against the gateway): the Realtime-shaped WebSocket server and the simulated
callers; the GPT-Live server is in bench/latency_live.py. What they send is described in
bench/latency.py's docstring. Shared wire constants and RFC 6455 framing live here too."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.media.pacer import (
    MediaClock,
)

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

    # Text frames up to this size are parsed once the session is configured (0: none; the
    # appends are never parsed, so the server keeps up with 25 000 of them per second).
    control_frame_max = 0

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
            self._on_open()
        self._read_frames()

    def _on_open(self) -> None:
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
                if not self.configured or length <= self.control_frame_max:
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


def _write_events(path: str, events: list[Any]) -> None:
    with open(path, "w") as out:
        json.dump(events, out)


async def run_server(
    options: ServerOptions,
    lifetime_s: float,
    protocol: type[LiteRealtime] = LiteRealtime,
    events_out: str | None = None,
) -> None:
    """`events_out`: where to write, at the end, the client control events the protocol kept
    (`recorded`: LiteLive keeps a few of each type, for tests to validate)."""
    loop = asyncio.get_running_loop()
    stats = ServerStats()
    ids = iter(range(1, 1 << 30))
    go = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    server = await loop.create_server(
        lambda: protocol(options, stats, next(ids), go), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime_s)  # bounded even if the parent dies
    server.close()
    if events_out:
        _write_events(events_out, getattr(protocol, "recorded", []))
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
