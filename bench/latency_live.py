"""`bench/latency.py --api live`: the GPT-Live side of the latency bench.

- `LiteLive`, the GPT-Live-shaped stand-in server (a helper process, the Realtime stand-in's
  framing and handshake): it answers `session.start` with `session.started` echoing the audio
  format, `session.close` with `session.closed`, never parses the appends, and streams one
  continuous output track as the service does (gpt-live-protocol.md section 4): one
  `session.output_audio.delta` of 100 ms (800 bytes of G.711) every 100 ms, paced on the
  monotonic clock, silence (0xFF) between replies. Every `--period` s per call a reply: the
  first delta starts with the tag 0xA5 + a 3-byte counter, the later ones with 0xA6 + counter
  (the rest non-silent fill), for `--barge-after` s plus 0-4 random frames; then the model falls
  silent (the caller spoke over it) at a frame boundary anywhere in a delta, the rest of that
  delta and the following ones silence. No event says so: there is no speech_started in
  GPT-Live. Each turn's deltas take a random phase (0-20 ms) in the 20 ms frame, moved while
  the track is silent.
- `LiveProbe` and `BenchLiveConnection`: the product's `LiveClient` (via `LiveConnection`)
  observed as the Realtime client is (bench/latency_probe.py `ObservedLink`).

What the figures mean in live mode (ROWS_LIVE in bench/latency.py):
- 1, 1a, 1b: as Realtime (RTP in -> `session.input_audio.append` written; the same path).
- 2: a reply's first delta -> its first RTP: includes the live playout's deliberate start delay
  (gateway/call/session.py LIVE_PLAYOUT_START_DELAY_FRAMES, 40 ms) in 2b.
- 2s: a later delta of a reply -> its first RTP (steady state): the wait behind the audio already
  queued (the shallow buffer: newest delta + 60 ms) plus the frame wait.
- 3: the model's last non-silent byte -> the last non-silent RTP the gateway sent. The model's
  byte time is as tests/e2e/test_live_barge_in.py takes it: the server's write of the delta
  that held it plus the byte's offset in the delta (the track is paced in real time), end of
  the byte. The issue's bound: 100 ms. A value below 0 (at most -20 ms) is possible by this
  convention: an RTP packet is stamped when sent, its 20 ms of audio play after that.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import orjson

from bench.latency_peers import BOT_FILL, BOT_TAG, SILENCE, LiteRealtime
from bench.latency_probe import CallProbe, ObservedLink, Recorder, perf
from gateway import voice
from gateway.call.session import SessionSettings
from gateway.call_settings import call_policy_for, live_session_config_for
from gateway.config import GatewayConfig
from gateway.live import events as le
from gateway.live import protocol as lp
from gateway.live.backend import LiveBackend, LiveConnection
from gateway.live.client import LiveError
from gateway.media.pacer import PlayoutQueue
from gateway.wsock import Endpoint

LIVE_NEXT_TAG = 0xA6  # first byte of a reply's later deltas (BOT_TAG: its first delta)
DELTA_S = 0.1  # the service's delta size and cadence (reference section 4: about 100 ms)
DELTA_BYTES = 800
FRAME_BYTES = 160
_SILENT_DELTA = base64.b64encode(bytes((SILENCE,)) * DELTA_BYTES).decode()

# ============================================================================================
# GPT-Live-shaped WebSocket server (helper process)


class LiteLive(LiteRealtime):
    """One client connection: handshake, session.start -> session.started, the output track."""

    # session.close (and the greeting's instructions) are short; an append is ~270 bytes.
    control_frame_max = 160
    # A few client control events of each type, as sent (run_server's events_out): the bench's
    # test validates them against openai.types.live.
    recorded: ClassVar[list[dict[str, Any]]] = []
    RECORD_PER_TYPE = 4

    def _on_open(self) -> None:
        pass  # GPT-Live: the client speaks first (session.start)

    def _control(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        kind = event.get("type")
        if isinstance(event, dict) and isinstance(kind, str):
            same = sum(1 for seen in self.recorded if seen.get("type") == kind)
            if same < self.RECORD_PER_TYPE:
                self.recorded.append(event)
        if kind == "session.start" and not self.configured:
            session = event.get("session") or {}
            started = {
                "id": f"sess_{self.conn_id}",
                "model": session.get("model"),
                "audio": session.get("audio"),
                "expires_at": int(time.time()) + 3600,
            }
            self.send({"type": "session.started", "session": started})
            self.configured = True
            self.turns = asyncio.get_running_loop().create_task(self._run_turns())
        elif kind == "session.close":
            self.send({"type": "session.closed", "reason": "close_requested"})
            if self.turns is not None:
                self.turns.cancel()

    def _delta(self, b64: str) -> None:
        self.send({"type": "session.output_audio.delta", "delta": b64})

    async def _run_turns(self) -> None:
        opts = self.options
        rng = random.Random(self.conn_id)
        loop = asyncio.get_running_loop()
        per_turn = max(2, round(opts.period_s / DELTA_S))
        voiced_base = max(1, round(opts.barge_after_s * 8000 / FRAME_BYTES)) * FRAME_BYTES
        fill = bytes((BOT_FILL,)) * DELTA_BYTES
        silence = bytes((SILENCE,)) * DELTA_BYTES
        anchor = loop.time()
        k = 0  # deltas sent
        offset = 0.0  # this turn's phase in the 20 ms frame
        next_turn: int | None = None
        speech_left = 0
        first = False
        seq = 0
        while self.transport is not None:
            if next_turn is None and self.go.is_set():
                # Every call is set up: turns start, spread over one period.
                next_turn = k + 1 + rng.randrange(per_turn)
            if next_turn is not None and k == next_turn:
                self.stats.turns += 1
                speech_left = voiced_base + rng.randrange(5) * FRAME_BYTES
                first = True
                next_turn = k + per_turn
            if speech_left > 0:
                n = min(speech_left, DELTA_BYTES)
                seq = (seq + 1) & 0xFFFFFF
                tag = bytes((BOT_TAG if first else LIVE_NEXT_TAG,)) + seq.to_bytes(3, "big")
                audio = tag + fill[: n - 4] + silence[: DELTA_BYTES - n]
                speech_left -= n
                first = False
                self._delta(base64.b64encode(audio).decode())
            else:
                self._delta(_SILENT_DELTA)
            k += 1
            if next_turn is not None and k == next_turn:
                offset = rng.uniform(0.0, 0.02)  # moved while silent: a gap of < 20 ms
            await asyncio.sleep(max(0.0, anchor + k * DELTA_S + offset - loop.time()))


# ============================================================================================
# Gateway side


class LiveProbe(CallProbe):
    """CallProbe's inbound path as is; the outbound path and barge-in as GPT-Live has them."""

    def __init__(self, rec: Recorder, queue: PlayoutQueue) -> None:
        super().__init__(rec, queue)
        self.talking = False  # the model's output is non-silent
        self.voiced_until = (0.0, 0.0)  # the last non-silent byte's time: (read, written) clock
        self.last_voiced_sent = 0.0  # the last non-silent RTP sent
        self.unmatched = 0  # tagged deltas whose first packet was never seen (trimmed)

    def on_server_event(self, event: Any, received: float, sent: float) -> None:
        if type(event) is not le.OutputAudio:
            return
        audio = event.audio
        head = audio[0] if audio else SILENCE
        if head == BOT_TAG or head == LIVE_NEXT_TAG:
            if head == BOT_TAG:
                self._reply_starts()
            self.first_delta[audio[:4]] = (received, sent)
        voiced = len(audio.rstrip(b"\xff"))
        if voiced:
            self.voiced_until = (received + voiced / 8000, sent + voiced / 8000)
            self.talking = True
        if self.talking and voiced < len(audio):
            # The model fell silent (inside this delta or at its start): a barge-in to time.
            self.talking = False
            self.speech_at, self.speech_sent = self.voiced_until
            self.bot_after = 0

    def _reply_starts(self) -> None:
        """A new reply: the previous one has played out, so its barge-in is complete."""
        if self.speech_at is not None and self.speech_sent is not None:
            if self.rec.measuring and self.last_voiced_sent:
                s = self.rec.samples
                s.speech_to_last_bot.append(self.last_voiced_sent - self.speech_at)
                s.sent_speech_to_last_bot.append(self.last_voiced_sent - self.speech_sent)
                s.bot_packets_after_speech.append(self.bot_after)
            self.speech_at = self.speech_sent = None
        self.unmatched += len(self.first_delta)
        self.first_delta.clear()
        self.queued.clear()

    def on_enqueue(self, audio: bytes) -> None:
        head = audio[:1]
        if head == b"\xa5" or head == b"\xa6":
            self.queued[audio[:4]] = perf()

    def on_flush(self, report: Any) -> None:
        pass  # GPT-Live: nothing flushes on barge-in (the model yields by itself)

    def on_packet_sent(self, payload: bytes) -> None:
        if payload[0] == SILENCE and payload[-1] == SILENCE:
            return  # silence (idle, or the model's silence played inside a reply)
        now = perf()
        self.last_voiced_sent = now
        speech_at = self.speech_at
        if speech_at is not None and now > speech_at:
            self.bot_after += 1
        head = payload[0]
        if head != BOT_TAG and head != LIVE_NEXT_TAG:
            return
        tag = payload[:4]
        stamps = self.first_delta.pop(tag, None)
        queued = self.queued.pop(tag, None)
        if not self.rec.measuring or stamps is None or queued is None:
            return
        received, sent = stamps
        s = self.rec.samples
        if head == BOT_TAG:
            s.delta_to_packet.append(now - received)
            s.delta_to_queued.append(queued - received)
            s.queued_to_packet.append(now - queued)
            s.sent_delta_to_queued.append(queued - sent)
            s.sent_delta_to_packet.append(now - sent)
        else:
            s.steady_delta_to_packet.append(now - received)
            s.steady_delta_to_queued.append(queued - received)
            s.steady_queued_to_packet.append(now - queued)
            s.steady_sent_delta_to_packet.append(now - sent)


class BenchLiveConnection(ObservedLink, LiveConnection):
    """The product GPT-Live client (`LiveConnection`), observed."""

    def __init__(self, endpoint: Endpoint, config: lp.LiveSessionConfig, probe: CallProbe) -> None:
        super().__init__(endpoint, config)
        self._probe = probe

    async def open(
        self,
        history: Sequence[tuple[str, str]] = (),
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> le.SessionStarted:
        started = await super().open(history, timeout)
        assert self._ws is not None
        self._time_sends(self._ws)
        return started

    def _parse(self, data: bytes) -> Any:
        event = super()._parse(data)
        if event is not None:
            self._probe.on_server_event(event, self._received_at, self._sent_at)
        return event


class BenchLiveBackend(LiveBackend):
    """LiveBackend whose connections are observed by one call's probe."""

    def __init__(self, probe: CallProbe) -> None:
        self._probe = probe

    async def open(
        self,
        endpoint: Endpoint,
        config: lp.LiveSessionConfig,
        history: Sequence[tuple[str, str]],
        timeout: float,  # noqa: ASYNC109
    ) -> LiveConnection:
        client = BenchLiveConnection(endpoint, config, self._probe)
        try:
            await client.open(history, timeout)
        except LiveError as exc:
            raise voice.VoiceSetupError(str(exc)) from exc
        return client


def live_settings(port: int) -> SessionSettings:
    """The settings `run` gives a call with `[realtime] api = "live"`, against the stand-in."""
    base = GatewayConfig()
    config = replace(base, realtime=replace(base.realtime, api="live"))
    return SessionSettings(
        endpoint=Endpoint.custom(f"ws://127.0.0.1:{port}/v1/live/sessions"),
        config=live_session_config_for(config, "PCMU", "Latency benchmark."),
        policy=call_policy_for(config),
        backend=LiveBackend(),
    )


__all__ = ["BenchLiveBackend", "LiteLive", "LiveProbe", "live_settings"]
