"""One simulated Realtime session on one WebSocket: frames in, validation, dispatch to the
`on_<event type>` handlers, events out (each recorded with a monotonic timestamp, audio within
`keep_audio_chars`), session.update, conversation items, the session time limit.

The input audio buffer and server VAD are in input_audio.py, responses in responses.py; both
are parts of `SimSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from gateway.realtime.simulator.input_audio import InputAudio
from gateway.realtime.simulator.items import Item, Recorded, Response, new_id
from gateway.realtime.simulator.options import SimulatorOptions
from gateway.realtime.simulator.responses import Responses
from gateway.realtime.simulator.schema import (
    EVENT_FIELDS,
    Invalid,
    semantic_problem,
    validate_client_event,
)
from gateway.realtime.simulator.sdk import cached_sdk_validator
from gateway.sim_shared.audio import BYTES_PER_MS
from gateway.sim_shared.vad import SpeechEdges

# The events that carry audio, and their audio field; load mode does not record them.
AUDIO_EVENT_TYPES = {"input_audio_buffer.append": "audio", "response.output_audio.delta": "delta"}
_HANDLER_NAMES = {kind: "on_" + kind.replace(".", "_") for kind in EVENT_FIELDS}


def _carries_audio(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    return isinstance(kind, str) and kind in AUDIO_EVENT_TYPES


class SimSession(InputAudio, Responses):
    """One session's state (all of it is set here), its I/O and the handlers of session.update
    and conversation items; `InputAudio` adds the input side, `Responses` the output side."""

    def __init__(self, ws: ServerConnection, options: SimulatorOptions, model: str) -> None:
        self.id = new_id("sess")
        self.ws = ws
        self.options = options
        self.model = model
        self.request_headers: dict[str, str] = (
            {k.lower(): v for k, v in ws.request.headers.raw_items()}
            if ws.request is not None
            else {}
        )
        self.request_path = ws.request.path if ws.request is not None else ""
        self.client_events: list[Recorded] = []
        self.server_events: list[Recorded] = []
        # Base64 audio characters kept in / left out of the recorded events (keep_audio_chars).
        self.audio_chars_kept = 0
        self.audio_chars_dropped = 0
        self.ordinal = 0  # 1-based order of opening, set by the Simulator
        self.config: dict[str, Any] = _default_session(self.id, model, options.session_max_s)
        self.items: dict[str, Item] = {}
        self.response: Response | None = None
        self.responses: list[Response] = []
        self.user_turns = 0
        self.last_user_text = ""
        self.last_utterance: bytes | None = None
        self.last_utterance_format = "audio/pcmu"
        self.pending_inputs_from_user = False
        self.pending_tool_result: Item | None = None
        self.fired_rules: set[int] = set()
        self.closed = asyncio.Event()
        # input audio, on audio time
        self.input_bytes_total = 0
        self.buffer = bytearray()
        self.buffer_start_byte = 0
        self._vad_residual = b""
        self._edges = SpeechEdges()  # speech started / stopped, on audio time
        self._speech_item_id = ""
        self._speech_start_ms = 0
        self._idle_deadline_ms: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiring = False
        self._deferred_transcriptions: list[dict[str, Any]] = []
        self._setup_error_sent = False
        self._sdk_validate = cached_sdk_validator() if options.schema != "builtin" else None
        # (event type, which schema rejected it, why) whenever the SDK and the built-in tables
        # disagree on an event: the SDK's verdict was used. Tests assert this stays empty.
        self.schema_disagreements: list[tuple[str, str, str]] = []

    # -- config helpers ----------------------------------------------------------------------

    @property
    def input_format(self) -> str:
        return str(self.config["audio"]["input"]["format"]["type"])

    @property
    def output_format(self) -> str:
        return str(self.config["audio"]["output"]["format"]["type"])

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        return self.config["audio"]["input"].get("turn_detection")

    def _recordable(self, event: dict[str, Any]) -> dict[str, Any]:
        """`event` as recorded: its audio kept while within keep_audio_chars, else ""."""
        kind = event.get("type")
        key = AUDIO_EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        audio = event.get(key) if key is not None else None
        if not isinstance(audio, str):
            return event
        if self.audio_chars_kept + len(audio) <= self.options.keep_audio_chars:
            self.audio_chars_kept += len(audio)
            return event
        self.audio_chars_dropped += len(audio)
        return {**event, key: ""}

    def client_events_of(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.client_events if r.type == kind]

    def server_events_of(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.server_events if r.type == kind]

    # -- I/O ---------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        event = {"event_id": new_id("event"), **event}
        if not (self.options.load_mode and event["type"] in AUDIO_EVENT_TYPES):
            self.server_events.append(Recorded(time.monotonic(), self._recordable(event)))
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(orjson.dumps(event), text=True)

    async def send_error(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        error = {
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        }
        await self.send({"type": "error", "error": error})

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        expiry = asyncio.create_task(self._expire_after(self.options.session_max_s))
        try:
            if "openai-beta" in self.request_headers:
                # The beta shape is retired: error, then close 4000 (reference section 0).
                await self.send_error(
                    "beta_api_shape_disabled",
                    "The beta Realtime API shape is no longer supported. Remove the OpenAI-Beta header.",
                )
                await self.ws.close(4000, "beta api shape disabled")
                return
            await self.send({"type": "session.created", "session": self.config})
            async for frame in self.ws:
                await self.handle_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            if not self._expiring:
                expiry.cancel()
            for task in list(self._tasks):
                task.cancel()
            self.closed.set()

    async def _expire_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._expiring = True
        minutes = seconds / 60
        shown = f"{minutes:g}" if minutes >= 1 else f"{minutes:.3g}"
        await self.send_error(
            "session_expired", f"Your session hit the maximum duration of {shown} minutes."
        )
        await self.ws.close(1001, "session expired")

    async def handle_frame(self, frame: str | bytes) -> None:
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.client_events.append(Recorded(time.monotonic(), {"_raw": frame}))
            await self.send_error(
                "invalid_json", "The client event is not valid JSON."
            )  # ASSUMED code
            return
        if not isinstance(event, dict):
            self.client_events.append(Recorded(time.monotonic(), {"_raw": event}))
        elif not (self.options.load_mode and _carries_audio(event)):
            self.client_events.append(Recorded(time.monotonic(), self._recordable(event)))
        problem = self._validate(event)
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if problem is not None:
            await self.send_error(
                problem.code,
                problem.message,
                problem.param,
                event_id if isinstance(event_id, str) else None,
            )
            return
        handler = getattr(self, _HANDLER_NAMES[event["type"]])
        await handler(event, event_id)

    def _validate(self, event: Any) -> Invalid | None:
        builtin = validate_client_event(event)
        sdk = self._sdk_validate
        if (
            sdk is None
            or not isinstance(event, dict)
            or event.get("type") not in EVENT_FIELDS  # no handler for it here anyway
            or event.get("type") == "input_audio_buffer.append"  # hot path; both agree
        ):
            return builtin
        try:
            sdk_problem = sdk(event)
        except Exception:  # the SDK's own bug must not take the session down
            return builtin
        kind = str(event["type"])
        if builtin is not None and sdk_problem is not None:
            return builtin  # both reject: the built-in error has the service's wording
        if sdk_problem is not None:
            self.schema_disagreements.append((kind, "sdk", sdk_problem.message))
            return Invalid(sdk_problem.code, sdk_problem.message, sdk_problem.param)
        if builtin is None:
            return None
        semantic = semantic_problem(event)
        if semantic is not None:
            return semantic
        self.schema_disagreements.append((kind, "builtin", builtin.message))
        return None

    # -- session.update ----------------------------------------------------------------------

    async def on_session_update(self, event: dict[str, Any], event_id: str | None) -> None:
        session = event["session"]
        scripted = self.options.session_update_error
        if scripted is not None and not self._setup_error_sent:
            # A setup failure that names no session parameter (a server_error, a quota):
            # error.event_id null, as the service often sends it.
            self._setup_error_sent = True
            await self.send_error(
                scripted.get("code"),
                str(scripted.get("message") or "The server had an error."),
                scripted.get("param"),
                None,
                str(scripted.get("type") or "server_error"),
            )
            return
        if session["type"] != "realtime":
            await self.send_error(
                "invalid_value",
                "This simulator implements realtime sessions only.",
                "session.type",
                event_id,
            )
            return
        if "model" in session and session["model"] != self.config["model"]:
            await self.send_error(
                "invalid_value",
                "The model of a session cannot be changed.",
                "session.model",
                event_id,
            )
            return
        voice = ((session.get("audio") or {}).get("output") or {}).get("voice")
        if (
            voice is not None
            and voice != self.config["audio"]["output"]["voice"]
            and any(i.has_audio and i.role == "assistant" for i in self.items.values())
        ):
            await self.send_error(
                "cannot_update_voice",  # ASSUMED code
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
                event_id,
            )
            return
        old_bpms = BYTES_PER_MS[self.input_format]
        for key, value in session.items():
            if key == "audio":
                for direction, block in value.items():
                    self.config["audio"][direction].update(block)
            else:
                self.config[key] = value
        new_bpms = BYTES_PER_MS[self.input_format]
        if new_bpms != old_bpms:
            # Audio time continues across a format change; uncommitted audio is dropped.
            audio_ms = self.input_bytes_total // old_bpms
            self.buffer.clear()
            self.input_bytes_total = self.buffer_start_byte = audio_ms * new_bpms
            self._vad_reset()
        await self.send({"type": "session.updated", "session": self.config})

    # -- conversation items ------------------------------------------------------------------

    async def on_conversation_item_create(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        raw = event["item"]
        previous = event.get("previous_item_id")
        if previous is not None and previous != "root" and previous not in self.items:
            await self.send_error(
                "item_not_found",
                f"Previous item with id '{previous}' not found.",
                "previous_item_id",
                event_id,  # ASSUMED
            )
            return
        item_id = raw.get("id") or new_id("item")
        if item_id in self.items:
            await self.send_error(
                "invalid_value", f"Item with id '{item_id}' already exists.", "item.id", event_id
            )
            return
        kind = raw["type"]
        item = Item(
            item_id,
            kind,
            role=raw.get("role"),
            call_id=raw.get("call_id"),
            name=raw.get("name"),
            arguments=raw.get("arguments"),
            output=raw.get("output"),
        )
        if kind == "message":
            texts = [c.get("text") or c.get("transcript") or "" for c in raw["content"]]
            item.text = " ".join(t for t in texts if t)
            if item.role == "user":
                self.user_turns += 1
                self.last_user_text = item.text
                self.pending_inputs_from_user = True
        elif kind == "function_call_output":
            self.pending_tool_result = item
            self.pending_inputs_from_user = False
        previous_id = previous if previous is not None else next(reversed(self.items), None)
        self.items[item_id] = item
        await self.send(
            {
                "type": "conversation.item.added",
                "item": item.wire(),
                "previous_item_id": previous_id,
            }
        )
        await self.send(
            {"type": "conversation.item.done", "item": item.wire(), "previous_item_id": previous_id}
        )

    async def on_conversation_item_retrieve(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        item = self.items.get(event["item_id"])
        if item is None:
            await self._item_not_found(event["item_id"], event_id)
            return
        await self.send({"type": "conversation.item.retrieved", "item": item.wire(with_audio=True)})

    async def _item_not_found(self, item_id: str, event_id: str | None) -> None:
        # ASSUMED code and wording.
        await self.send_error(
            "item_not_found", f"Item with item_id '{item_id}' not found.", "item_id", event_id
        )

    async def on_conversation_item_truncate(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        item = self.items.get(event["item_id"])
        if item is None:
            await self._item_not_found(event["item_id"], event_id)
            return
        if item.role != "assistant" or not item.has_audio or not item.audio:
            await self.send_error(
                "unsupported_content_type",
                "Only model output audio messages can be truncated",
                None,
                event_id,
            )
            return
        if event["content_index"] != 0:
            await self.send_error(
                "invalid_value", "Invalid content_index.", "content_index", event_id
            )
            return
        end_ms = event["audio_end_ms"]
        if end_ms > item.audio_ms:
            # Observed message; error.event_id comes back null for this one.
            await self.send_error(
                "invalid_value",
                f"Audio content of {item.audio_ms}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
            return
        del item.audio[end_ms * BYTES_PER_MS[item.audio_format] :]
        item.transcript = ""  # the service drops the transcript so no unheard text stays in context
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item.id,
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
        )

    async def on_conversation_item_delete(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        if self.items.pop(event["item_id"], None) is None:
            await self._item_not_found(event["item_id"], event_id)
            return
        await self.send({"type": "conversation.item.deleted", "item_id": event["item_id"]})


def _default_session(session_id: str, model: str, max_s: float) -> dict[str, Any]:
    """GA defaults: 24 kHz PCM both ways and server_vad, until the client configures G.711."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "Your knowledge cutoff is 2023-10. You are a helpful assistant.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time() + max_s),
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
    }
