"""A local, protocol-faithful stand-in for the OpenAI Realtime API (GA, WebSocket mode).

Used by the tests and by `run` when no API key is configured. It speaks the GA wire protocol
(realtime-protocol.md): it validates client events the way the service does (unknown or missing
parameters, bad types and values, unknown event types all give `error` events with the codes
seen in practice), runs an energy VAD on the decoded G.711 input on *audio time* (bytes / 8),
answers turns by playing the caller's own utterance back (or a configured G.711 reply) in
irregular deltas much faster than real time, and implements truncate/delete/cancel, the
active-response conflict, scripted function calls and the session time limit.

Every client and server event is recorded per session with a monotonic timestamp so tests can
assert on the exchange (`sim.sessions[id].client_events`, `sim.client_events`). So that a long
run does not grow without bound (issue 14), only live sessions and the last `keep_sessions`
finished ones are kept, and each keeps at most `keep_audio_chars` of recorded base64 audio.

Error codes and messages taken from the reference: missing_required_parameter, unknown_parameter,
invalid_value (incl. unknown event type, param "type"), conversation_already_has_active_response,
response_cancel_not_active, input_audio_buffer_commit_empty, unsupported_content_type,
session_expired, beta_api_shape_disabled, and the truncate "Audio content of X ms is already
shorter than Y ms" message (with error.event_id null, as observed). Codes the reference does not
give are marked ASSUMED below (invalid_type wording, item_not_found, invalid_json).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

with warnings.catch_warnings():
    # audioop is deprecated in 3.11/3.12 and comes from audioop-lts on >= 3.13 (pyproject).
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SESSION_LIMIT_S = 3600.0
DEFAULT_MODEL = "gpt-realtime"
CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
)


# ============================================================================================
# Client event validation (a hand-written mirror of the GA schema; the service rejects unknown
# parameters, so this does too. tests/realtime cross-checks it against openai.types.realtime.)


class Invalid(Exception):
    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


Check = Callable[[Any, str], None]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _bad_type(path: str, expected: str, value: Any) -> Invalid:
    # ASSUMED wording/code, modelled on the OpenAI API's "Invalid type for 'x'" errors.
    return Invalid(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {_kind(value)} instead.",
        path,
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def c_str(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _bad_type(path, "a string", value)


def c_bool(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise _bad_type(path, "a boolean", value)


def c_any(value: Any, path: str) -> None:
    return None


def c_int(lo: int | None = None, hi: int | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_type(path, "an integer", value)
        _range(value, lo, hi, path)

    return check


def c_num(lo: float | None = None, hi: float | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad_type(path, "a number", value)
        _range(value, lo, hi, path)

    return check


def _range(value: float, lo: float | None, hi: float | None, path: str) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'} and {hi if hi is not None else 'inf'}"
        raise Invalid(
            "invalid_value",
            f"Invalid '{path}': expected a value between {bounds}, but got {value} instead.",
            path,
        )


def c_enum(*values: Any) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in values or isinstance(value, bool) != isinstance(values[0], bool):
            supported = ", ".join(f"'{v}'" for v in values)
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {supported}.",
                path,
            )

    return check


def c_nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    check.inner = inner  # type: ignore[attr-defined]  # schema_tables() walks these
    return check


def c_list(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _bad_type(path, "an array", value)
        for index, element in enumerate(value):
            inner(element, f"{path}[{index}]")

    check.inner = inner  # type: ignore[attr-defined]
    return check


def c_obj(
    required: dict[str, Check] | None = None, optional: dict[str, Check] | None = None
) -> Check:
    required = required or {}
    optional = optional or {}

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _bad_type(path, "an object", value)
        for key in value:
            if key not in required and key not in optional:
                param = _join(path, key)
                raise Invalid("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        for key, sub in required.items():
            if key not in value:
                param = _join(path, key)
                raise Invalid(
                    "missing_required_parameter", f"Missing required parameter: '{param}'.", param
                )
            sub(value[key], _join(path, key))
        for key, sub in optional.items():
            if key in value:
                sub(value[key], _join(path, key))

    # The tables stay readable by a program: tests compare them with the SDK's models.
    check.fields = {**required, **optional}  # type: ignore[attr-defined]
    return check


def c_tagged(variants: dict[str, Check], tag: str = "type") -> Check:
    """An object whose `tag` selects the schema (the variants must list the tag themselves)."""
    tag_check = c_enum(*variants)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _bad_type(path, "an object", value)
        if tag not in value:
            param = _join(path, tag)
            raise Invalid(
                "missing_required_parameter", f"Missing required parameter: '{param}'.", param
            )
        tag_check(value[tag], _join(path, tag))
        variants[value[tag]](value, path)

    check.variants = variants  # type: ignore[attr-defined]
    return check


def c_either(*checks: Check) -> Check:
    """First alternative that accepts; otherwise the error of the alternative of the right kind."""

    def check(value: Any, path: str) -> None:
        errors: list[Invalid] = []
        for alternative in checks:
            try:
                alternative(value, path)
                return
            except Invalid as exc:
                errors.append(exc)
        typed = [e for e in errors if e.code != "invalid_type"]
        raise (typed or errors)[0]

    check.alternatives = checks  # type: ignore[attr-defined]
    return check


def _typed(name: str, **optional: Check) -> Check:
    return c_obj({"type": c_enum(name)}, optional)


AUDIO_FORMAT = c_tagged(
    {
        # GA: rate exists only for audio/pcm and must be 24000; pcmu/pcma take only `type`.
        "audio/pcm": _typed("audio/pcm", rate=c_enum(24000)),
        "audio/pcmu": _typed("audio/pcmu"),
        "audio/pcma": _typed("audio/pcma"),
    }
)
TURN_DETECTION = c_nullable(
    c_tagged(
        {
            "server_vad": _typed(
                "server_vad",
                threshold=c_num(0, 1),
                prefix_padding_ms=c_int(0),
                silence_duration_ms=c_int(0),
                idle_timeout_ms=c_nullable(c_int(0)),
                create_response=c_bool,
                interrupt_response=c_bool,
            ),
            "semantic_vad": _typed(
                "semantic_vad",
                eagerness=c_enum("low", "medium", "high", "auto"),
                create_response=c_bool,
                interrupt_response=c_bool,
            ),
        }
    )
)
NOISE_REDUCTION = c_nullable(
    c_obj(optional={"type": c_enum("near_field", "far_field"), "strength": c_num(0)})
)
TRANSCRIPTION = c_nullable(
    c_obj(
        optional={
            "model": c_str,
            "language": c_str,
            "prompt": c_str,
            "keywords": c_list(c_str),
            "languages": c_list(c_str),
            "delay": c_enum("minimal", "low", "medium", "high", "xhigh"),
        }
    )
)
VOICE = c_either(c_str, c_obj({"id": c_str}))
AUDIO_OUTPUT = c_obj(optional={"format": AUDIO_FORMAT, "voice": VOICE, "speed": c_num(0.25, 1.5)})
SESSION_AUDIO = c_obj(
    optional={
        "input": c_obj(
            optional={
                "format": AUDIO_FORMAT,
                "noise_reduction": NOISE_REDUCTION,
                "transcription": TRANSCRIPTION,
                "turn_detection": TURN_DETECTION,
            }
        ),
        "output": AUDIO_OUTPUT,
    }
)
FUNCTION_TOOL = c_obj(
    {"type": c_enum("function")},
    {"name": c_str, "description": c_str, "parameters": c_any},
)
TOOLS = c_list(
    c_tagged(
        {
            "function": FUNCTION_TOOL,
            "mcp": c_obj(
                {"type": c_any, "server_label": c_str},
                {
                    "allowed_callers": c_list(c_enum("direct", "programmatic")),
                    "allowed_tools": c_any,
                    "authorization": c_str,
                    "connector_id": c_str,
                    "defer_loading": c_bool,
                    "headers": c_any,
                    "require_approval": c_any,
                    "server_description": c_str,
                    "server_url": c_str,
                    "tunnel_id": c_str,
                },
            ),
        }
    )
)
TOOL_CHOICE = c_either(
    c_enum("none", "auto", "required"),
    c_tagged(
        {
            "function": c_obj({"type": c_any, "name": c_str}),
            "mcp": c_obj({"type": c_any, "server_label": c_str}, {"name": c_nullable(c_str)}),
        }
    ),
)
MAX_OUTPUT_TOKENS = c_either(c_int(1, 4096), c_enum("inf"))
OUTPUT_MODALITIES = c_list(c_enum("text", "audio"))
PROMPT = c_nullable(c_obj({"id": c_str}, {"version": c_nullable(c_str), "variables": c_any}))
REASONING = c_obj(
    optional={"effort": c_nullable(c_enum("minimal", "low", "medium", "high", "xhigh"))}
)
SESSION = c_tagged(
    {
        "realtime": c_obj(
            {"type": c_any},
            {
                "model": c_str,
                "instructions": c_str,
                "output_modalities": OUTPUT_MODALITIES,
                "max_output_tokens": MAX_OUTPUT_TOKENS,
                "audio": SESSION_AUDIO,
                "tools": TOOLS,
                "tool_choice": TOOL_CHOICE,
                "truncation": c_either(
                    c_enum("auto", "disabled"),
                    c_obj(
                        {"type": c_enum("retention_ratio"), "retention_ratio": c_num(0, 1)},
                        {"token_limits": c_any},
                    ),
                ),
                "include": c_nullable(c_list(c_enum("item.input_audio_transcription.logprobs"))),
                "tracing": c_nullable(
                    c_either(
                        c_enum("auto"),
                        c_obj(
                            optional={"workflow_name": c_str, "group_id": c_str, "metadata": c_any}
                        ),
                    )
                ),
                "prompt": PROMPT,
                "reasoning": REASONING,
                "parallel_tool_calls": c_bool,
            },
        ),
        # STT-only sessions exist in GA but this simulator does not implement them (see handler).
        "transcription": c_obj({"type": c_any}, {"audio": c_any, "include": c_any}),
    }
)
_ITEM_COMMON = {
    "id": c_str,
    "object": c_enum("realtime.item"),
    "status": c_enum("completed", "incomplete", "in_progress"),
}
USER_CONTENT = c_tagged(
    {
        "input_text": _typed("input_text", text=c_str),
        "input_audio": _typed("input_audio", audio=c_str, transcript=c_nullable(c_str)),
        "input_image": _typed("input_image", image_url=c_str, detail=c_enum("auto", "low", "high")),
    }
)
SYSTEM_CONTENT = c_tagged({"input_text": _typed("input_text", text=c_str)})
ASSISTANT_CONTENT = c_tagged(
    {
        "output_text": _typed("output_text", text=c_str),
        "output_audio": _typed("output_audio", audio=c_str, transcript=c_nullable(c_str)),
    }
)


def _message_item(value: Any, path: str) -> None:
    if "role" not in value:
        param = _join(path, "role")
        raise Invalid(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    c_enum("user", "system", "assistant")(value["role"], _join(path, "role"))
    content = {"user": USER_CONTENT, "system": SYSTEM_CONTENT, "assistant": ASSISTANT_CONTENT}[
        value["role"]
    ]
    c_obj({"type": c_any, "role": c_any, "content": c_list(content)}, _ITEM_COMMON)(value, path)


ITEM = c_tagged(
    {
        "message": _message_item,
        "function_call": c_obj(
            {"type": c_any, "name": c_str, "arguments": c_str}, {**_ITEM_COMMON, "call_id": c_str}
        ),
        "function_call_output": c_obj(
            {"type": c_any, "call_id": c_str, "output": c_str}, _ITEM_COMMON
        ),
    }
)
RESPONSE_PARAMS = c_obj(
    optional={
        "instructions": c_str,
        "output_modalities": OUTPUT_MODALITIES,
        "audio": c_obj(
            optional={"output": c_obj(optional={"format": AUDIO_FORMAT, "voice": VOICE})}
        ),
        "tools": TOOLS,
        "tool_choice": TOOL_CHOICE,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "conversation": c_str,
        "input": c_list(c_any),
        "metadata": c_nullable(lambda value, path: _metadata(value, path)),
        "prompt": PROMPT,
        "reasoning": REASONING,
        "parallel_tool_calls": c_bool,
    }
)


def _metadata(value: Any, path: str) -> None:
    """Free-form key/value pairs, values strings (at most 16 pairs)."""
    if not isinstance(value, dict):
        raise _bad_type(path, "an object", value)
    for key, element in value.items():
        c_str(element, f"{path}.{key}")
    if len(value) > 16:
        raise Invalid("invalid_value", f"Invalid '{path}': at most 16 key-value pairs.", path)


_EVENT_FIELDS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "session.update": ({"session": SESSION}, {}),
    "input_audio_buffer.append": ({"audio": c_str}, {}),
    "input_audio_buffer.commit": ({}, {}),
    "input_audio_buffer.clear": ({}, {}),
    "output_audio_buffer.clear": ({}, {}),
    "conversation.item.create": ({"item": ITEM}, {"previous_item_id": c_nullable(c_str)}),
    "conversation.item.retrieve": ({"item_id": c_str}, {}),
    "conversation.item.truncate": (
        {"item_id": c_str, "content_index": c_int(0), "audio_end_ms": c_int(0)},
        {},
    ),
    "conversation.item.delete": ({"item_id": c_str}, {}),
    "response.create": ({}, {"response": c_any}),
    "response.cancel": ({}, {"response_id": c_str}),
}


def validate_client_event(event: Any) -> Invalid | None:
    """None when the event is acceptable, else the error the service would send."""
    if not isinstance(event, dict):
        return Invalid(
            "invalid_type",
            f"Invalid type for event: expected an object, but got {_kind(event)} instead.",
            None,
        )
    if "type" not in event:
        return Invalid("missing_required_parameter", "Missing required parameter: 'type'.", "type")
    kind = event["type"]
    if kind not in _EVENT_FIELDS:
        supported = ", ".join(f"'{t}'" for t in CLIENT_EVENT_TYPES)
        return Invalid(
            "invalid_value", f"Invalid value: '{kind}'. Supported values are: {supported}.", "type"
        )
    required, optional = _EVENT_FIELDS[kind]
    try:
        c_obj({**required, "type": c_any}, {**optional, "event_id": c_str})(event, "")
        if kind == "response.create" and "response" in event:
            _check_response_params(event["response"], "response")
        if kind == "session.update":
            _check_session_semantics(event["session"])
    except Invalid as exc:
        return exc
    return None


def _check_response_params(value: Any, path: str) -> None:
    RESPONSE_PARAMS(value, path)
    if isinstance(value, dict) and "output_modalities" in value:
        _check_modalities(value["output_modalities"], f"{path}.output_modalities")


def _check_session_semantics(session: dict[str, Any]) -> None:
    if "output_modalities" in session:
        _check_modalities(session["output_modalities"], "session.output_modalities")


def semantic_problem(event: dict[str, Any]) -> Invalid | None:
    """Rules the service enforces beyond the schema (realtime-protocol.md section 7, caveat c),
    applied whichever schema (built-in or SDK) decided the rest."""
    try:
        kind = event.get("type")
        params: Any = None
        if kind == "session.update":
            params, path = event.get("session"), "session"
        elif kind == "response.create":
            params, path = event.get("response"), "response"
        if not isinstance(params, dict):
            return None
        if isinstance(params.get("output_modalities"), list):
            _check_modalities(params["output_modalities"], f"{path}.output_modalities")
        if "max_output_tokens" in params:
            MAX_OUTPUT_TOKENS(params["max_output_tokens"], f"{path}.max_output_tokens")
        audio = params.get("audio") if isinstance(params.get("audio"), dict) else {}
        for direction in ("input", "output"):
            block = audio.get(direction)
            fmt = block.get("format") if isinstance(block, dict) else None
            if isinstance(fmt, dict) and "type" not in fmt:
                # The SDK's format models make `type` optional ({} is audio/pcm); a typeless
                # format is a gateway bug, so the simulator requires it.
                param = f"{path}.audio.{direction}.format.type"
                raise Invalid(
                    "missing_required_parameter", f"Missing required parameter: '{param}'.", param
                )
    except Invalid as exc:
        return exc
    return None


def _check_modalities(value: list[str], path: str) -> None:
    # Schema allows a list, the service allows exactly one of ["audio"] or ["text"].
    if len(value) != 1:
        raise Invalid(
            "invalid_value",
            f"Invalid modalities: {value}. Supported combinations are: ['text'] and ['audio'].",
            path,
        )


# ============================================================================================
# Audio helpers (G.711 and 24 kHz PCM), private to the simulator by design.

_BYTES_PER_MS = {"audio/pcmu": 8, "audio/pcma": 8, "audio/pcm": 48}
RESPONSE_OUTCOMES = ("completed", "failed", "incomplete", "incomplete_silent")


def to_pcm16(audio: bytes, fmt: str) -> np.ndarray:
    """int16 samples of raw input audio (8 kHz for G.711, 24 kHz for audio/pcm)."""
    if fmt == "audio/pcmu":
        linear = audioop.ulaw2lin(audio, 2)
    elif fmt == "audio/pcma":
        linear = audioop.alaw2lin(audio, 2)
    else:
        linear = audio[: len(audio) - len(audio) % 2]
    return np.frombuffer(linear, dtype="<i2")


def convert(audio: bytes, src: str, dst: str) -> bytes:
    """Re-encode audio between the three GA formats (only for the echo reply)."""
    if src == dst:
        return bytes(audio)
    linear = to_pcm16(audio, src).tobytes()
    if src == "audio/pcm":
        linear, _ = audioop.ratecv(linear, 2, 1, 24000, 8000, None)
    if dst == "audio/pcm":
        linear, _ = audioop.ratecv(linear, 2, 1, 8000, 24000, None)
        return linear
    return audioop.lin2ulaw(linear, 2) if dst == "audio/pcmu" else audioop.lin2alaw(linear, 2)


def tone(ms: int, fmt: str, hz: float = 440.0, level: float = 0.3) -> bytes:
    rate = 24000 if fmt == "audio/pcm" else 8000
    n = rate * ms // 1000
    samples = (np.sin(2 * np.pi * hz * np.arange(n) / rate) * level * 32767).astype("<i2").tobytes()
    if fmt == "audio/pcm":
        return samples
    return audioop.lin2ulaw(samples, 2) if fmt == "audio/pcmu" else audioop.lin2alaw(samples, 2)


# ============================================================================================
# Options and scripting


@dataclass(frozen=True, slots=True)
class ToolCallRule:
    """Script: on the Nth user turn, or when the user's text contains `when_text_contains`,
    answer with a call of tool `name` with `arguments` (a dict is JSON-encoded)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    on_turn: int | None = None
    when_text_contains: str | None = None
    once: bool = True
    # A spoken preamble ("Let me check...") of this many ms of audio, as its own output item
    # before the function call in the same response (the service does this). 0 = none.
    preamble_ms: int = 0

    def matches(self, turn: int, text: str) -> bool:
        if self.on_turn is not None and self.on_turn == turn:
            return True
        return bool(self.when_text_contains) and self.when_text_contains.lower() in text.lower()

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(self.arguments).decode()


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    session_max_s: float = SESSION_LIMIT_S
    # Reply audio: None = play the caller's last utterance back; else raw bytes in reply_format.
    reply_audio: bytes | None = None
    reply_format: str = "audio/pcmu"
    reply_text: str | None = None
    # One transcript per user audio turn (turn 1 = index 0), used for input transcription
    # events and for `when_text_contains` rules; turns past the list get "".
    transcripts: tuple[str, ...] = ()
    tool_calls: tuple[ToolCallRule, ...] = ()
    # Irregular delta sizes (bytes of output audio), cycled: the real service is not frame-aligned.
    delta_sizes: tuple[int, ...] = (480, 1600, 160, 3200, 800, 2400, 1000)
    delta_interval_s: float = 0.002  # far faster than real time, like the service
    # Simulated VAD: frames louder than this many dBFS at threshold 0.5 are speech.
    vad_db_at_half: float = -40.0
    default_reply_ms: int = 1000
    # Cut every session's TCP connection (no close frame) this long after it opened; 0 = never.
    # A service that keeps dropping sessions: what a client's reconnect budget is for.
    drop_after_s: float = 0.0
    # Issue 10: what the real service does that the fast defaults above do not.
    # When the caller's input transcription arrives: "before" (right after the commit) or
    # "after" (after the response.created of the answer to it); the service does both.
    transcription_timing: str = "before"
    # All tool rules matching a turn fire in one response (several function_call items),
    # instead of the first one only.
    parallel_tool_calls: bool = False
    # Pace output audio near real time, as the service streams it: each delta is followed by
    # its own duration / realtime_pace (1.0 = real time, 1.5 = 50 % faster). 0 = off (the
    # fixed, far-faster `delta_interval_s`).
    realtime_pace: float = 0.0
    # Deltas already in flight when a response is cancelled (turn_detected or client):
    # this many more are still sent after the cancel, as the service's late deltas are.
    late_deltas: int = 0
    # Outcome of the n-th response (1-based order), then "completed" for the rest:
    # "completed", "failed" (no output, status_details.error), "incomplete" (half the audio,
    # reason max_output_tokens) or "incomplete_silent" (no audio, reason content_filter).
    response_outcomes: tuple[str, ...] = ()
    # Answer the first session.update with this error (event_id null, no param unless given):
    # e.g. {"type": "server_error", "code": None, "message": "..."}. None = accept it.
    session_update_error: dict[str, Any] | None = None
    # Which schema decides what a client event may hold: "auto" (the `openai` SDK's models
    # when importable, else the built-in tables), "sdk" (the same, named), "builtin".
    # Semantic rules (`semantic_problem`) apply either way; see gateway/realtime/sim_sdk.py.
    schema: str = "auto"
    # Memory over a long run (issue 14). Finished sessions kept for inspection (`sessions`),
    # the most recent ones; older finished sessions are forgotten. Live sessions are always kept.
    keep_sessions: int = 50
    # Base64 audio kept in a session's recorded events (client input_audio_buffer.append
    # `audio` + server response.output_audio.delta `delta`), in characters. Past it, recorded
    # events keep their shape with "" as audio (`audio_chars_dropped` counts what went); what
    # the session does with the audio is unchanged. 0 = record no audio.
    keep_audio_chars: int = 2 * 1024 * 1024

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> SimulatorOptions:
        """Options from plain data (CLI `--script` JSON, TOML config): lists become tuples and
        `tool_calls` entries are dicts of ToolCallRule fields. Unknown keys are a ValueError."""
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown simulator option(s): {', '.join(unknown)}")
        values = dict(options)
        rules = []
        for index, rule in enumerate(values.get("tool_calls") or ()):
            if isinstance(rule, ToolCallRule):
                rules.append(rule)
                continue
            if not isinstance(rule, dict) or "name" not in rule:
                raise ValueError(f"tool_calls[{index}] must be a table with at least a name")
            extra = sorted(set(rule) - set(ToolCallRule.__dataclass_fields__))
            if extra:
                raise ValueError(f"tool_calls[{index}]: unknown field(s) {', '.join(extra)}")
            rules.append(ToolCallRule(**rule))
        if "tool_calls" in values:
            values["tool_calls"] = tuple(rules)
        for key in ("transcripts", "delta_sizes", "response_outcomes"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("reply_format", "audio/pcmu") not in ("audio/pcmu", "audio/pcma"):
            raise ValueError("reply_format must be audio/pcmu or audio/pcma")
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        """ValueError naming the option when a value is out of its range."""
        if self.schema not in ("auto", "sdk", "builtin"):
            raise ValueError("schema must be 'auto', 'sdk' or 'builtin'")
        if self.transcription_timing not in ("before", "after"):
            raise ValueError("transcription_timing must be 'before' or 'after'")
        bad = [o for o in self.response_outcomes if o not in RESPONSE_OUTCOMES]
        if bad:
            raise ValueError(f"response_outcomes: unknown outcome(s) {', '.join(bad)}")
        if self.realtime_pace < 0 or self.late_deltas < 0:
            raise ValueError("realtime_pace and late_deltas must be >= 0")
        if self.keep_sessions < 0 or self.keep_audio_chars < 0:
            raise ValueError("keep_sessions and keep_audio_chars must be >= 0")


@dataclass(slots=True)
class Recorded:
    t: float  # time.monotonic()
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))


@dataclass(slots=True)
class Item:
    id: str
    type: str
    role: str | None = None
    text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    audio_format: str = "audio/pcmu"
    transcript: str = ""
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    status: str = "completed"
    has_audio: bool = False

    @property
    def audio_ms(self) -> int:
        return len(self.audio) // _BYTES_PER_MS[self.audio_format]

    def wire(self, with_audio: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": "realtime.item",
            "type": self.type,
            "status": self.status,
        }
        if self.type == "message":
            out["role"] = self.role
            content: list[dict[str, Any]] = []
            if self.role == "assistant" and self.has_audio:
                part: dict[str, Any] = {"type": "output_audio", "transcript": self.transcript}
                if with_audio:
                    part["audio"] = base64.b64encode(self.audio).decode()
                content.append(part)
            elif self.role == "assistant":
                content.append({"type": "output_text", "text": self.text})
            elif self.has_audio:
                part = {"type": "input_audio", "transcript": self.transcript or None}
                if with_audio:
                    part["audio"] = base64.b64encode(self.audio).decode()
                content.append(part)
            else:
                content.append({"type": "input_text", "text": self.text})
            out["content"] = content
        elif self.type == "function_call":
            out.update(call_id=self.call_id, name=self.name, arguments=self.arguments or "")
        elif self.type == "function_call_output":
            out.update(call_id=self.call_id, output=self.output or "")
        return out


@dataclass(slots=True)
class Response:
    id: str
    output: list[Item] = field(default_factory=list)
    cancel_reason: str | None = None
    done: bool = False
    task: asyncio.Task[None] | None = None
    outcome: str = "completed"  # RESPONSE_OUTCOMES
    late_deltas_sent: int = 0  # deltas sent after the cancel (in flight, as on the service)


_ids = itertools.count(1)
_SDK_VALIDATOR: list[Any] = []  # loaded once, on first use


def _sdk_validator() -> Any:
    if not _SDK_VALIDATOR:
        from gateway.realtime.sim_sdk import sdk_validator

        _SDK_VALIDATOR.append(sdk_validator())
    return _SDK_VALIDATOR[0]


def _new_id(prefix: str) -> str:
    return f"{prefix}_sim{next(_ids):06d}"


# ============================================================================================
# One WebSocket session


class SimSession:
    def __init__(self, ws: ServerConnection, options: SimulatorOptions, model: str) -> None:
        self.id = _new_id("sess")
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
        self._speaking = False
        self._speech_item_id = ""
        self._speech_start_ms = 0
        self._last_voiced_end_ms = 0
        self._idle_deadline_ms: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiring = False
        self._deferred_transcriptions: list[dict[str, Any]] = []
        self._setup_error_sent = False
        self._sdk_validate = _sdk_validator() if options.schema != "builtin" else None
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
        key = (
            "audio"
            if kind == "input_audio_buffer.append"
            else "delta"
            if kind == "response.output_audio.delta"
            else None
        )
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
        event = {"event_id": _new_id("event"), **event}
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
        self.client_events.append(
            Recorded(
                time.monotonic(),
                self._recordable(event) if isinstance(event, dict) else {"_raw": event},
            )
        )
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
        handler = getattr(self, "on_" + event["type"].replace(".", "_"))
        await handler(event, event_id)

    def _validate(self, event: Any) -> Invalid | None:
        builtin = validate_client_event(event)
        sdk = self._sdk_validate
        if (
            sdk is None
            or not isinstance(event, dict)
            or event.get("type") not in _EVENT_FIELDS  # no handler for it here anyway
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
        old_bpms = _BYTES_PER_MS[self.input_format]
        for key, value in session.items():
            if key == "audio":
                for direction, block in value.items():
                    self.config["audio"][direction].update(block)
            else:
                self.config[key] = value
        new_bpms = _BYTES_PER_MS[self.input_format]
        if new_bpms != old_bpms:
            # Audio time continues across a format change; uncommitted audio is dropped.
            audio_ms = self.input_bytes_total // old_bpms
            self.buffer.clear()
            self.input_bytes_total = self.buffer_start_byte = audio_ms * new_bpms
            self._vad_reset()
        await self.send({"type": "session.updated", "session": self.config})

    # -- input audio and VAD -----------------------------------------------------------------

    async def on_input_audio_buffer_append(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        try:
            audio = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            await self.send_error(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio.",
                "audio",
                event_id,
            )
            return
        self.buffer += audio
        self.input_bytes_total += len(audio)
        if self.turn_detection is not None:
            await self._run_vad(audio)

    def _vad_reset(self) -> None:
        self._vad_residual = b""
        self._speaking = False

    def _threshold_db(self) -> tuple[float, int, int]:
        td = self.turn_detection or {}
        if td.get("type") == "semantic_vad":
            silence = {"high": 300, "medium": 500, "auto": 500, "low": 800}[
                td.get("eagerness", "auto")
            ]
            return self.options.vad_db_at_half, 300, silence
        threshold = float(td.get("threshold", 0.5))
        # Higher threshold needs louder speech: 0.5 -> vad_db_at_half, each 0.1 is 4 dB.
        db = self.options.vad_db_at_half + (threshold - 0.5) * 40
        return db, int(td.get("prefix_padding_ms", 300)), int(td.get("silence_duration_ms", 500))

    async def _run_vad(self, audio: bytes) -> None:
        fmt = self.input_format
        bpms = _BYTES_PER_MS[fmt]
        frame_bytes = bpms * 10  # 10 ms frames on audio time
        data = self._vad_residual + audio
        usable = len(data) - len(data) % frame_bytes
        self._vad_residual = data[usable:]
        if not usable:
            return
        first_frame_ms = (self.input_bytes_total - len(audio) - (len(data) - len(audio))) // bpms
        samples = to_pcm16(data[:usable], fmt).astype(np.float64)
        frames = samples.reshape(usable // frame_bytes, -1)
        rms = np.sqrt(np.mean(frames * frames, axis=1))
        db = 20 * np.log10(rms / 32768.0 + 1e-12)
        threshold_db, prefix_ms, silence_ms = self._threshold_db()
        for index, level in enumerate(db):
            start_ms = first_frame_ms + index * 10
            end_ms = start_ms + 10
            voiced = level > threshold_db
            if voiced and not self._speaking:
                await self._speech_started(
                    max(self.buffer_start_byte // bpms, start_ms - prefix_ms)
                )
            if voiced:
                self._last_voiced_end_ms = end_ms
            elif self._speaking and end_ms - self._last_voiced_end_ms >= silence_ms:
                await self._speech_stopped(end_ms)
            elif (
                not self._speaking
                and self._idle_deadline_ms is not None
                and end_ms >= self._idle_deadline_ms
                and (self.response is None or self.response.done)
            ):
                await self._idle_timeout(end_ms)

    async def _idle_timeout(self, audio_end_ms: int) -> None:
        """server_vad `idle_timeout_ms`: commit the silent span and answer it (reference 5)."""
        self._idle_deadline_ms = None
        bpms = _BYTES_PER_MS[self.input_format]
        audio_start_ms = self.buffer_start_byte // bpms
        end = audio_end_ms * bpms - self.buffer_start_byte
        audio = bytes(self.buffer[:end])
        del self.buffer[:end]
        self.buffer_start_byte = audio_end_ms * bpms
        item_id = _new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": audio_start_ms,
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        await self._commit_user_audio(item_id, audio)
        await self._start_response(None)

    def _arm_idle_timeout(self, output_ms: int) -> None:
        # The server cannot see playout on WS: it assumes playback takes as long as the audio
        # it produced, so the timer starts at response.done + that duration (on input audio time).
        td = self.turn_detection or {}
        idle_ms = td.get("idle_timeout_ms")
        if td.get("type") != "server_vad" or not idle_ms:
            return
        now_ms = self.input_bytes_total // _BYTES_PER_MS[self.input_format]
        self._idle_deadline_ms = now_ms + output_ms + int(idle_ms)

    async def _speech_started(self, audio_start_ms: int) -> None:
        self._speaking = True
        self._idle_deadline_ms = None
        self._speech_item_id = _new_id("item")
        self._speech_start_ms = audio_start_ms
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        td = self.turn_detection or {}
        if (
            td.get("interrupt_response", True)
            and self.response is not None
            and not self.response.done
        ):
            self.response.cancel_reason = "turn_detected"

    async def _speech_stopped(self, audio_end_ms: int) -> None:
        self._speaking = False
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": self._speech_item_id,
            }
        )
        bpms = _BYTES_PER_MS[self.input_format]
        start = self._speech_start_ms * bpms - self.buffer_start_byte
        end = audio_end_ms * bpms - self.buffer_start_byte
        utterance = bytes(self.buffer[max(0, start) : end])
        del self.buffer[:end]
        self.buffer_start_byte = audio_end_ms * bpms
        await self._commit_user_audio(self._speech_item_id, utterance)
        td = self.turn_detection or {}
        if td.get("create_response", True):
            await self._start_response(None)

    async def _commit_user_audio(self, item_id: str, audio: bytes) -> None:
        previous = next(reversed(self.items), None)
        self.user_turns += 1
        transcripts = self.options.transcripts
        transcript = transcripts[self.user_turns - 1] if self.user_turns <= len(transcripts) else ""
        item = Item(
            item_id,
            "message",
            role="user",
            audio=bytearray(audio),
            audio_format=self.input_format,
            transcript=transcript,
            has_audio=True,
        )
        self.items[item_id] = item
        self.last_user_text = transcript
        self.last_utterance = audio
        self.last_utterance_format = self.input_format
        self.pending_inputs_from_user = True
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": item.wire(), "previous_item_id": previous}
        )
        await self.send(
            {"type": "conversation.item.done", "item": item.wire(), "previous_item_id": previous}
        )
        if self.config["audio"]["input"].get("transcription"):
            completed = {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "duration",
                    "seconds": round(len(audio) / (_BYTES_PER_MS[self.input_format] * 1000), 3),
                },
            }
            if self.options.transcription_timing == "after":
                # The ASR pass is slower than the model: the text of this turn comes after
                # the response.created of the answer to it.
                self._deferred_transcriptions.append(completed)
            else:
                await self.send(completed)

    async def on_input_audio_buffer_commit(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        bpms = _BYTES_PER_MS[self.input_format]
        buffered_ms = len(self.buffer) / bpms
        if buffered_ms < 100:
            await self.send_error(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {buffered_ms:.2f}ms of audio.",
                None,
                event_id,
            )
            return
        audio = bytes(self.buffer)
        self.buffer_start_byte += len(self.buffer)
        self.buffer.clear()
        item_id = self._speech_item_id if self._speaking else _new_id("item")
        self._vad_reset()
        await self._commit_user_audio(item_id, audio)

    async def on_input_audio_buffer_clear(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self.buffer_start_byte += len(self.buffer)
        self.buffer.clear()
        self._vad_reset()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_output_audio_buffer_clear(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        # WebRTC/SIP only; on a WebSocket the server holds no output buffer. ASSUMED error shape.
        await self.send_error(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            "type",
            event_id,
        )

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
        item_id = raw.get("id") or _new_id("item")
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
        del item.audio[end_ms * _BYTES_PER_MS[item.audio_format] :]
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

    # -- responses ---------------------------------------------------------------------------

    async def on_response_create(self, event: dict[str, Any], event_id: str | None) -> None:
        await self._start_response(event_id, event.get("response") or {})

    async def on_response_cancel(self, event: dict[str, Any], event_id: str | None) -> None:
        response = self.response
        wanted = event.get("response_id")
        if (
            response is None
            or response.done
            or response.cancel_reason
            or (wanted and wanted != response.id)
        ):
            await self.send_error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
                event_id,
            )
            return
        response.cancel_reason = "client_cancelled"

    async def _start_response(
        self, event_id: str | None, params: dict[str, Any] | None = None
    ) -> None:
        if self.response is not None and not self.response.done:
            await self.send_error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.response.id}. "
                "Wait until the response is finished before creating a new one.",
                None,
                event_id,
            )
            return
        response = Response(_new_id("resp"))
        self.response = response
        self.responses.append(response)
        # response.created is on the wire before the generator can emit anything. Client frames
        # are handled one at a time, so no cancel can slip in between.
        await self.send(
            {"type": "response.created", "response": self._response_wire(response, "in_progress")}
        )
        outcomes = self.options.response_outcomes
        if len(self.responses) <= len(outcomes):
            response.outcome = outcomes[len(self.responses) - 1]
        deferred, self._deferred_transcriptions = self._deferred_transcriptions, []
        for completed in deferred:
            await self.send(completed)
        response.task = self.spawn(self._generate(response, params or {}))

    def _response_wire(
        self, response: Response, status: str, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": response.cancel_reason}
        elif status == "failed":
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "server_error",
                    "message": "The server had an error while processing your request.",
                },
            }
        elif status == "incomplete":
            reason = "content_filter" if response.outcome == "incomplete_silent" else None
            details = {"type": "incomplete", "reason": reason or "max_output_tokens"}
        elif status == "completed":
            details = None
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": [item.wire() for item in response.output] if status != "in_progress" else [],
            "conversation_id": "conv_sim",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {
                "output": {
                    "format": self.config["audio"]["output"]["format"],
                    "voice": self.config["audio"]["output"]["voice"],
                }
            },
            "metadata": None,
            "usage": usage,
        }

    def _pick_rules(self) -> list[ToolCallRule]:
        """The rules this response fires: the first match, or every match when
        `parallel_tool_calls` (several function_call items in one response)."""
        if not self.pending_inputs_from_user:
            return []
        picked = []
        for index, rule in enumerate(self.options.tool_calls):
            if rule.once and index in self.fired_rules:
                continue
            if rule.matches(self.user_turns, self.last_user_text):
                self.fired_rules.add(index)
                picked.append(rule)
                if not self.options.parallel_tool_calls:
                    break
        return picked

    async def _generate(self, response: Response, params: dict[str, Any]) -> None:
        rules = self._pick_rules()
        tool_result = self.pending_tool_result
        self.pending_inputs_from_user = False
        self.pending_tool_result = None
        output_ms = 0
        outcome = response.outcome
        if outcome in ("failed", "incomplete_silent"):
            await asyncio.sleep(self.options.delta_interval_s)  # it fails before any output
        elif rules:
            output_index = 0
            for rule in rules:
                if response.cancel_reason is not None:
                    break
                if rule.preamble_ms > 0:
                    preamble = tone(rule.preamble_ms, self.output_format, hz=330.0)
                    output_ms += await self._emit_audio_message(
                        response, output_index, preamble, "Let me check that for you."
                    )
                    output_index += 1
                if response.cancel_reason is None:
                    await self._emit_function_call(response, rule, output_index)
                    output_index += 1
        else:
            audio = self._reply_audio()
            if outcome == "incomplete":  # cut by max_output_tokens halfway
                audio = audio[: len(audio) // 2]
            output_ms = await self._emit_audio_message(
                response, 0, audio, self._reply_text(tool_result)
            )
        if response.cancel_reason:
            status = "cancelled"
        elif outcome == "failed":
            status = "failed"
        elif outcome in ("incomplete", "incomplete_silent"):
            status = "incomplete"
        else:
            status = "completed"
        input_tokens = 40 + 10 * len(self.items)
        usage = {
            "total_tokens": input_tokens + output_ms // 50,
            "input_tokens": input_tokens,
            "output_tokens": output_ms // 50,
            "input_token_details": {
                "text_tokens": 40,
                "audio_tokens": input_tokens - 40,
                "image_tokens": 0,
                "cached_tokens": 0,
            },
            "output_token_details": {"text_tokens": 0, "audio_tokens": output_ms // 50},
        }
        await self.send(
            {"type": "response.done", "response": self._response_wire(response, status, usage)}
        )
        # Only now may a new response start (response.create before this gets the conflict error).
        response.done = True
        self._arm_idle_timeout(output_ms)
        await self.send(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                    {
                        "name": "tokens",
                        "limit": 40000,
                        "remaining": 40000 - input_tokens,
                        "reset_seconds": 0.5,
                    },
                ],
            }
        )

    async def _emit_function_call(
        self, response: Response, rule: ToolCallRule, output_index: int = 0
    ) -> None:
        item = Item(
            _new_id("item"),
            "function_call",
            call_id=_new_id("call"),
            name=rule.name,
            arguments="",
            status="in_progress",
        )
        previous = next(reversed(self.items), None)
        self.items[item.id] = item
        response.output.append(item)
        ids = {"response_id": response.id, "item_id": item.id, "output_index": output_index}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": output_index,
                "item": item.wire(),
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": item.wire(), "previous_item_id": previous}
        )
        arguments = rule.arguments_json()
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            await asyncio.sleep(self.options.delta_interval_s)
            await self.send(
                {
                    "type": "response.function_call_arguments.delta",
                    **ids,
                    "call_id": item.call_id,
                    "delta": piece,
                }
            )
        item.arguments = arguments
        item.status = "completed"
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "call_id": item.call_id,
                "name": rule.name,
                "arguments": arguments,
            }
        )
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": output_index,
                "item": item.wire(),
            }
        )
        await self.send(
            {"type": "conversation.item.done", "item": item.wire(), "previous_item_id": previous}
        )

    def _reply_audio(self) -> bytes:
        fmt = self.output_format
        if self.options.reply_audio is not None:
            return convert(self.options.reply_audio, self.options.reply_format, fmt)
        if self.last_utterance:
            return convert(self.last_utterance, self.last_utterance_format, fmt)
        return tone(self.options.default_reply_ms, fmt)

    def _reply_text(self, tool_result: Item | None) -> str:
        if self.options.reply_text is not None:
            return self.options.reply_text
        if tool_result is not None:
            return f"The tool returned {tool_result.output}."
        if self.last_user_text:
            return f"You said: {self.last_user_text}"
        return "This is the Realtime simulator."

    def _delta_pause(self, chunk_bytes: int) -> float:
        pace = self.options.realtime_pace
        if pace <= 0:
            return self.options.delta_interval_s
        return chunk_bytes / _BYTES_PER_MS[self.output_format] / 1000.0 / pace

    async def _emit_audio_message(
        self, response: Response, output_index: int, audio: bytes, text: str
    ) -> int:
        fmt = self.output_format
        item = Item(
            _new_id("item"),
            "message",
            role="assistant",
            audio_format=fmt,
            has_audio=True,
            status="in_progress",
        )
        previous = next(reversed(self.items), None)
        self.items[item.id] = item
        response.output.append(item)
        ids = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": output_index,
                "item": item.wire(),
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": item.wire(), "previous_item_id": previous}
        )
        await self.send(
            {
                "type": "response.content_part.added",
                **ids,
                "part": {"type": "audio", "transcript": ""},
            }
        )
        words = text.split()
        sizes = itertools.cycle(self.options.delta_sizes)
        offset = 0
        word_index = 0
        spoken: list[str] = []
        while offset < len(audio):
            if response.cancel_reason is not None:
                if response.late_deltas_sent >= self.options.late_deltas:
                    break
                response.late_deltas_sent += 1  # already on its way when the cancel came
            chunk = audio[offset : offset + next(sizes)]
            offset += len(chunk)
            item.audio += chunk
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **ids,
                    "delta": base64.b64encode(chunk).decode(),
                }
            )
            if word_index < len(words):
                delta = ("" if word_index == 0 else " ") + words[word_index]
                spoken.append(words[word_index])
                word_index += 1
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **ids, "delta": delta}
                )
            await asyncio.sleep(self._delta_pause(len(chunk)))
        if response.cancel_reason is None and word_index < len(words):
            rest = words[word_index:]
            spoken.extend(rest)
            await self.send(
                {
                    "type": "response.output_audio_transcript.delta",
                    **ids,
                    "delta": " " + " ".join(rest),
                }
            )
        item.transcript = " ".join(spoken)
        item.status = "incomplete" if response.cancel_reason else "completed"
        await self.send({"type": "response.output_audio.done", **ids})
        await self.send(
            {"type": "response.output_audio_transcript.done", **ids, "transcript": item.transcript}
        )
        await self.send(
            {
                "type": "response.content_part.done",
                **ids,
                "part": {"type": "audio", "transcript": item.transcript},
            }
        )
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": output_index,
                "item": item.wire(),
            }
        )
        await self.send(
            {"type": "conversation.item.done", "item": item.wire(), "previous_item_id": previous}
        )
        return item.audio_ms


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


# ============================================================================================
# The server


class Simulator:
    """`await start()`, use `.url`, `await stop()`. Several sessions may run at once."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, options: SimulatorOptions | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.options = options or SimulatorOptions()
        # Live sessions and the last `options.keep_sessions` finished ones, in opening order.
        self.sessions: dict[str, SimSession] = {}
        self.opened = 0  # sessions opened so far, forgotten ones included
        self._finished: deque[str] = deque()
        self._server: Server | None = None
        self._new_session = asyncio.Condition()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/v1/realtime?model={DEFAULT_MODEL}"

    async def start(self) -> None:
        if self.options.schema != "builtin":
            # Importing the SDK's models takes about half a second: done here, off the event
            # loop, so that no session (and no call of a gateway serving this simulator
            # in-process) waits for it.
            await asyncio.to_thread(_sdk_validator)
        self._server = await ws_serve(
            self._handle, self.host, self.port, compression=None, max_size=16 * 1024 * 1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self._server = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        model = (query.get("model") or [DEFAULT_MODEL])[0]
        session = SimSession(ws, self.options, model)
        self.opened += 1
        session.ordinal = self.opened
        self.sessions[session.id] = session
        async with self._new_session:
            self._new_session.notify_all()
        drop = None
        if self.options.drop_after_s > 0:
            drop = asyncio.get_running_loop().call_later(
                self.options.drop_after_s, ws.transport.abort
            )
        try:
            await session.run()
        finally:
            if drop is not None:
                drop.cancel()
            self._forget_old(session)

    def _forget_old(self, finished: SimSession) -> None:
        """Keep the last `keep_sessions` finished sessions; forget older ones (issue 14)."""
        finished.buffer = bytearray()  # the input buffer is no use once the session is over
        self._finished.append(finished.id)
        while len(self._finished) > self.options.keep_sessions:
            self.sessions.pop(self._finished.popleft(), None)

    async def wait_session(self, count: int = 1, timeout: float = 5.0) -> SimSession:  # noqa: ASYNC109 (every wait in the API is bounded)
        """The `count`-th session opened (1-based), waiting for it if needed. LookupError if it
        has finished and been forgotten (raise `keep_sessions`)."""

        async def ready() -> SimSession:
            async with self._new_session:
                await self._new_session.wait_for(lambda: self.opened >= count)
            for session in self.sessions.values():
                if session.ordinal == count:
                    return session
            raise LookupError(f"session {count} finished and was forgotten (keep_sessions)")

        return await asyncio.wait_for(ready(), timeout)

    def drop_session(self, session_id: str) -> None:
        """Cut the session's TCP connection without a close frame (the client sees 1006)."""
        self.sessions[session_id].ws.transport.abort()

    @property
    def client_events(self) -> list[Recorded]:
        return sorted(
            (r for s in self.sessions.values() for r in s.client_events), key=lambda r: r.t
        )

    @property
    def server_events(self) -> list[Recorded]:
        return sorted(
            (r for s in self.sessions.values() for r in s.server_events), key=lambda r: r.t
        )


async def serve(host: str = "127.0.0.1", port: int = 8765, **options: Any) -> None:
    """Run a simulator until cancelled (used by `sip-realtime-gateway simulator`)."""
    simulator = Simulator(host, port, SimulatorOptions.from_mapping(options))
    await simulator.start()
    print(f"realtime simulator listening on {simulator.url}", flush=True)
    try:
        await asyncio.Future()
    finally:
        await simulator.stop()
