"""One simulated GPT-Live session on one primary WebSocket (gpt-live-protocol.md section 12).

Frames in, validation (schema.py), dispatch to the `on_<event type>` handlers, events out (each
recorded with a monotonic timestamp, audio within `keep_audio_chars`). Two tasks run beside the
reader once `session.started` is sent: the pacer, which sends the output track one delta every
`delta_ms` on the monotonic clock (track.py), and the watchdog, which ends the session when input
stops for `idle_expire_s`, at `expires_at`, or drops it on purpose (`drop_after_s`).

The session clock is input audio time: it moves only with `session.input_audio.append`
(caller.py), and what is placed on the timeline (append acknowledgements, input transcript
fragments, usage) waits for it. Delegation (Responses function calls, client delegations) is in
delegation.py, a part of `LiveSession`.

Choices where the real service's behaviour is UNKNOWN (each marked ASSUMED where it is sent):
a first message other than `session.start` gets `error{code: "session_not_started"}` and the
socket stays open for a proper `session.start`; a second `session.start` gets
`session_already_started`; commands after `session.close` get `session_closing`; an append
while a fixture plays gets `fixture_active`; an append over 500 tokens (estimated as
characters / 4) gets `string_above_max_length`; a socket that sends no `session.start` within
`idle_expire_s` is closed with 1008.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from gateway.live.simulator.caller import CallerSpeech, SpeechStarted, Utterance
from gateway.live.simulator.delegation import Delegation
from gateway.live.simulator.options import LiveSimulatorOptions
from gateway.live.simulator.schema import EVENT_FIELDS, validate_client_event
from gateway.live.simulator.sounds import (
    FIXTURE_MAX_S,
    bytes_per_ms,
    fixture_to_session,
    silence_byte,
    tone,
)
from gateway.live.simulator.track import FRAGMENT_MS, OutputTrack
from gateway.sim_shared.audio import decode_audio
from gateway.sim_shared.records import Recorded, new_id

_HANDLER_NAMES = {kind: "on_" + kind.replace(".", "_") for kind in EVENT_FIELDS}
APPEND_MAX_TOKENS = 500
DEFAULT_VOICE = "marin"
DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}  # the WS default (section 2)


@dataclass(slots=True)
class PendingAppend:
    kind: str  # "instructions" | "thinking" | "commentary"
    content: str
    delegation_id: str | None
    client_event_id: str | None
    start_ms: int
    end_ms: int
    acked: bool = False


@dataclass(frozen=True, slots=True)
class SpeechMark:
    """Where the last non-silent output byte went: the monotonic (and wall-clock, for packet
    capture timestamps) time its delta was sent, its offset in that delta, the session clock
    then, and its position on the output track."""

    sent_at: float
    sent_at_wall: float
    offset_ms: float
    timeline_ms: int
    output_ms: float

    @property
    def monotonic(self) -> float:
        """The monotonic time the byte would be played if the delta started playing on send."""
        return self.sent_at + self.offset_ms / 1000


@dataclass(slots=True)
class BargeIn:
    at: float  # monotonic time the caller's speech was found
    timeline_ms: int  # start of the caller's speech on the session clock
    cut_at: float  # monotonic time the output turns silent
    # The last non-silent output byte sent before the cut (set when the cut happens): what an
    # end-to-end test measures "bot audio stops on the wire" against.
    last_speech: SpeechMark | None = None
    cut: bool = False


@dataclass(slots=True)
class InputFragment:
    deliver_ms: int
    text: str
    start_ms: int
    end_ms: int


class LiveSession(Delegation):
    """One session's state, its I/O and its handlers; `Delegation` adds the backend side."""

    def __init__(
        self,
        ws: ServerConnection,
        options: LiveSimulatorOptions,
        start_fault: Any = None,
    ) -> None:
        self.id = new_id("live")
        self.ws = ws
        self.options = options
        # Called at session.start (fault injection): "reject" (reject_starts), "ignore"
        # (ignore_starts) or None.
        self._start_fault = start_fault or (lambda: None)
        self.request_headers: dict[str, str] = (
            {k.lower(): v for k, v in ws.request.headers.raw_items()}
            if ws.request is not None
            else {}
        )
        self.ordinal = 0  # 1-based order of opening, set by the Simulator
        self.client_events: list[Recorded] = []
        self.server_events: list[Recorded] = []
        self.audio_chars_kept = 0
        self.audio_chars_dropped = 0
        self.config: dict[str, Any] = {}  # the resolved SessionResource, once started
        self.started = False
        self.start_ignored = False
        self.closing = False
        self.close_reason: str | None = None  # session.closed reason sent, if any
        self.dropped = False  # cut on purpose (no session.closed)
        self.closed = asyncio.Event()
        self.opened_at = time.monotonic()
        self.started_at = 0.0
        self.last_input_at = 0.0
        self.muted = False
        self.fixture_active = False
        self.appends: list[PendingAppend] = []  # every accepted append, in order
        self._unplaced: list[PendingAppend] = []  # those not yet acknowledged
        self.utterances: list[Utterance] = []
        self.barge_ins: list[BargeIn] = []
        self.last_speech: SpeechMark | None = None
        self.greeted = False
        self.moderated = 0  # moderation cuts so far
        self.caller: CallerSpeech | None = None
        self.track: OutputTrack | None = None
        self._cut_at: float | None = None
        self._cut_up_to = 0  # output track position the pending barge-in cut stops at
        self._moderate_at: float | None = None
        self._input_fragments: list[InputFragment] = []
        self._next_usage_ms = 0
        self._speech_idle = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._finishing = False
        self._rng = random.Random(0)
        self._init_delegation()

    # -- the resolved configuration -----------------------------------------------------------

    @property
    def audio_format(self) -> dict[str, Any]:
        return dict(self.config["audio"]["format"])

    @property
    def format_type(self) -> str:
        return str(self.config["audio"]["format"]["type"])

    @property
    def delegation_type(self) -> str:
        delegation = self.config.get("delegation") or {}
        return str(delegation.get("type", "client"))

    @property
    def now_ms(self) -> int:
        """The session clock: input audio received, in ms."""
        return self.caller.now_ms if self.caller is not None else 0

    def usage(self) -> dict[str, Any]:
        return {"seconds": round(self.now_ms / 1000, 3)}

    def model_texts(self, kind: str | None = None) -> list[str]:
        """What the model was given by appends (`kind` = thinking, commentary, instructions)."""
        return [a.content for a in self.appends if kind is None or a.kind == kind]

    def client_events_of(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.client_events if r.type == kind]

    def server_events_of(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.server_events if r.type == kind]

    # -- I/O ----------------------------------------------------------------------------------

    def _recordable(self, event: dict[str, Any], key: str) -> dict[str, Any]:
        audio = event.get(key)
        if not isinstance(audio, str):
            return event
        if self.audio_chars_kept + len(audio) <= self.options.keep_audio_chars:
            self.audio_chars_kept += len(audio)
            return event
        self.audio_chars_dropped += len(audio)
        return {**event, key: ""}

    async def send(self, event: dict[str, Any], client_event_id: str | None = None) -> None:
        event = {"event_id": new_id("event"), **event}
        if client_event_id is not None:
            event["client_event_id"] = client_event_id
        self.server_events.append(Recorded(time.monotonic(), event))
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(orjson.dumps(event), text=True)

    async def _send_audio(self, audio: bytes) -> None:
        # The primary socket's output delta: no event_id, no timing fields (section 3b).
        event = {"type": "session.output_audio.delta", "delta": base64.b64encode(audio).decode()}
        if not self.options.load_mode:
            self.server_events.append(Recorded(time.monotonic(), self._recordable(event, "delta")))
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(orjson.dumps(event), text=True)

    async def send_error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        error: dict[str, Any] = {"type": type_, "code": code, "message": message}
        if param is not None:
            error["param"] = param
        if client_event_id is not None:
            error["client_event_id"] = client_event_id
        await self.send({"type": "error", "error": error})

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        self.spawn(self._await_start())
        try:
            async for frame in self.ws:
                await self.handle_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self._finishing = True
            for task in list(self._tasks):
                if task is not asyncio.current_task():
                    task.cancel()
            self.closed.set()

    async def handle_frame(self, frame: str | bytes) -> None:
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.client_events.append(Recorded(time.monotonic(), {"_raw": str(frame)[:200]}))
            await self.send_error("invalid_json", "The client event is not valid JSON.")  # ASSUMED
            return
        if not isinstance(event, dict):
            self.client_events.append(Recorded(time.monotonic(), {"_raw": event}))
        elif not (self.options.load_mode and event.get("type") == "session.input_audio.append"):
            self.client_events.append(Recorded(time.monotonic(), self._recordable(event, "audio")))
        raw_id = event.get("event_id") if isinstance(event, dict) else None
        event_id = raw_id if isinstance(raw_id, str) else None
        problem = validate_client_event(event)
        if problem is not None:
            await self.send_error(problem.code, problem.message, problem.param, event_id)
            return
        kind = event["type"]
        if not self.started:
            if kind != "session.start":
                await self.send_error(
                    "session_not_started",  # ASSUMED: the real first-message refusal is UNKNOWN
                    f"The first client event must be session.start, not {kind}.",
                    "type",
                    event_id,
                )
                return
        elif kind == "session.start":
            await self.send_error(
                "session_already_started",  # ASSUMED (UNKNOWN, section 1)
                "session.start may be sent once per session.",
                "type",
                event_id,
            )
            return
        if self.closing and kind != "session.input_audio.append":
            await self.send_error(
                "session_closing",  # ASSUMED: "session.close ... rejects further commands"
                f"The session is closing; {kind} is not accepted.",
                "type",
                event_id,
            )
            return
        await getattr(self, _HANDLER_NAMES[kind])(event, event_id)

    # -- start-up -----------------------------------------------------------------------------

    async def _await_start(self) -> None:
        """A socket with no session.start after idle_expire_s is closed (1008), so an idle
        connection holds nothing for ever. What the real service does then is UNKNOWN."""
        await asyncio.sleep(self.options.idle_expire_s)
        if not self.started:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(1008, "no session.start")

    async def on_session_start(self, event: dict[str, Any], event_id: str | None) -> None:
        fault = self._start_fault()
        if fault == "ignore":
            self.start_ignored = True  # no answer; the socket stays open (a start-up timeout)
            return
        if fault == "reject":
            # Fault injection (a 503 for the caller): a start-up failure prevents
            # session.started (AZR); the service's own code for it is UNKNOWN.
            await self.send_error(
                "server_error",
                "The server had an error while starting the session.",
                None,
                event_id,
                "server_error",
            )
            with contextlib.suppress(ConnectionClosed):
                await self.ws.close(1011, "session start failed")
            return
        requested = event["session"]
        audio = requested.get("audio") or {}
        voice = (audio.get("output") or {}).get("voice", DEFAULT_VOICE)
        fmt = dict(audio.get("format") or DEFAULT_FORMAT)
        self.started_at = self.last_input_at = time.monotonic()
        self.config = {
            "id": self.id,
            "expires_at": int(time.time() + self.options.session_max_s),
            "model": requested["model"],
            "status": "active",
            "audio": {"format": fmt, "output": {"voice": voice}},
            "delegation": requested.get("delegation") or {"type": "client"},
            "input": list(requested.get("input") or []),
            "store": bool(requested.get("store", False)),
            "triggers": list(requested.get("triggers") or []),
        }
        for key in ("instructions", "safety_identifier", "client"):
            if key in requested:
                self.config[key] = requested[key]
        bpms = bytes_per_ms(fmt)
        self.caller = CallerSpeech(
            fmt["type"],
            bpms,
            self.options.vad_db,
            self.options.prefix_ms,
            self.options.silence_ms,
            sampled=self.options.load_mode,
        )
        self.track = OutputTrack(silence_byte(fmt), bpms)
        self._next_usage_ms = int(self.options.usage_every_s * 1000)
        self.started = True
        await self.send({"type": "session.started", "session": self.config}, event_id)
        self.spawn(self._pace_output())
        self.spawn(self._watch())

    # -- input audio and the session clock ----------------------------------------------------

    async def _audio_or_error(self, event: dict[str, Any], event_id: str | None) -> bytes | None:
        """The event's base64 `audio`, or None after answering it with invalid_audio."""
        audio = decode_audio(event["audio"])
        if audio is None:
            await self.send_error(
                "invalid_audio",
                "Invalid 'audio': expected base64-encoded audio.",
                "audio",
                event_id,
            )
        return audio

    async def on_session_input_audio_append(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        audio = await self._audio_or_error(event, event_id)
        if audio is None:
            return
        if not audio:
            await self.send_error(  # AZR: an append must not be empty; wording ASSUMED
                "invalid_audio", "Audio appends must not be empty.", "audio", event_id
            )
            return
        if self.format_type == "audio/pcm" and len(audio) % 2:
            await self.send_error(  # AZR
                "invalid_audio",
                "PCM16 audio must contain an even number of bytes.",
                "audio",
                event_id,
            )
            return
        assert self.caller is not None and self.track is not None
        self.last_input_at = time.monotonic()
        if self.muted or self.fixture_active:
            # Muted input reaches the model as silence; input during a fixture is dropped. The
            # session clock moves either way.
            audio = self.track.silence * len(audio)
        for found in self.caller.feed(audio):
            if isinstance(found, SpeechStarted):
                self._caller_speech_started(found)
            else:
                await self._utterance_done(found)
        await self._clock_moved()

    def _caller_speech_started(self, found: SpeechStarted) -> None:
        assert self.track is not None
        if self.track.speaking and self._cut_at is None:
            # The model yields by itself, some time after the caller starts, with no event.
            now = time.monotonic()
            self._cut_at = now + self.options.barge_in_latency_ms / 1000
            self._cut_up_to = self.track.queued_total  # later replies are not cut
            self.barge_ins.append(BargeIn(now, found.start_ms, self._cut_at))

    async def _utterance_done(self, utterance: Utterance) -> None:
        self.utterances.append(utterance)
        index = utterance.index
        transcripts = self.options.transcripts
        text = transcripts[index - 1] if index <= len(transcripts) else f"utterance {index}"
        self._queue_input_transcript(utterance, text)
        if self.options.content_close_on_utterance == index:
            self.spawn(self.finish("content"))
            return
        if await self.delegate_on(index, text):
            return
        reply = (
            self.options.reply_audio if self.options.reply_audio is not None else utterance.audio
        )
        self.say(reply, self.options.reply_text or text, f"reply {index}")
        if self.options.moderation_on_utterance == index:
            # Cut the reply halfway through, as a moderation event does (section 10).
            assert self.track is not None
            half_s = len(reply) / self.track.bytes_per_ms / 2000
            self._moderate_at = time.monotonic() + self.track.queued_ms / 1000 - half_s

    def _queue_input_transcript(self, utterance: Utterance, text: str) -> None:
        """Fragments on a 200 ms grid over the voiced part, delivered transcript_lag_ms late."""
        words = text.split(" ") if text else []
        if not words:
            return
        voiced_end = max(
            utterance.start_ms + FRAGMENT_MS, utterance.end_ms - self.options.silence_ms
        )
        slots = max(1, (voiced_end - utterance.start_ms) // FRAGMENT_MS)
        per_slot = -(-len(words) // slots)
        groups = [words[i : i + per_slot] for i in range(0, len(words), per_slot)]
        for number, group in enumerate(groups):
            start = utterance.start_ms // FRAGMENT_MS * FRAGMENT_MS + number * FRAGMENT_MS
            fragment = " ".join(group) + (" " if number < len(groups) - 1 else "")
            self._input_fragments.append(
                InputFragment(
                    start + FRAGMENT_MS + self.options.transcript_lag_ms,
                    fragment,
                    start,
                    start + FRAGMENT_MS,
                )
            )

    async def _clock_moved(self) -> None:
        """Whatever waits for the session clock: transcripts, append acks, usage."""
        now = self.now_ms
        while self._input_fragments and self._input_fragments[0].deliver_ms <= now:
            fragment = self._input_fragments.pop(0)
            await self.send(
                {
                    "type": "session.input_transcript.delta",
                    "delta": fragment.text,
                    "start_ms": fragment.start_ms,
                    "end_ms": fragment.end_ms,
                }
            )
        if self._unplaced and any(a.end_ms <= now for a in self._unplaced):
            due = [a for a in self._unplaced if a.end_ms <= now]
            self._unplaced = [a for a in self._unplaced if a.end_ms > now]
            for append in due:
                append.acked = True
                await self._append_placed(append)
        while now >= self._next_usage_ms:
            self._next_usage_ms += int(self.options.usage_every_s * 1000)
            await self.send({"type": "session.usage.updated", "usage": self.usage()})

    # -- output -------------------------------------------------------------------------------

    def say(self, audio: bytes, transcript: str, label: str = "") -> None:
        """Queue speech on the output track (after what is already queued)."""
        assert self.track is not None
        self.track.say(audio, transcript, label)
        self._speech_idle.clear()

    def tone(self, ms: int, hz: float) -> bytes:
        return tone(ms, self.audio_format, hz)

    async def _pace_output(self) -> None:
        """One delta every delta_ms on the monotonic clock, silence when nothing is queued."""
        assert self.track is not None
        track = self.track
        interval = self.options.delta_ms / 1000
        size = self.options.delta_ms * track.bytes_per_ms
        deadline = time.monotonic()
        while not self._finishing:
            wait = deadline - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.monotonic()
            if self._cut_at is not None and now >= self._cut_at:
                self._cut_at = None
                track.cut(self._cut_up_to)
                if self.barge_ins:
                    self.barge_ins[-1].last_speech = self.last_speech
                    self.barge_ins[-1].cut = True
            if self._moderate_at is not None and now >= self._moderate_at:
                self._moderate_at = None
                await self.moderate()
            before = track.played_bytes
            chunk = track.next_chunk(size)
            sent_at, sent_at_wall = time.monotonic(), time.time()
            await self._send_audio(chunk.audio)
            if chunk.voiced_end:
                self.last_speech = SpeechMark(
                    sent_at,
                    sent_at_wall,
                    chunk.voiced_end / track.bytes_per_ms,
                    self.now_ms,
                    (before + chunk.voiced_end) / track.bytes_per_ms,
                )
            for fragment in chunk.fragments:
                # On the 200 ms grid of the session clock, ending where the clock is now.
                end = max(FRAGMENT_MS, self.now_ms // FRAGMENT_MS * FRAGMENT_MS)
                span = -(-max(1, fragment.audio_ms) // FRAGMENT_MS) * FRAGMENT_MS
                await self.send(
                    {
                        "type": "session.output_transcript.delta",
                        "delta": fragment.text,
                        "start_ms": max(0, end - span),
                        "end_ms": end,
                    }
                )
            if "fixture" in chunk.finished and self.fixture_active:
                self.fixture_active = False
                await self.send({"type": "session.output_audio.fixture.played"})
            if not track.speaking:
                self._cut_at = None
                self._speech_idle.set()
            deadline += interval
            if time.monotonic() - deadline > 1.0:
                deadline = time.monotonic()  # a stalled loop does not send a burst of catch-up

    async def moderate(self) -> None:
        """Fault: a moderation event cuts the current speech and says so (section 10); the
        session goes on. The service's error code is UNKNOWN."""
        assert self.track is not None
        self.track.cut()
        self.moderated += 1
        await self.send_error(
            "content_filter",  # ASSUMED
            "The assistant's speech was stopped by content moderation.",
        )

    # -- the session's limits -----------------------------------------------------------------

    async def _watch(self) -> None:
        """Idle expiry, expires_at and the scripted drop, on the monotonic clock."""
        expires = self.started_at + self.options.session_max_s
        drop = self.started_at + self.options.drop_after_s if self.options.drop_after_s else None
        while not self._finishing:
            now = time.monotonic()
            idle = self.last_input_at + self.options.idle_expire_s
            if drop is not None and now >= drop:
                self.drop()
                return
            if now >= idle or now >= expires:
                await self.finish("expired")
                return
            next_at = min(idle, expires, drop if drop is not None else expires)
            await asyncio.sleep(max(0.001, next_at - now))

    def drop(self) -> None:
        """Fault: cut the TCP connection, no close frame and no session.closed (the client sees
        1006 and must count the usage as unconfirmed)."""
        self.dropped = True
        self._finishing = True
        self.ws.transport.abort()

    async def finish(
        self, reason: str, client_event_id: str | None = None, drain: bool = False
    ) -> None:
        """End the session: drain (close_requested), fail pending appends, session.closed with
        the final usage and session, close the socket."""
        if self.close_reason is not None or self.dropped:
            return
        self.close_reason = reason
        if drain and self.track is not None and self.track.speaking:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._speech_idle.wait(), self.options.close_drain_s)
        unplaced, self._unplaced = self._unplaced, []
        for append in unplaced:
            if not append.acked:
                append.acked = True
                await self.send_error(
                    "context_injection_incomplete",
                    f"The session ended before the {append.kind} append was placed.",
                    None,
                    append.client_event_id,
                )
        self._finishing = True
        await self.send(
            {
                "type": "session.closed",
                "reason": reason,
                "session": self.config,
                "usage": self.usage(),
            },
            client_event_id,
        )
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(1000, f"session closed: {reason}")

    async def close_for_content(self) -> None:
        """Fault, on command: session.closed{reason: content}."""
        await self.finish("content")

    # -- commands -----------------------------------------------------------------------------

    async def on_session_close(self, event: dict[str, Any], event_id: str | None) -> None:
        self.closing = True
        self.spawn(self.finish("close_requested", event_id, drain=True))

    async def on_session_input_audio_mute(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self.muted = True
        await self.send({"type": "session.input_audio.muted"}, event_id)

    async def on_session_input_audio_unmute(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self.muted = False
        await self.send({"type": "session.input_audio.unmuted"}, event_id)

    async def on_session_output_audio_fixture_play(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        clip = await self._audio_or_error(event, event_id)
        if clip is None:
            return
        problem = None
        if not clip or len(clip) % 2:
            problem = "A fixture must be non-empty PCM16 audio (an even number of bytes)."
        elif len(clip) > FIXTURE_MAX_S * 48000:
            problem = f"A fixture must be at most {FIXTURE_MAX_S} s of 24 kHz PCM16 audio."
        elif self.fixture_active:
            problem = "Only one fixture can be active at a time."
        if problem is not None:
            await self.send_error("invalid_audio", problem, "audio", event_id)  # code ASSUMED
            return
        assert self.track is not None
        # Playback interrupts model speech and mutes input until it has played (section 9).
        self.track.cut()
        self._cut_at = None
        self.fixture_active = True
        self.say(fixture_to_session(clip, self.audio_format), "", "fixture")
        await self.send({"type": "session.output_audio.fixture.playing"}, event_id)

    # -- appends ------------------------------------------------------------------------------

    async def on_session_instructions_append(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        await self._append("instructions", event, event_id)

    async def on_session_thinking_append(self, event: dict[str, Any], event_id: str | None) -> None:
        await self._append("thinking", event, event_id)

    async def on_session_commentary_append(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        await self._append("commentary", event, event_id)

    async def _append(self, kind: str, event: dict[str, Any], event_id: str | None) -> None:
        content = str(event["content"])
        delegation_id = event["delegation_id"]
        if self.fixture_active:
            await self.send_error(
                "fixture_active",  # ASSUMED code (section 9: appends are rejected)
                f"session.{kind}.append is rejected while an audio fixture is active.",
                None,
                event_id,
            )
            return
        # 500 tokens per append (section 2); tokens estimated as characters / 4.
        if -(-len(content) // 4) > APPEND_MAX_TOKENS:
            await self.send_error(
                "string_above_max_length",  # ASSUMED: the real code is UNKNOWN
                f"Invalid 'content': an append is limited to {APPEND_MAX_TOKENS} tokens.",
                "content",
                event_id,
            )
            return
        problem = self.delegation_id_problem(delegation_id)
        if problem is not None:
            await self.send_error("invalid_value", problem, "delegation_id", event_id)
            return
        low, high = self.options.append_ack_ms
        start = self.now_ms
        append = PendingAppend(
            kind, content, delegation_id, event_id, start, start + self._rng.randint(low, high)
        )
        self.appends.append(append)
        self._unplaced.append(append)

    async def _append_placed(self, append: PendingAppend) -> None:
        """The append reached the timeline: acknowledge it, then let the model act on it."""
        await self.send(
            {
                "type": f"session.{append.kind}.appended",
                "start_ms": append.start_ms,
                "end_ms": append.end_ms,
            },
            append.client_event_id,
        )
        if self.closing:
            return
        if append.kind == "instructions" and not self.utterances and not self.greeted:
            # The greeting: instructions before any caller speech (CONV "Greet before the
            # caller speaks").
            self.greeted = True
            greeting = self.options.greeting_audio or self.tone(self.options.greeting_ms, 440.0)
            self.say(greeting, self.options.greeting_text, "greeting")
        elif append.kind == "commentary":
            self.say(self.tone(self.options.commentary_ms, 550.0), append.content, "commentary")
        await self.delegate_on(None, append.content)
