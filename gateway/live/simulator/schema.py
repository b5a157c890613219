"""GPT-Live client-event validation: a hand-written mirror of `openai.types.live.ClientEvent`
(openai 3.63.0), so that the simulator needs no `openai` at runtime.

The service's configuration is a strict object (gpt-live-protocol.md section 1 "Strictness"):
an unknown key is `unknown_parameter` with the dotted `param` ("session.voice"), a missing one
`missing_required_parameter`, a wrong JSON type `invalid_type` (ASSUMED wording, as in the
Realtime tables) and a value out of its set `invalid_value`. An unknown event `type` gets an
`invalid_value` error whose message lists the 15 supported types (section 1, TRV canary).

The tables are built from gateway/sim_shared/checks.py, so tests/live_simulator/
test_schema_drift.py can walk them next to the SDK's models. Deliberate differences from the
SDK, each reviewed there:
- `delegation_id` of the three appends is required (nullable): the SDK types it Optional but
  its docstring and the guide say "Required, nullable" (section 3a);
- a `function_call_output` needs `call_id` (Optional in the SDK's Responses model; without it
  the result cannot be matched to a call);
- `response.item.create` takes message, function_call and function_call_output items only
  (the simulator runs no hosted tools); `decision.item.create` items are checked as objects
  only (the simulator implements no Decisions).
"""

from __future__ import annotations

from typing import Any

from gateway.sim_shared.checks import (
    Check,
    Invalid,
    bad_type,
    c_any,
    c_bool,
    c_either,
    c_enum,
    c_int,
    c_list,
    c_nullable,
    c_obj,
    c_str,
    c_tagged,
    envelope_problem,
    join,
    typed,
)

__all__ = [
    "CLIENT_EVENT_TYPES",
    "EVENT_FIELDS",
    "IMMUTABLE_FIELDS",
    "SESSION_CONFIG",
    "SESSION_UPDATE",
    "Invalid",
    "format_problem",
    "limits_problem",
    "validate_client_event",
]

CLIENT_EVENT_TYPES = (
    "session.start",
    "session.update",
    "session.input_audio.append",
    "session.input_audio.mute",
    "session.input_audio.unmute",
    "session.output_audio.fixture.play",
    "session.instructions.append",
    "session.thinking.append",
    "session.commentary.append",
    "decision.create",
    "decision.item.create",
    "decision.item.delete",
    "response.item.create",
    "response.create",
    "session.close",
)

# audio.format: one object for input and output (section 2). The SDK types the G.711 rate as a
# plain int ("G.711 audio uses 8000 Hz"); any other G.711 rate is refused by
# `format_problem` below (undocumented, so refused).
AUDIO_FORMAT = c_tagged(
    {
        "audio/pcm": c_obj({"type": c_any, "rate": c_enum(16000, 24000)}),
        "audio/pcmu": c_obj({"type": c_any, "rate": c_int()}),
        "audio/pcma": c_obj({"type": c_any, "rate": c_int()}),
    }
)
VOICE = c_either(c_str, c_obj({"id": c_str}))
AUDIO = c_obj(optional={"format": AUDIO_FORMAT, "output": c_obj(optional={"voice": VOICE})})

_QUESTION_INSTRUCTIONS = c_either(c_str, c_list(c_any))
QUESTION = c_tagged(
    {
        "choice": c_obj(
            {"type": c_any, "choices": c_list(c_any), "instructions": _QUESTION_INSTRUCTIONS},
            {"name": c_str},
        ),
        "predicate": c_obj(
            {"type": c_any, "instructions": _QUESTION_INSTRUCTIONS}, {"name": c_str}
        ),
        "score": c_obj(
            {"type": c_any, "instructions": _QUESTION_INSTRUCTIONS, "levels": c_list(c_any)},
            {"name": c_str},
        ),
    }
)
TRIGGERS = c_list(
    c_obj(
        {
            "type": c_enum("decisions"),
            "event_type": c_enum(
                "session.input_transcript.delta", "session.output_transcript.delta"
            ),
            "decisions": c_obj({"questions": c_list(QUESTION)}),
        }
    )
)

_MCP_FIELDS: dict[str, Check] = {
    "allowed_callers": c_list(c_enum("direct", "programmatic")),
    "allowed_tools": c_any,
    "authorization": c_str,
    "connector_id": c_str,
    "defer_loading": c_bool,
    "headers": c_any,
    "require_approval": c_any,
    "server_description": c_str,
    "server_label": c_str,
    "server_url": c_str,
    "tunnel_id": c_str,
}
_TYPE_ONLY_TOOLS = (
    "web_search",
    "file_search",
    "code_interpreter",
    "image_generation",
    "custom",
    "namespace",
    "tool_search",
    "programmatic_tool_calling",
    "computer",
    "apply_patch",
)
TOOL = c_tagged(
    {
        "function": c_obj(
            {"type": c_any, "name": c_str},
            {"description": c_str, "parameters": c_any, "strict": c_bool},
        ),
        "shell": c_obj({"type": c_any}, {"environment": c_any}),
        "mcp": c_obj({"type": c_any}, _MCP_FIELDS),
        **{name: typed(name) for name in _TYPE_ONLY_TOOLS},
    }
)
_CHOICE_TYPES_ONLY = (
    "file_search",
    "web_search",
    "web_search_preview",
    "image_generation",
    "computer",
    "code_interpreter",
    "programmatic_tool_calling",
    "shell",
    "apply_patch",
)
_TOOL_CHOICE_OBJECT: dict[str, Check] = {
    "function": c_obj({"type": c_any, "name": c_str}),
    "mcp": c_obj({"type": c_any, "name": c_str, "server_label": c_str}),
    "custom": c_obj({"type": c_any, "name": c_str}),
    **{name: typed(name) for name in _CHOICE_TYPES_ONLY},
}
TOOL_CHOICE = c_either(
    c_enum("auto", "none", "required"),
    c_tagged(
        {
            **_TOOL_CHOICE_OBJECT,
            "allowed_tools": c_obj(
                {"type": c_any, "tools": c_list(c_tagged(_TOOL_CHOICE_OBJECT))},
                {"mode": c_enum("none", "auto", "required")},
            ),
        }
    ),
)
_RESPONSES_OPTIONAL: dict[str, Check] = {
    "instructions": c_str,
    # The guide gives >= 16 (gpt-live-protocol.md section 2); the SDK a plain int.
    "max_output_tokens": c_int(16),
    "parallel_tool_calls": c_bool,
    "reasoning": c_obj(
        optional={
            "effort": c_enum("none", "minimal", "low", "medium", "high", "xhigh"),
            "summary": c_enum("concise", "detailed", "auto"),
        }
    ),
    "service_tier": c_enum(
        "auto", "default", "fast_tier_temp_pilot", "flex", "priority", "ultrafast"
    ),
    "text": c_obj(optional={"verbosity": c_enum("low", "medium", "high")}),
    "tool_choice": TOOL_CHOICE,
    "tools": c_list(TOOL),
}
RESPONSES_CONFIG = c_obj({"model": c_str}, _RESPONSES_OPTIONAL)
RESPONSES_UPDATE = c_obj(optional={"model": c_str, **_RESPONSES_OPTIONAL})
DECISIONS_CONFIG = c_obj({"model": c_str, "questions": c_list(QUESTION)})
DECISIONS_UPDATE = c_obj(optional={"model": c_str, "questions": c_list(QUESTION)})
_ACK = {"acknowledgement_delay_ms": c_int(0)}
CLIENT_DELEGATION = c_obj({"type": c_any}, _ACK)
DELEGATION = c_nullable(
    c_tagged(
        {
            "client": CLIENT_DELEGATION,
            "responses": c_obj({"type": c_any, "responses": RESPONSES_CONFIG}, _ACK),
            "decisions": c_obj({"type": c_any, "decisions": DECISIONS_CONFIG}, _ACK),
        }
    )
)
DELEGATION_UPDATE = c_nullable(
    c_tagged(
        {
            "client": CLIENT_DELEGATION,
            "responses": c_obj({"type": c_any}, {**_ACK, "responses": RESPONSES_UPDATE}),
            "decisions": c_obj({"type": c_any}, {**_ACK, "decisions": DECISIONS_UPDATE}),
        }
    )
)

_HISTORY_COMMON: dict[str, Check] = {
    "id": c_str,
    "status": c_enum("incomplete", "completed"),
    "type": c_enum("message"),
}
_INPUT_TEXT = c_obj({"text": c_str}, {"type": c_enum("input_text")})
INITIAL_ITEM = c_tagged(
    {
        "developer": c_obj({"role": c_any, "content": c_list(_INPUT_TEXT)}, _HISTORY_COMMON),
        "user": c_obj({"role": c_any, "content": c_list(_INPUT_TEXT)}, _HISTORY_COMMON),
        "assistant": c_obj(
            {
                "role": c_any,
                "content": c_list(c_obj({"text": c_str}, {"type": c_enum("text", "output_text")})),
            },
            _HISTORY_COMMON,
        ),
    },
    tag="role",
)
CLIENT_CONFIG = c_obj(
    {
        "data_channel": c_obj(
            optional={
                "allowed_client_events": c_either(c_enum("all"), c_list(c_str)),
                "allowed_server_events": c_either(c_enum("all"), c_list(c_any)),
            }
        )
    }
)
SESSION_CONFIG = c_obj(
    {"model": c_str},
    {
        "audio": AUDIO,
        "client": CLIENT_CONFIG,
        "delegation": DELEGATION,
        "input": c_list(INITIAL_ITEM),
        "instructions": c_str,
        "safety_identifier": c_str,
        "store": c_bool,
        "triggers": TRIGGERS,
    },
)
SESSION_UPDATE = c_obj(optional={"delegation": DELEGATION_UPDATE, "triggers": TRIGGERS})
# Keys of the start-up configuration that exist but cannot change (section 2): a session.update
# naming one gets immutable_field_update, not unknown_parameter.
IMMUTABLE_FIELDS = frozenset(SESSION_CONFIG.fields) - {"delegation", "triggers"}  # type: ignore[attr-defined]

_OUTPUT = c_either(c_str, c_list(c_any))
_ITEM_STATUS = c_enum("in_progress", "completed", "incomplete")
RESPONSE_ITEMS: dict[str, Check] = {
    "message": c_obj(
        {
            "role": c_enum("user", "assistant", "system", "developer"),
            "content": c_either(c_str, c_list(c_any)),
        },
        {"type": c_any, "phase": c_enum("commentary", "final_answer"), "status": _ITEM_STATUS},
    ),
    "function_call": c_obj(
        {"type": c_any, "arguments": c_str, "call_id": c_str, "name": c_str},
        {"id": c_str, "namespace": c_str, "status": _ITEM_STATUS},
    ),
    "function_call_output": c_obj(
        {"type": c_any, "call_id": c_str, "output": _OUTPUT},
        {"id": c_str, "name": c_str, "namespace": c_str, "status": _ITEM_STATUS},
    ),
}


def _response_item(value: Any, path: str) -> None:
    """A Responses input item; a message may leave out `type` (EasyInputMessage)."""
    if not isinstance(value, dict):
        raise bad_type(path, "an object", value)
    kind = value.get("type", "message" if "role" in value else None)
    if kind is None:
        param = join(path, "type")
        raise Invalid(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if kind not in RESPONSE_ITEMS:
        supported = ", ".join(f"'{t}'" for t in RESPONSE_ITEMS)
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: {supported}.",  # ASSUMED (sim limit)
            join(path, "type"),
        )
    RESPONSE_ITEMS[kind](value, path)


def _decision_item(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise bad_type(path, "an object", value)


_APPEND = ({"content": c_str, "delegation_id": c_nullable(c_str)}, {})
EVENT_FIELDS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "session.start": ({"session": SESSION_CONFIG}, {}),
    "session.update": ({"session": SESSION_UPDATE}, {}),
    "session.input_audio.append": ({"audio": c_str}, {}),
    "session.input_audio.mute": ({}, {}),
    "session.input_audio.unmute": ({}, {}),
    "session.output_audio.fixture.play": ({"audio": c_str}, {}),
    "session.instructions.append": _APPEND,
    "session.thinking.append": _APPEND,
    "session.commentary.append": _APPEND,
    "decision.create": ({"event_id": c_str}, {}),
    "decision.item.create": ({"item": _decision_item}, {}),
    "decision.item.delete": ({"item_id": c_str}, {}),
    "response.item.create": ({"item": _response_item}, {}),
    "response.create": ({}, {}),
    "session.close": ({}, {}),
}
assert tuple(EVENT_FIELDS) == CLIENT_EVENT_TYPES

# One checker per event type, built once (input audio arrives 50 times a second per call).
_EVENT_CHECKS: dict[str, Check] = {
    kind: c_obj({**required, "type": c_any}, {"event_id": c_str, **optional})
    for kind, (required, optional) in EVENT_FIELDS.items()
}


def format_problem(audio_format: dict[str, Any], path: str) -> Invalid | None:
    """G.711 is documented at 8000 Hz only (section 2); other rates are refused (ASSUMED)."""
    if audio_format.get("type") in ("audio/pcmu", "audio/pcma") and audio_format["rate"] != 8000:
        param = join(path, "rate")
        return Invalid(
            "invalid_value",
            f"Invalid '{param}': {audio_format['type']} audio uses 8000 Hz, "
            f"got {audio_format['rate']}.",
            param,
        )
    return None


# Documented limits (gpt-live-protocol.md section 2); tokens estimated as characters / 4. The
# codes the service uses for them are UNKNOWN: invalid_value is ASSUMED.
MAX_HISTORY_MESSAGES = 128
MAX_HISTORY_TOKENS = 8192
MAX_INSTRUCTIONS_TOKENS = 16384


def _tokens(text: str) -> int:
    return -(-len(text) // 4)


def limits_problem(session: dict[str, Any]) -> Invalid | None:
    """What the schema's types cannot say: history size, one text part per history message,
    instruction length, at most one trigger per transcript event type."""
    history = session.get("input") or []
    if len(history) > MAX_HISTORY_MESSAGES:
        return Invalid(
            "invalid_value",
            f"Invalid 'session.input': at most {MAX_HISTORY_MESSAGES} messages, "
            f"got {len(history)}.",
            "session.input",
        )
    for index, item in enumerate(history):
        if len(item["content"]) != 1:
            param = f"session.input[{index}].content"
            return Invalid(
                "invalid_value", f"Invalid '{param}': supply exactly one text part.", param
            )
    if sum(_tokens(item["content"][0]["text"]) for item in history) > MAX_HISTORY_TOKENS:
        return Invalid(
            "invalid_value",
            f"Invalid 'session.input': at most {MAX_HISTORY_TOKENS} rendered tokens.",
            "session.input",
        )
    if _tokens(session.get("instructions") or "") > MAX_INSTRUCTIONS_TOKENS:
        return Invalid(
            "invalid_value",
            f"Invalid 'session.instructions': at most {MAX_INSTRUCTIONS_TOKENS} tokens.",
            "session.instructions",
        )
    return _triggers_problem(session.get("triggers") or [])


def _triggers_problem(triggers: list[dict[str, Any]]) -> Invalid | None:
    seen: set[str] = set()
    for index, trigger in enumerate(triggers):
        if trigger["event_type"] in seen:
            param = f"session.triggers[{index}].event_type"
            return Invalid(
                "invalid_value",
                f"Invalid '{param}': at most one trigger per transcript event type.",
                param,
            )
        seen.add(trigger["event_type"])
    return None


def validate_client_event(event: Any) -> Invalid | None:
    """None when the event is acceptable, else the error the service would send."""
    problem = envelope_problem(event, _EVENT_CHECKS, CLIENT_EVENT_TYPES)
    if problem is not None:
        return problem
    kind = event["type"]
    check = _EVENT_CHECKS[kind]
    try:
        if kind == "session.update":
            _check_immutable(event.get("session"))
        check(event, "")
        if kind == "session.start":
            fmt = (event["session"].get("audio") or {}).get("format")
            if fmt is not None:
                problem = format_problem(fmt, "session.audio.format")
                if problem is not None:
                    return problem
            return limits_problem(event["session"])
        if kind == "session.update" and "triggers" in event["session"]:
            return _triggers_problem(event["session"]["triggers"])
    except Invalid as exc:
        return exc
    return None


def _check_immutable(session: Any) -> None:
    if not isinstance(session, dict):
        return
    for key in session:
        if key in IMMUTABLE_FIELDS:
            param = f"session.{key}"
            raise Invalid(
                "immutable_field_update",
                f"Cannot update '{param}' after the session has started.",  # ASSUMED wording
                param,
            )
