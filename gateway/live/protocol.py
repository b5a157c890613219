"""GPT-Live client events, built as dicts (frames for the audio hot path).

The wire schema is the `openai` package's `openai.types.live` (tests/live/validate.py checks
every event we build against it, unknown keys rejected). Reference:
../shared/reference/gpt-live-protocol.md (sections 2, 3a, 4, 6, 8, 10).

What differs from Realtime GA (gateway/realtime/protocol.py): one `session.start` carries the
whole configuration and the conversation so far (`input`); one `audio.format` covers both
directions and is immutable, so the call's G.711 law is chosen here and never transcoded;
tools live in `delegation.responses.tools` (the Responses backend decides on them, we execute
them); there is no commit, cancel or truncate.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

DEFAULT_LIVE_MODEL = "gpt-live-1"
DEFAULT_DELEGATION_MODEL = "gpt-5-mini"
G711_RATE = 8000  # openai.types.live.audio_format: "G.711 audio uses 8000 Hz"
LIVE_FORMATS = ("audio/pcmu", "audio/pcma")
# Token estimates, one rule for every limit below (`text_cost`, in sixths of a token so that
# it stays in integers): an ASCII character is 1/3 of a token (2 sixths: a conservative bound
# for English and most European text), any other character half a token per UTF-8 byte (3
# sixths per byte: CJK 1.5 tokens, emoji 2). Text in other scripts takes more tokens per
# character, and 3 characters per token would let non-Latin text past the service's caps.
_SIXTHS = 6
_ASCII_SIXTHS = 2
_OTHER_SIXTHS_PER_BYTE = 3
# Start-up history limits (reference section 2, `input`): 128 messages and 8,192 rendered
# tokens by default, plus 4 tokens per message for its framing.
MAX_INPUT_MESSAGES = 128
MAX_INPUT_TOKENS = 8192
_TOKENS_PER_MESSAGE = 4
_CUT_MARK = "…"  # leads a turn cut to its end (initial_items)
# A cut turn shorter than this is not worth a message (initial_items).
_MIN_CUT_CHARS = 60
# One append holds at most 500 tokens (reference section 7); longer texts are cut. No text of
# more than MAX_APPEND_CHARS characters fits (all ASCII, 3 per token).
MAX_APPEND_TOKENS = 500
MAX_APPEND_CHARS = MAX_APPEND_TOKENS * _SIXTHS // _ASCII_SIXTHS

LiveFormat = Literal["audio/pcmu", "audio/pcma"]


@dataclass(frozen=True, slots=True)
class LiveFunctionTool:
    """A function the Responses backend may call; the gateway executes it (reference 6)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        tool: dict[str, Any] = {"type": "function", "name": self.name}
        if self.description:
            tool["description"] = self.description
        tool["parameters"] = self.parameters
        return tool


@dataclass(frozen=True, slots=True)
class LiveSessionConfig:
    """What one call's `session.start` says; immutable for the session's life (reference 2)."""

    model: str = DEFAULT_LIVE_MODEL
    audio_format: LiveFormat = "audio/pcmu"
    voice: str = "marin"
    instructions: str = ""
    # Responses delegation when tools are given (recommended by reference 6), else client.
    tools: tuple[LiveFunctionTool, ...] = ()
    delegation_model: str = DEFAULT_DELEGATION_MODEL
    delegation_instructions: str = ""
    tool_choice: str = "auto"
    max_output_tokens: int | None = None  # the backend's, per delegated response (>= 16)
    reasoning_effort: str | None = None
    store: bool = False
    # Append a "Delegation policy" naming the tools to the voice model's instructions: GPT-Live
    # delegates only what its instructions tell it to (reference section 6, PROMPT/MIG).
    delegation_policy: bool = True

    @property
    def responses_mode(self) -> bool:
        return bool(self.tools)

    @property
    def law(self) -> str:
        return "PCMA" if self.audio_format == "audio/pcma" else "PCMU"

    def delegation(self) -> dict[str, Any] | None:
        """`responses` with our function tools; None (client delegation) without tools."""
        if not self.tools:
            return None
        responses: dict[str, Any] = {
            "model": self.delegation_model,
            "tools": [tool.to_dict() for tool in self.tools],
            # One call at a time (reference 6, MIG): end_call and transfer_call must not race
            # a second call of the same batch.
            "parallel_tool_calls": False,
            "tool_choice": _tool_choice(self.tool_choice),
        }
        if self.delegation_instructions:
            responses["instructions"] = self.delegation_instructions
        if self.max_output_tokens:
            responses["max_output_tokens"] = self.max_output_tokens
        if self.reasoning_effort:
            responses["reasoning"] = {"effort": self.reasoning_effort}
        return {"type": "responses", "responses": responses}

    def to_session(self, history: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        session: dict[str, Any] = {
            "model": self.model,
            "audio": {
                "format": {"type": self.audio_format, "rate": G711_RATE},
                "output": {"voice": self.voice},
            },
            "store": self.store,
        }
        instructions = self.instructions
        if self.tools and self.delegation_policy:
            instructions = f"{instructions}\n\n{delegation_policy(self.tools)}".strip()
        if instructions:
            session["instructions"] = instructions
        items = initial_items(history)
        if items:
            session["input"] = items
        delegation = self.delegation()
        if delegation is not None:
            session["delegation"] = delegation
        return session


def delegation_policy(tools: Sequence[LiveFunctionTool]) -> str:
    """The voice model's side of the tools: when to delegate (the backend model then picks the
    tool). One line per tool, from its description."""
    lines = [
        "Delegation policy: delegate the task when the caller's request needs one of these "
        "actions; keep talking naturally while it runs, and say the result in your own words."
    ]
    for tool in tools:
        description = " ".join(tool.description.split())[:200]
        lines.append(f"- {tool.name}: {description}" if description else f"- {tool.name}")
    return "\n".join(lines)


def _tool_choice(choice: str) -> str | dict[str, str]:
    """realtime.tool_choice as the delegation's: auto | none | required | function:<name>."""
    kind, _, name = choice.partition(":")
    if kind == "function" and name:
        return {"type": "function", "name": name}
    return choice


def format_for_codec(codec: str) -> LiveFormat:
    """The Live audio format of a negotiated G.711 codec (PCMU | PCMA): passed through as is."""
    if codec == "PCMA":
        return "audio/pcma"
    if codec == "PCMU":
        return "audio/pcmu"
    raise ValueError(f"GPT-Live takes G.711 only (PCMU, PCMA), not {codec!r}")


def text_cost(text: str) -> int:
    """`text`'s estimated tokens, in sixths of a token (see _SIXTHS above)."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    other_bytes = len(text.encode("utf-8", "surrogatepass")) - ascii_chars
    return ascii_chars * _ASCII_SIXTHS + other_bytes * _OTHER_SIXTHS_PER_BYTE


def _char_cost(char: str) -> int:
    if char < "\x80":
        return _ASCII_SIXTHS
    return len(char.encode("utf-8", "surrogatepass")) * _OTHER_SIXTHS_PER_BYTE


def _head_within(text: str, budget: int) -> str:
    """The longest start of `text` whose cost is at most `budget` sixths."""
    if len(text) * _ASCII_SIXTHS <= budget and text.isascii():
        return text
    text = text[: budget // _ASCII_SIXTHS]  # no character costs less than an ASCII one
    for index, char in enumerate(text):
        budget -= _char_cost(char)
        if budget < 0:
            return text[:index]
    return text


def _tail_within(text: str, budget: int) -> str:
    """The longest end of `text` whose cost is at most `budget` sixths."""
    if budget <= 0:
        return ""
    text = text[-(budget // _ASCII_SIXTHS) :]
    if text.isascii():
        return text
    for index in range(len(text) - 1, -1, -1):
        budget -= _char_cost(text[index])
        if budget < 0:
            return text[index + 1 :]
    return text


def _message_tokens(text: str) -> int:
    return -(-text_cost(text) // _SIXTHS) + _TOKENS_PER_MESSAGE


def initial_items(history: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """(role, text) turns as `InitialItem`s, newest kept: at most MAX_INPUT_MESSAGES and about
    MAX_INPUT_TOKENS (the oldest are dropped first). The turn that crosses the token budget is
    cut to its end (the words nearest the present), marked with a leading "…", rather than
    dropped with everything before it: one long turn, even the newest, must not leave the new
    session with no history at all. Roles: "assistant" (our bot), "system" (a developer
    message: operator texts, digits notes), anything else "user"."""
    items: list[dict[str, Any]] = []
    budget = MAX_INPUT_TOKENS
    for role, text in reversed(history):
        if not text:
            continue
        if len(items) >= MAX_INPUT_MESSAGES:
            break
        cost = _message_tokens(text)
        if cost > budget:
            room = (budget - _TOKENS_PER_MESSAGE) * _SIXTHS - text_cost(_CUT_MARK)
            tail = _tail_within(text, room)
            if len(tail) < _MIN_CUT_CHARS:
                break
            text = _CUT_MARK + tail
            cost = budget
        budget -= cost
        if role == "assistant":
            part: dict[str, Any] = {"type": "output_text", "text": text}
            items.append({"type": "message", "role": "assistant", "content": [part]})
        else:
            kind = "developer" if role == "system" else "user"
            part = {"type": "input_text", "text": text}
            items.append({"type": "message", "role": kind, "content": [part]})
        if budget <= 0:
            break
    items.reverse()
    return items


# --------------------------------------------------------------------------------------------
# Client events


def _with_id(event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    if event_id is not None:
        event["event_id"] = event_id
    return event


def session_start(
    config: LiveSessionConfig,
    history: Sequence[tuple[str, str]] = (),
    event_id: str | None = None,
) -> dict[str, Any]:
    return _with_id({"type": "session.start", "session": config.to_session(history)}, event_id)


def session_update_tools(config: LiveSessionConfig, event_id: str | None = None) -> dict[str, Any]:
    """A sparse `session.update` replacing the delegation's tools (Responses mode only; the
    delegation type itself is immutable)."""
    delegation = config.delegation()
    if delegation is None:
        raise ValueError("session.update of delegation tools needs Responses delegation")
    update = {"type": "responses", "responses": {"tools": delegation["responses"]["tools"]}}
    return _with_id({"type": "session.update", "session": {"delegation": update}}, event_id)


# The append frame is '{"type":"session.input_audio.append","audio":"<base64>"}'. Base64 needs
# no JSON escaping, so the frame is prefix + b64 + suffix without a JSON encoder (hot path).
_APPEND_PREFIX = b'{"type":"session.input_audio.append","audio":"'
_APPEND_SUFFIX = b'"}'
# The append's JSON text is PREFIX + base64(audio) + SUFFIX: the link builds the wire frame
# from the parts (gateway/wsock.py `_send_text`); `input_audio_append` is the same text.
INPUT_AUDIO_APPEND_PARTS = (_APPEND_PREFIX, _APPEND_SUFFIX)


def input_audio_append(audio: bytes) -> bytes:
    """The finished JSON text frame for one chunk of G.711 bytes (the hot path)."""
    return b"".join((_APPEND_PREFIX, binascii.b2a_base64(audio, newline=False), _APPEND_SUFFIX))


def cut_to_append(text: str) -> str:
    """`text` cut to fit one append (MAX_APPEND_TOKENS, estimated by `text_cost`): a caller's
    or operator's text past the service's cap would have the append refused."""
    return _head_within(text, MAX_APPEND_TOKENS * _SIXTHS)


def _append(kind: str, content: str, delegation_id: str | None, event_id: str | None) -> dict:
    event = {
        "type": f"session.{kind}.append",
        "content": cut_to_append(content),
        "delegation_id": delegation_id,  # required, nullable: null = session-wide
    }
    return _with_id(event, event_id)


def instructions_append(
    content: str, delegation_id: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """Trusted instructions (can make the model speak now: greeting, prompts; reference 7)."""
    return _append("instructions", content, delegation_id, event_id)


def thinking_append(
    content: str, delegation_id: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """Silent context the model should know (digits, operator notes; reference 8)."""
    return _append("thinking", content, delegation_id, event_id)


def commentary_append(
    content: str, delegation_id: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """Content the model should say aloud, in its own words."""
    return _append("commentary", content, delegation_id, event_id)


def function_call_output(call_id: str, output: str, event_id: str | None = None) -> dict[str, Any]:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return _with_id({"type": "response.item.create", "item": item}, event_id)


def user_message(text: str, event_id: str | None = None) -> dict[str, Any]:
    """A user message for the Responses backend (typed input such as keypad digits); cut like
    an append (operator texts can be long; the same text goes out as a thinking append)."""
    part = {"type": "input_text", "text": cut_to_append(text)}
    item = {"type": "message", "role": "user", "content": [part]}
    return _with_id({"type": "response.item.create", "item": item}, event_id)


def response_create(event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "response.create"}, event_id)


def session_close(event_id: str | None = None) -> dict[str, Any]:
    return _with_id({"type": "session.close"}, event_id)


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


__all__ = [
    "DEFAULT_DELEGATION_MODEL",
    "DEFAULT_LIVE_MODEL",
    "G711_RATE",
    "LIVE_FORMATS",
    "MAX_INPUT_MESSAGES",
    "MAX_INPUT_TOKENS",
    "LiveFunctionTool",
    "LiveSessionConfig",
    "commentary_append",
    "cut_to_append",
    "encode",
    "format_for_codec",
    "function_call_output",
    "initial_items",
    "input_audio_append",
    "instructions_append",
    "response_create",
    "session_close",
    "session_start",
    "session_update_tools",
    "text_cost",
    "thinking_append",
    "user_message",
]
