"""Client-event validation: a hand-written mirror of the Realtime GA schema.

The service rejects unknown parameters, so this does too; every rejection is an `Invalid` with the
error code, message and param the service sends (realtime-protocol.md section 7). The tables stay
readable by a program (`fields`, `variants`, `inner`, `alternatives` on each checker), so
tests/realtime/test_simulator_sdk_drift.py compares them with the `openai` SDK's models. Codes the
reference does not give are marked ASSUMED (invalid_type wording).
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
    c_num,
    c_obj,
    c_str,
    c_tagged,
    envelope_problem,
    join,
    typed,
)

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


AUDIO_FORMAT = c_tagged(
    {
        # GA: rate exists only for audio/pcm and must be 24000; pcmu/pcma take only `type`.
        "audio/pcm": typed("audio/pcm", rate=c_enum(24000)),
        "audio/pcmu": typed("audio/pcmu"),
        "audio/pcma": typed("audio/pcma"),
    }
)
TURN_DETECTION = c_nullable(
    c_tagged(
        {
            "server_vad": typed(
                "server_vad",
                threshold=c_num(0, 1),
                prefix_padding_ms=c_int(0),
                silence_duration_ms=c_int(0),
                idle_timeout_ms=c_nullable(c_int(0)),
                create_response=c_bool,
                interrupt_response=c_bool,
            ),
            "semantic_vad": typed(
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
        "input_text": typed("input_text", text=c_str),
        "input_audio": typed("input_audio", audio=c_str, transcript=c_nullable(c_str)),
        "input_image": typed("input_image", image_url=c_str, detail=c_enum("auto", "low", "high")),
    }
)
SYSTEM_CONTENT = c_tagged({"input_text": typed("input_text", text=c_str)})
ASSISTANT_CONTENT = c_tagged(
    {
        "output_text": typed("output_text", text=c_str),
        "output_audio": typed("output_audio", audio=c_str, transcript=c_nullable(c_str)),
    }
)


def _message_item(value: Any, path: str) -> None:
    if "role" not in value:
        param = join(path, "role")
        raise Invalid(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    c_enum("user", "system", "assistant")(value["role"], join(path, "role"))
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
        raise bad_type(path, "an object", value)
    for key, element in value.items():
        c_str(element, f"{path}.{key}")
    if len(value) > 16:
        raise Invalid("invalid_value", f"Invalid '{path}': at most 16 key-value pairs.", path)


EVENT_FIELDS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
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


# One checker per event type, built once: building it per event was a tenth of the simulator's
# time per input_audio_buffer.append (50 per call per second; cProfile under bench/sipp_load.py).
_EVENT_CHECKS: dict[str, Check] = {
    kind: c_obj({**required, "type": c_any}, {**optional, "event_id": c_str})
    for kind, (required, optional) in EVENT_FIELDS.items()
}


def validate_client_event(event: Any) -> Invalid | None:
    """None when the event is acceptable, else the error the service would send."""
    problem = envelope_problem(event, _EVENT_CHECKS, CLIENT_EVENT_TYPES)
    if problem is not None:
        return problem
    kind = event["type"]
    try:
        _EVENT_CHECKS[kind](event, "")
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
