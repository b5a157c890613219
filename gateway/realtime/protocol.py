"""GA Realtime protocol: builders for the client events we send, parsers of server events.

GA shape only (reference: realtime-protocol.md sections 2-4). The retired beta shape
(`OpenAI-Beta` header, flat `input_audio_format`, `response.audio.delta`) is never produced.
Builders return plain dicts (serialised with `encode`), except `input_audio_append`, the hot
path, which returns the finished JSON bytes: it is sent about 50 times a second per call, so the
constant JSON prefix/suffix is precomputed and only the base64 payload is formatted per frame.
"""

from __future__ import annotations

import binascii
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.audio_b64 import b64decode_strict
from gateway.realtime import events as ev
from gateway.realtime.mcp import MCP_EVENT_TYPES, MCP_ITEM_EVENTS, McpEvent, is_mcp_event

AudioFormat = Literal["audio/pcmu", "audio/pcma"]
NoiseReduction = Literal["near_field", "far_field"]
G711_FORMATS: frozenset[str] = frozenset({"audio/pcmu", "audio/pcma"})
VOICES: frozenset[str] = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)


class ProtocolError(ValueError):
    """A builder was given a value the GA schema would reject (a bug in the caller's config)."""


# --------------------------------------------------------------------------------------------
# session.update


@dataclass(frozen=True, slots=True)
class ServerVad:
    """`server_vad`: energy-style VAD. `idle_timeout_ms` exists only for this type."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True

    def to_dict(self) -> dict[str, Any]:
        if not 0.0 <= self.threshold <= 1.0:
            raise ProtocolError(f"server_vad threshold must be within 0..1, got {self.threshold}")
        out: dict[str, Any] = {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }
        if self.idle_timeout_ms is not None:
            out["idle_timeout_ms"] = self.idle_timeout_ms
        return out


@dataclass(frozen=True, slots=True)
class SemanticVad:
    """`semantic_vad`: the model decides when the turn ends; eagerness low/medium/high/auto."""

    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True

    def to_dict(self) -> dict[str, Any]:
        if self.eagerness not in ("low", "medium", "high", "auto"):
            raise ProtocolError(
                f"semantic_vad eagerness must be low/medium/high/auto, got {self.eagerness!r}"
            )
        return {
            "type": "semantic_vad",
            "eagerness": self.eagerness,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        if not self.name:
            raise ProtocolError("function tool needs a name")
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


@dataclass(frozen=True, slots=True)
class McpTool:
    """A remote MCP server (`type: "mcp"`); the service, not the gateway, calls it.

    `headers` carry secrets (the caller resolved them from the environment): never log the
    dict this builds. `require_approval` "always" / "never"; `no_approval_tools` are exempt
    from "always" (the SDK's {"never": {"tool_names": [...]}} filter)."""

    server_label: str
    server_url: str
    server_description: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    allowed_tools: tuple[str, ...] = ()
    require_approval: Literal["always", "never"] = "always"
    no_approval_tools: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if not self.server_label or not self.server_url:
            raise ProtocolError("mcp tool needs a server_label and a server_url")
        if self.require_approval not in ("always", "never"):
            raise ProtocolError(
                f"mcp require_approval must be always/never, got {self.require_approval!r}"
            )
        out: dict[str, Any] = {
            "type": "mcp",
            "server_label": self.server_label,
            "server_url": self.server_url,
        }
        if self.server_description:
            out["server_description"] = self.server_description
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.allowed_tools:
            out["allowed_tools"] = list(self.allowed_tools)
        if self.require_approval == "always" and self.no_approval_tools:
            out["require_approval"] = {"never": {"tool_names": list(self.no_approval_tools)}}
        else:
            out["require_approval"] = self.require_approval
        return out


def _tool_choice(choice: str, tools: tuple[FunctionTool | McpTool, ...]) -> str | dict[str, Any]:
    """auto / none / required, or force one tool: function:<name> / mcp:<server_label>."""
    if choice in ("auto", "none", "required"):
        return choice
    kind, _, name = choice.partition(":")
    if kind == "function" and any(isinstance(t, FunctionTool) and t.name == name for t in tools):
        return {"type": "function", "name": name}
    if kind == "mcp" and any(isinstance(t, McpTool) and t.server_label == name for t in tools):
        return {"type": "mcp", "server_label": name}
    raise ProtocolError(
        f"tool_choice must be auto/none/required or function:/mcp: naming an offered tool, "
        f"got {choice!r}"
    )


REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything the gateway puts in `session.update`.

    The whole config is sent on every update: the `audio` block always (a SIP-connector report
    says updates without it turned the audio into static) and `session.type` always (without it
    the service refuses the whole update and the call stays at 24 kHz PCM).
    """

    input_format: AudioFormat = "audio/pcmu"
    output_format: AudioFormat = "audio/pcmu"
    voice: str = "marin"
    instructions: str = ""
    model: str | None = None
    turn_detection: ServerVad | SemanticVad | None = field(default_factory=SemanticVad)
    noise_reduction: NoiseReduction | None = None
    transcription_model: str | None = None
    transcription_language: str | None = None
    transcription_prompt: str | None = None
    tools: tuple[FunctionTool | McpTool, ...] = ()
    tool_choice: str = "auto"
    speed: float | None = None
    max_output_tokens: int | None = None  # None = the model's maximum ("inf")
    # "auto" | "disabled", or a retention ratio 0..1 (keep that fraction on overflow)
    truncation: str | float | None = None
    reasoning_effort: str | None = None  # reasoning models only (gpt-realtime-2...)

    def to_session(self) -> dict[str, Any]:
        for name, fmt in (("input", self.input_format), ("output", self.output_format)):
            if fmt not in G711_FORMATS:
                raise ProtocolError(f"{name} format must be audio/pcmu or audio/pcma, got {fmt!r}")
        if self.noise_reduction not in (None, "near_field", "far_field"):
            raise ProtocolError(
                f"noise_reduction must be near_field, far_field or None, got {self.noise_reduction!r}"
            )
        tool_choice = _tool_choice(self.tool_choice, self.tools)
        if self.speed is not None and not 0.25 <= self.speed <= 1.5:
            raise ProtocolError(f"speed must be within 0.25..1.5, got {self.speed}")
        if self.max_output_tokens is not None and not 1 <= self.max_output_tokens <= 4096:
            raise ProtocolError(f"max_output_tokens must be 1-4096, got {self.max_output_tokens}")
        if self.reasoning_effort is not None and self.reasoning_effort not in REASONING_EFFORTS:
            raise ProtocolError(f"reasoning effort must be one of {', '.join(REASONING_EFFORTS)}")
        audio_input: dict[str, Any] = {
            # pcmu/pcma take only `type`: a `rate` key is an unknown parameter in GA.
            "format": {"type": self.input_format},
            # Explicit nulls: omitting a key keeps the server's current value.
            "turn_detection": None
            if self.turn_detection is None
            else self.turn_detection.to_dict(),
            "noise_reduction": None
            if self.noise_reduction is None
            else {"type": self.noise_reduction},
            "transcription": None,
        }
        if self.transcription_model:
            transcription: dict[str, Any] = {"model": self.transcription_model}
            if self.transcription_language:
                transcription["language"] = self.transcription_language
            if self.transcription_prompt:
                transcription["prompt"] = self.transcription_prompt
            audio_input["transcription"] = transcription
        audio_output: dict[str, Any] = {"format": {"type": self.output_format}, "voice": self.voice}
        if self.speed is not None:
            audio_output["speed"] = self.speed
        session: dict[str, Any] = {
            "type": "realtime",
            "instructions": self.instructions,
            "output_modalities": ["audio"],
            "audio": {"input": audio_input, "output": audio_output},
            "tools": [tool.to_dict() for tool in self.tools],
            "tool_choice": tool_choice,
        }
        if self.max_output_tokens is not None:
            session["max_output_tokens"] = self.max_output_tokens
        truncation = _truncation(self.truncation)
        if truncation is not None:
            session["truncation"] = truncation
        if self.reasoning_effort is not None:
            session["reasoning"] = {"effort": self.reasoning_effort}
        if self.model:
            session["model"] = self.model
        return session


def _truncation(value: str | float | None) -> str | dict[str, Any] | None:
    if value is None or value in ("auto", "disabled"):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ProtocolError(f"truncation must be auto, disabled or a ratio 0..1, got {value!r}")
    return {"type": "retention_ratio", "retention_ratio": float(value)}


def session_update(config: SessionConfig, event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "session.update", "session": config.to_session()}, event_id)


# --------------------------------------------------------------------------------------------
# input audio

# The append frame is '{"type":"input_audio_buffer.append","audio":"<base64>"}'. Base64 output
# never needs JSON escaping, so the frame is prefix + b64 + suffix without a JSON encoder.
_APPEND_PREFIX = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_SUFFIX = b'"}'
# The append's JSON text is PREFIX + base64(audio) + SUFFIX: the link builds the wire frame
# from the parts (gateway/wsock.py `_send_text`); `input_audio_append` is the same text.
INPUT_AUDIO_APPEND_PARTS = (_APPEND_PREFIX, _APPEND_SUFFIX)


def input_audio_append(audio: bytes) -> bytes:
    """The finished JSON text frame for one chunk of G.711 bytes (the hot path)."""
    return b"".join((_APPEND_PREFIX, binascii.b2a_base64(audio, newline=False), _APPEND_SUFFIX))


def input_audio_commit(event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "input_audio_buffer.commit"}, event_id)


def input_audio_clear(event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "input_audio_buffer.clear"}, event_id)


# --------------------------------------------------------------------------------------------
# conversation items


def user_text_message(
    text: str, role: Literal["user", "system"] = "user", event_id: str | None = None
) -> dict[str, Any]:
    """A text item, e.g. 'caller pressed 5' after DTMF (WS sessions never see DTMF themselves)."""
    item = {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}
    return _with_id({"type": "conversation.item.create", "item": item}, event_id)


def function_call_output(call_id: str, output: str, event_id: str | None = None) -> dict[str, Any]:
    if not call_id:
        raise ProtocolError("function_call_output needs the call_id of the function call")
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return _with_id({"type": "conversation.item.create", "item": item}, event_id)


def item_truncate(
    item_id: str, content_index: int, audio_end_ms: int, event_id: str | None = None
) -> dict[str, Any]:
    """Arguments in wire order; `content_index` is 0 for model audio. `audio_end_ms` is what
    the caller heard of that item: played bytes / 8 for G.711 (never wall-clock time)."""
    if audio_end_ms < 0:
        raise ProtocolError(f"audio_end_ms must be >= 0, got {audio_end_ms}")
    event = {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": int(audio_end_ms),
    }
    return _with_id(event, event_id)


def item_delete(item_id: str, event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "conversation.item.delete", "item_id": item_id}, event_id)


# --------------------------------------------------------------------------------------------
# responses


def response_create(instructions: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.create"}
    if instructions is not None:
        event["response"] = {"instructions": instructions}
    return _with_id(event, event_id)


def response_cancel(response_id: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id:
        event["response_id"] = response_id
    return _with_id(event, event_id)


def _with_id(event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    if event_id is not None:
        event["event_id"] = event_id
    return event


def encode(event: dict[str, Any]) -> bytes:
    """JSON bytes for a text frame (orjson: ~20x cheaper than json.dumps, measurements.md 4)."""
    return orjson.dumps(event)


# --------------------------------------------------------------------------------------------
# server events

# GA server event types we receive but do not act on; anything else unknown is counted.
IGNORED_TYPES: frozenset[str] = frozenset(
    {
        "conversation.created",
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "input_audio_buffer.dtmf_event_received",
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
    }
)


_MCP_CANDIDATES = MCP_EVENT_TYPES | set(MCP_ITEM_EVENTS.values())


AUDIO_DELTA = "response.output_audio.delta"


MAX_UNKNOWN_TYPES = 64  # distinct unknown types counted; a longer type is cut to 64 characters


class ServerEventParser:
    """Frames in, typed events out. Counts what it could not use instead of logging per frame;
    `on_problem(problem)` (the client's, bounded) hears each one, named (`not JSON`,
    `<type>: <what was wrong>`, `unknown type '<type>'`), never the frame itself (it may be
    megabytes). Good frames never call it."""

    def __init__(self, on_problem: Callable[[str], None] | None = None) -> None:
        self.unknown_types: Counter[str] = Counter()
        self.malformed = 0
        self.problem = ""  # what was wrong with the last malformed frame
        self.on_problem = on_problem

    def parse(self, frame: bytes | str) -> ev.ServerEvent | None:
        """Return the typed event, or None (counted in `malformed`) for a frame we cannot read.

        The audio delta (10 to 50 a second per call, most of what a session receives) goes
        straight to `_audio_delta`, without `parse_server_event`'s dispatch; it raises the
        same errors either way (tests/realtime/test_protocol_fastpath.py)."""
        try:
            data = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return self._malformed("not JSON")
        if type(data) is dict and data.get("type") == AUDIO_DELTA:
            try:
                return _audio_delta(data)
            except (TypeError, binascii.Error, ValueError) as exc:  # ValueError: non-ASCII
                return self._malformed(f"{AUDIO_DELTA}: {_describe(exc)}")
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return self._malformed("not an object with a string type")
        try:
            event = parse_server_event(data)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            return self._malformed(f"{data['type'][:64]}: {_describe(exc)}")
        if isinstance(event, ev.UnknownEvent):
            kind = event.type[:64]
            # Bounded: a hostile server sending random types must not grow the counter forever.
            if kind in self.unknown_types or len(self.unknown_types) < MAX_UNKNOWN_TYPES:
                self.unknown_types[kind] += 1
            if self.on_problem is not None:
                self.on_problem(f"unknown type {kind!r}")
        return event

    def _malformed(self, problem: str) -> None:
        self.malformed += 1
        self.problem = problem[:200]
        if self.on_problem is not None:
            self.on_problem(self.problem)
        return None


def _describe(exc: BaseException) -> str:
    """What was wrong, from our own checks' exceptions: a missing key's name, a type or
    base64 error's message (ours or binascii's: no frame content in them)."""
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}" if exc.args else "missing field"
    if isinstance(exc, binascii.Error):
        # binascii's message counts the characters: one kind of problem whatever the length
        # (the client logs each kind once per session).
        return "bad base64"
    return f"{type(exc).__name__}: {exc}"


def parse_server_event(data: dict[str, Any]) -> ev.ServerEvent:
    """Typed event for a decoded server event dict. Raises KeyError/TypeError on a bad shape."""
    kind = data["type"]
    if kind == "response.output_audio_transcript.delta":
        return ev.TranscriptDelta(data["response_id"], data["item_id"], data.get("delta", ""))
    if kind in _MCP_CANDIDATES and is_mcp_event(data):
        return McpEvent(kind, data)  # type: ignore[return-value]  # logged by the call session
    parser = _PARSERS.get(kind)
    if parser is not None:
        return parser(data)
    if kind in IGNORED_TYPES:
        return ev.IgnoredEvent(kind)
    return ev.UnknownEvent(kind, data)


def _audio_delta(d: dict[str, Any]) -> ev.AudioDelta:
    """`response.output_audio.delta`: ids are strings, indexes ints (0 when absent), the
    audio strict base64 (TypeError for a field of another type or missing, binascii.Error for
    bad base64, ValueError for non-ASCII text). `ServerEventParser.parse` calls it at once for
    every delta (issue 14), so its checks are plain type tests, no helper call per field."""
    get = d.get
    response_id = get("response_id")
    item_id = get("item_id")
    output_index = get("output_index", 0)
    content_index = get("content_index", 0)
    delta = get("delta")
    if (
        type(response_id) is not str
        or type(item_id) is not str
        or type(output_index) is not int
        or type(content_index) is not int
        or type(delta) is not str
    ):
        raise TypeError(
            "response.output_audio.delta: response_id, item_id and delta must be strings, "
            "output_index and content_index ints"
        )
    audio = b64decode_strict(delta)  # compiled when built (gateway/_wsframe.c)
    return ev.AudioDelta(response_id, item_id, output_index, content_index, audio)


MAX_ID_CHARS = 256  # a server's session id or model name longer than this is malformed


def _session_created(d: dict[str, Any]) -> ev.SessionCreated:
    """The session's id and model are logged (the client's warnings name the session): a
    string of at most MAX_ID_CHARS each, or the event is malformed (TypeError)."""
    session = d["session"]
    if not isinstance(session, dict):
        raise TypeError("session.created: session must be an object")
    session_id = session.get("id", "")
    model = session.get("model")
    if type(session_id) is not str or len(session_id) > MAX_ID_CHARS:
        raise TypeError(f"session.created: id must be a string of at most {MAX_ID_CHARS}")
    if model is not None and (type(model) is not str or len(model) > MAX_ID_CHARS):
        raise TypeError(f"session.created: model must be a string of at most {MAX_ID_CHARS}")
    return ev.SessionCreated(session_id, model, session, d.get("event_id", ""))


def _error(d: dict[str, Any]) -> ev.ErrorEvent:
    err = d["error"]
    return ev.ErrorEvent(
        type=err.get("type", ""),
        code=err.get("code"),
        message=err.get("message", ""),
        param=err.get("param"),
        event_id=err.get("event_id"),
        server_event_id=d.get("event_id", ""),
    )


def _usage(raw: dict[str, Any] | None) -> ev.Usage | None:
    if not raw:
        return None
    inp = raw.get("input_token_details") or {}
    out = raw.get("output_token_details") or {}
    return ev.Usage(
        total_tokens=raw.get("total_tokens") or 0,
        input_tokens=raw.get("input_tokens") or 0,
        output_tokens=raw.get("output_tokens") or 0,
        input_audio_tokens=inp.get("audio_tokens") or 0,
        input_text_tokens=inp.get("text_tokens") or 0,
        output_audio_tokens=out.get("audio_tokens") or 0,
        output_text_tokens=out.get("text_tokens") or 0,
        cached_tokens=inp.get("cached_tokens") or 0,
    )


def _response_done(d: dict[str, Any]) -> ev.ResponseDone:
    response = d["response"]
    details = response.get("status_details") or {}
    return ev.ResponseDone(
        response_id=response.get("id", ""),
        status=response.get("status", ""),
        reason=details.get("reason"),
        error=details.get("error"),
        usage=_usage(response.get("usage")),
        output=list(response.get("output") or []),
    )


def _output_item(cls: type[ev.OutputItemAdded] | type[ev.OutputItemDone]) -> Any:
    def parse(d: dict[str, Any]) -> ev.OutputItemAdded | ev.OutputItemDone:
        item = d["item"]
        return cls(
            d["response_id"], d.get("output_index", 0), item.get("id", ""), item["type"], item
        )

    return parse


def _rate_limits(d: dict[str, Any]) -> ev.RateLimitsUpdated:
    limits = tuple(
        ev.RateLimit(r.get("name", ""), r.get("limit"), r.get("remaining"), r.get("reset_seconds"))
        for r in d.get("rate_limits") or []
    )
    return ev.RateLimitsUpdated(limits)


_PARSERS: dict[str, Any] = {
    AUDIO_DELTA: _audio_delta,
    "session.created": _session_created,
    "session.updated": lambda d: ev.SessionUpdated(d["session"], d.get("event_id", "")),
    "error": _error,
    "input_audio_buffer.speech_started": lambda d: ev.SpeechStarted(
        d["audio_start_ms"], d["item_id"]
    ),
    "input_audio_buffer.speech_stopped": lambda d: ev.SpeechStopped(
        d["audio_end_ms"], d["item_id"]
    ),
    "input_audio_buffer.committed": lambda d: ev.InputCommitted(
        d["item_id"], d.get("previous_item_id")
    ),
    "input_audio_buffer.cleared": lambda d: ev.InputCleared(),
    "input_audio_buffer.timeout_triggered": lambda d: ev.InputTimeoutTriggered(
        d["audio_start_ms"], d["audio_end_ms"], d["item_id"]
    ),
    "response.created": lambda d: ev.ResponseCreated(d["response"].get("id", "")),
    "response.done": _response_done,
    "response.output_item.added": _output_item(ev.OutputItemAdded),
    "response.output_item.done": _output_item(ev.OutputItemDone),
    "response.output_audio.done": lambda d: ev.AudioDone(
        d["response_id"], d["item_id"], d.get("output_index", 0), d.get("content_index", 0)
    ),
    "response.output_audio_transcript.done": lambda d: ev.TranscriptDone(
        d["response_id"], d["item_id"], d.get("transcript", "")
    ),
    "conversation.item.input_audio_transcription.completed": lambda d: (
        ev.InputTranscriptionCompleted(
            d["item_id"], d.get("content_index", 0), d.get("transcript", "")
        )
    ),
    "response.function_call_arguments.done": lambda d: ev.FunctionCallArgumentsDone(
        d["response_id"], d["item_id"], d["call_id"], d["name"], d["arguments"]
    ),
    "conversation.item.truncated": lambda d: ev.ItemTruncated(
        d["item_id"], d.get("content_index", 0), d["audio_end_ms"]
    ),
    "conversation.item.deleted": lambda d: ev.ItemDeleted(d["item_id"]),
    "rate_limits.updated": _rate_limits,
}
