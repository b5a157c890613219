"""GPT-Live server events: the ones the gateway acts on, typed; the rest ignored and counted.

`LiveEventParser.parse(frame)` never raises: every frame comes from the network and is hostile
until read. A frame that is not a JSON object with a string `type` is counted in `malformed`;
an event of a type we do not act on in `ignored` (by type; the service adds event types); an
event we act on whose fields are missing, of the wrong type, too large or not base64 is
counted in `malformed` and dropped. Bounds: an audio delta decodes to at most
`MAX_AUDIO_BYTES` (8 s of G.711; the service sends about 100 ms per delta, reference 4),
transcript fragments and error texts are cut at `MAX_TEXT_CHARS`, function arguments are
refused above `MAX_ARGUMENTS_CHARS`, ids above `MAX_ID_CHARS`.

Function calls are read ONLY from a nested `response.output_item.done` whose item is a
`function_call` (reference 6: the arguments-done event lacks name and call id, and lifecycle
snapshots carry `output: []` on purpose).
"""

from __future__ import annotations

import binascii
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.audio_b64 import b64decode_strict

MAX_AUDIO_BYTES = 64 * 1024
MAX_TEXT_CHARS = 4096
MAX_ARGUMENTS_CHARS = 64 * 1024
MAX_ID_CHARS = 256
MAX_USAGE_SECONDS = 10_000_000.0  # ~115 days: a usage snapshot above it is not believed

CLOSE_REASONS = frozenset(
    {"close_requested", "expired", "content", "remote_hangup", "connection_lost"}
)


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: str
    expires_at: float | None  # unix seconds
    audio_format: str | None  # echoed audio.format.type
    audio_rate: int | None
    session: dict[str, Any] = field(repr=False)
    client_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    client_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputAudio:
    """`session.output_audio.delta`, decoded: G.711 in the session's law, no ids (reference 4)."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class InputTranscript:
    delta: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    delta: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class DelegationCreated:
    delegation_id: str
    target: str  # client | responses | decisions
    response_id: str | None


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A nested `response.output_item.done` with a `function_call` item."""

    delegation_id: str | None
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ResponseStatus:
    """A nested response lifecycle event (created, completed, failed, incomplete)."""

    delegation_id: str | None
    kind: str  # the nested type without "response.": created | completed | failed | incomplete
    response_id: str | None


@dataclass(frozen=True, slots=True)
class Appended:
    """`session.{instructions,thinking,commentary}.appended`: placed on the timeline."""

    kind: str
    client_event_id: str | None


@dataclass(frozen=True, slots=True)
class UsageUpdated:
    """Cumulative session usage (reference 10: use the latest, never sum)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class SessionClosed:
    reason: str  # one of CLOSE_REASONS, or "unknown"
    seconds: float | None  # final usage, when readable


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    type: str
    code: str | None
    message: str
    param: str | None = None
    client_event_id: str | None = None

    def describe(self) -> str:
        text = f"{self.type}/{self.code or '-'}: {self.message}"
        if self.param:
            text += f" (param {self.param})"
        return text


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """Client side: the WebSocket went away (never sent by the server)."""

    reason: str
    code: int | None = None


LiveServerEvent = (
    SessionStarted
    | SessionUpdated
    | OutputAudio
    | InputTranscript
    | OutputTranscript
    | DelegationCreated
    | FunctionCall
    | ResponseStatus
    | Appended
    | UsageUpdated
    | SessionClosed
    | ErrorEvent
)


class _Malformed(Exception):
    pass


def _str(data: dict[str, Any], key: str, limit: int = MAX_ID_CHARS, default: Any = ...) -> Any:
    value = data.get(key, default)
    if value is ...:
        raise _Malformed(key)
    if value is None and default is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _Malformed(key)
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _Malformed(key)
    return value[:MAX_TEXT_CHARS]


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed(key)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value < 0 or value > 1e11:  # NaN, negative, absurd
        return None
    return float(value)


def _dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _Malformed(key)
    return value


def _audio(data: dict[str, Any]) -> OutputAudio:
    text = data.get("delta")
    if not isinstance(text, str) or len(text) > (MAX_AUDIO_BYTES * 4) // 3 + 4:
        raise _Malformed("delta")
    try:
        return OutputAudio(b64decode_strict(text))  # compiled when built (gateway/_wsframe.c)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("delta") from exc


def _session_started(data: dict[str, Any]) -> SessionStarted:
    session = _dict(data, "session")
    session_id = _str(session, "id")
    audio = session.get("audio")
    fmt = audio.get("format") if isinstance(audio, dict) else None
    fmt_type = fmt.get("type") if isinstance(fmt, dict) else None
    rate = fmt.get("rate") if isinstance(fmt, dict) else None
    return SessionStarted(
        session_id,
        _number(session.get("expires_at")),
        fmt_type if isinstance(fmt_type, str) else None,
        rate if isinstance(rate, int) and not isinstance(rate, bool) else None,
        session,
        _str(data, "client_event_id", default=None),
    )


def _response_event(data: dict[str, Any]) -> FunctionCall | ResponseStatus | None:
    delegation_id = _str(data, "delegation_id", default=None)
    nested = _dict(data, "event")
    kind = nested.get("type")
    if kind == "response.output_item.done":
        item = _dict(nested, "item")
        if item.get("type") != "function_call":
            return None
        arguments = item.get("arguments", "")
        if not isinstance(arguments, str) or len(arguments) > MAX_ARGUMENTS_CHARS:
            raise _Malformed("arguments")
        return FunctionCall(delegation_id, _str(item, "call_id"), _str(item, "name"), arguments)
    if kind in ("response.created", "response.completed", "response.failed", "response.incomplete"):
        response = nested.get("response")
        response_id = response.get("id") if isinstance(response, dict) else None
        if not isinstance(response_id, str) or len(response_id) > MAX_ID_CHARS:
            response_id = None
        return ResponseStatus(delegation_id, kind.removeprefix("response."), response_id)
    return None


def _error(data: dict[str, Any]) -> ErrorEvent:
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}

    def field_(key: str) -> str | None:
        value = error.get(key)
        return value[:MAX_TEXT_CHARS] if isinstance(value, str) else None

    client_event_id = field_("client_event_id") or _str(data, "client_event_id", default=None)
    return ErrorEvent(
        field_("type") or "error",
        field_("code"),
        field_("message") or "",
        field_("param"),
        client_event_id,
    )


def _closed(data: dict[str, Any]) -> SessionClosed:
    reason = data.get("reason")
    usage = data.get("usage")
    seconds = _seconds(usage.get("seconds")) if isinstance(usage, dict) else None
    return SessionClosed(reason if reason in CLOSE_REASONS else "unknown", seconds)


def _seconds(value: Any) -> float | None:
    seconds = _number(value)
    return seconds if seconds is not None and seconds <= MAX_USAGE_SECONDS else None


def _usage(data: dict[str, Any]) -> UsageUpdated:
    seconds = _seconds(_dict(data, "usage").get("seconds"))
    if seconds is None:
        raise _Malformed("usage.seconds")
    return UsageUpdated(seconds)


def _appended(kind: str) -> Any:
    def parse(data: dict[str, Any]) -> Appended:
        return Appended(kind, _str(data, "client_event_id", default=None))

    return parse


_PARSERS: dict[str, Any] = {
    # Most frequent first: the continuous output track dominates.
    "session.output_audio.delta": _audio,
    "session.output_transcript.delta": lambda d: OutputTranscript(
        _text(d, "delta"), _int(d, "start_ms"), _int(d, "end_ms")
    ),
    "session.input_transcript.delta": lambda d: InputTranscript(
        _text(d, "delta"), _int(d, "start_ms"), _int(d, "end_ms")
    ),
    "response.event": _response_event,
    "session.usage.updated": _usage,
    "session.delegation.created": lambda d: DelegationCreated(
        _str(_dict(d, "delegation"), "id"),
        _str(_dict(d, "delegation"), "target", default="client"),
        _str(_dict(d, "delegation"), "response_id", default=None),
    ),
    "session.started": _session_started,
    "session.updated": lambda d: SessionUpdated(_str(d, "client_event_id", default=None)),
    "session.instructions.appended": _appended("instructions"),
    "session.thinking.appended": _appended("thinking"),
    "session.commentary.appended": _appended("commentary"),
    "session.closed": _closed,
    "error": _error,
}


class LiveEventParser:
    """Frames in, typed events out; counts what it drops instead of logging per frame."""

    def __init__(self) -> None:
        self.ignored: Counter[str] = Counter()
        self.malformed = 0
        # What was wrong with the last malformed frame ("not JSON", "<type>: <field>"), for
        # the client's log line; never the frame itself (it may be megabytes).
        self.problem = ""

    def parse(self, frame: bytes | str) -> LiveServerEvent | None:
        try:
            data = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.malformed += 1
            self.problem = "not JSON"
            return None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self.malformed += 1
            self.problem = "not an object with a string type"
            return None
        kind: str = data["type"]
        parser = _PARSERS.get(kind)
        if parser is None:
            # Bounded: a hostile server sending random types must not grow the counter forever.
            if kind in self.ignored or len(self.ignored) < 64:
                self.ignored[kind[:64]] += 1
            return None
        try:
            return parser(data)
        except (_Malformed, KeyError, TypeError, ValueError, AttributeError) as exc:
            self.malformed += 1
            self.problem = f"{kind}: bad {exc.args[0] if exc.args else type(exc).__name__}"[:200]
            return None


__all__ = [
    "CLOSE_REASONS",
    "MAX_ARGUMENTS_CHARS",
    "MAX_AUDIO_BYTES",
    "MAX_TEXT_CHARS",
    "Appended",
    "ConnectionLost",
    "DelegationCreated",
    "ErrorEvent",
    "FunctionCall",
    "InputTranscript",
    "LiveEventParser",
    "LiveServerEvent",
    "OutputAudio",
    "OutputTranscript",
    "ResponseStatus",
    "SessionClosed",
    "SessionStarted",
    "SessionUpdated",
    "UsageUpdated",
]
