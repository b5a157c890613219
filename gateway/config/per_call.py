"""The sections a route may override per call ([realtime] and [calls]): their checks, and
`route_config`, which applies a route's overrides and checks the result.

Run at load for the global sections and for every route, so a call never starts with a value
the Realtime session would refuse.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from gateway.config.checks import SIP_URI, check_choice, check_plain_http, parses_as_uri
from gateway.config.convert import convert_value
from gateway.config.schema import CallsConfig, ConfigError, GatewayConfig, RealtimeConfig
from gateway.realtime.models import REASONING_EFFORTS, takes_reasoning

# Route keys that make no sense per call (connection-level or secret).
_ROUTE_FORBIDDEN = {"realtime": {"url", "api_key", "api_key_env", "provider", "simulator"}}


def route_config(config: GatewayConfig, index: int) -> GatewayConfig:
    """The configuration calls on `config.routes[index]` use: the global [realtime] and [calls]
    with the route's overrides applied (a `dataclasses.replace`), its tools selected.

    Raises ConfigError naming `routes[i].<section>.<key>`."""
    route = config.routes[index]
    prefix = f"routes[{index}]"
    sections: dict[str, Any] = {}
    for section, overrides in (("realtime", route.realtime), ("calls", route.calls)):
        base = getattr(config, section)
        hints = typing.get_type_hints(type(base))
        known = {f.name for f in dataclasses.fields(base)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            where = f"{prefix}.{section}.{key}"
            if key not in known or key in _ROUTE_FORBIDDEN.get(section, ()):
                raise ConfigError(f"{where}: not a per-route {section} key")
            changes[key] = convert_value(hints[key], value, where)
        sections[section] = dataclasses.replace(base, **changes)
    tools = config.tools
    if "*" not in route.tools:
        tools = tuple(t for t in config.tools if t.name in route.tools)
    result = dataclasses.replace(config, tools=tools, **sections)
    try:
        validate_realtime(result)
        validate_calls(result)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}.{exc}") from None
    return result


# [realtime] keys with no GPT-Live counterpart (reference section 11): turn-taking, VAD,
# speech speed, transcription and truncation settings, MCP servers the Realtime service calls.
# Set (to anything but the default) with api = "live" they are configuration errors.
REALTIME_ONLY_KEYS = (
    "turn_detection",
    "eagerness",
    "vad_threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "idle_timeout_ms",
    "create_response",
    "interrupt_response",
    "noise_reduction",
    "transcription_model",
    "transcription_language",
    "transcription_prompt",
    "speed",
    "truncation",
    "truncation_retention_ratio",
    "mcp_servers",
)
LIVE_ONLY_KEYS = ("delegation_model", "delegation_instructions")
_LIVE_MODELS = re.compile(r"gpt-live[A-Za-z0-9._-]*")


def _validate_api(rt: RealtimeConfig) -> None:
    check_choice("realtime.api", rt.api, ("realtime", "live"))
    default = RealtimeConfig()
    wrong = REALTIME_ONLY_KEYS if rt.api == "live" else LIVE_ONLY_KEYS
    for key in wrong:
        if getattr(rt, key) != getattr(default, key):
            other = "realtime" if rt.api == "live" else "live"
            raise ConfigError(
                f"realtime.{key}: a {other}-only setting, not used with api = {rt.api!r} "
                f"(remove it, or use api = {other!r})"
            )
    if rt.api != "live":
        return
    if rt.model != default.model and not _LIVE_MODELS.fullmatch(rt.model):
        raise ConfigError(
            f"realtime.model: {rt.model!r} is not a GPT-Live model (gpt-live-1, gpt-live-1.1); "
            "leave it unset for gpt-live-1"
        )
    # The service takes at most 16,384 instruction tokens (reference section 2); at 3
    # characters a token this inline text could not fit (instructions_file is read at start).
    if len(rt.instructions) > 16_384 * 3:
        raise ConfigError(
            f"realtime.instructions: {len(rt.instructions)} characters, over GPT-Live's "
            "16,384-token limit"
        )
    if rt.tool_choice.startswith("mcp:"):
        raise ConfigError("realtime.tool_choice: mcp:<server> needs api = 'realtime'")
    if 0 < rt.max_output_tokens < 16:
        raise ConfigError(
            f"realtime.max_output_tokens: {rt.max_output_tokens} is below 16, the Responses "
            "backend's minimum with api = 'live'"
        )
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", rt.delegation_model):
        raise ConfigError(f"realtime.delegation_model: {rt.delegation_model!r} is not a model id")
    if len(rt.delegation_instructions) > 64_000:
        raise ConfigError("realtime.delegation_instructions: longer than 64000 characters")


def validate_realtime(config: GatewayConfig) -> None:
    rt = config.realtime
    _validate_api(rt)
    check_choice("realtime.provider", rt.provider, ("openai", "azure", "custom"))
    check_choice("realtime.simulator", rt.simulator, ("auto", "always", "never"))
    check_choice("realtime.turn_detection", rt.turn_detection, ("semantic_vad", "server_vad"))
    check_choice("realtime.eagerness", rt.eagerness, ("low", "medium", "high", "auto"))
    check_choice("realtime.noise_reduction", rt.noise_reduction, ("", "near_field", "far_field"))
    if not 0.0 <= rt.vad_threshold <= 1.0:
        raise ConfigError(f"realtime.vad_threshold: {rt.vad_threshold} is not within 0..1")
    for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        if getattr(rt, key) < 0:
            raise ConfigError(f"realtime.{key}: {getattr(rt, key)} must be >= 0")
    if not 0.5 <= rt.setup_timeout_s <= 60:
        raise ConfigError(f"realtime.setup_timeout_s: {rt.setup_timeout_s} is not in 0.5-60 s")
    if rt.session_cap_s <= rt.rollover_margin_s or rt.rollover_margin_s < 0:
        raise ConfigError(
            f"realtime.rollover_margin_s: {rt.rollover_margin_s} must be >= 0 and below "
            f"realtime.session_cap_s ({rt.session_cap_s})"
        )
    if not rt.voice:
        raise ConfigError("realtime.voice: must not be empty")
    if not 0 <= rt.reconnect_budget <= 100:
        raise ConfigError(f"realtime.reconnect_budget: {rt.reconnect_budget} is not in 0-100")
    if not 1 <= rt.reconnect_window_s <= 3600:
        raise ConfigError(
            f"realtime.reconnect_window_s: {rt.reconnect_window_s} is not in 1-3600 s"
        )
    _validate_session_fields(rt)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_MCP_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _validate_session_fields(rt: RealtimeConfig) -> None:
    """The issue-10 session.update fields: ranges the SDK's GA session model accepts."""
    if not rt.model:
        raise ConfigError("realtime.model: must not be empty")
    if not 0.25 <= rt.speed <= 1.5:
        raise ConfigError(f"realtime.speed: {rt.speed} is not in 0.25-1.5")
    if rt.transcription_language and not re.fullmatch(r"[a-z]{2,3}", rt.transcription_language):
        raise ConfigError(
            f"realtime.transcription_language: {rt.transcription_language!r} is not an "
            "ISO-639-1 code such as en or de"
        )
    if (rt.transcription_language or rt.transcription_prompt) and not rt.transcription_model:
        raise ConfigError(
            "realtime.transcription_model: required with transcription_language / "
            "transcription_prompt (e.g. gpt-4o-mini-transcribe)"
        )
    if not 0 <= rt.max_output_tokens <= 4096:
        raise ConfigError(
            f"realtime.max_output_tokens: {rt.max_output_tokens} is not in 1-4096 (0 = no limit)"
        )
    check_choice("realtime.truncation", rt.truncation, ("auto", "disabled", "retention_ratio"))
    if not 0.0 <= rt.truncation_retention_ratio <= 1.0:
        raise ConfigError(
            f"realtime.truncation_retention_ratio: {rt.truncation_retention_ratio} is not "
            "within 0..1"
        )
    if rt.reasoning_effort:
        check_choice("realtime.reasoning_effort", rt.reasoning_effort, REASONING_EFFORTS)
        # With api = "live" the effort is the delegation backend's, not the voice model's.
        if rt.api != "live" and takes_reasoning(rt.model) is False:
            raise ConfigError(
                f"realtime.reasoning_effort: model {rt.model!r} does not take reasoning "
                "(a gpt-realtime-2 model does); remove the key or change realtime.model"
            )
    labels: set[str] = set()
    for i, server in enumerate(rt.mcp_servers):
        key = f"realtime.mcp_servers[{i}]"
        if not _MCP_LABEL.fullmatch(server.server_label) or server.server_label in labels:
            raise ConfigError(
                f"{key}.server_label: {server.server_label!r} must be unique, 1-64 of "
                "A-Z a-z 0-9 _ -"
            )
        labels.add(server.server_label)
        # The Realtime service connects to it from the internet: never plain http.
        if not server.server_url.startswith("https://") or len(server.server_url) <= 8:
            raise ConfigError(f"{key}.server_url: {server.server_url!r} is not an https:// URL")
        for header in server.headers_env:
            if not _HEADER_NAME.fullmatch(header):
                raise ConfigError(f"{key}.headers_env: {header!r} is not a header name")
        check_choice(f"{key}.require_approval", server.require_approval, ("always", "never"))
        for field_name in ("allowed_tools", "no_approval_tools"):
            for j, tool in enumerate(getattr(server, field_name)):
                if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", tool):
                    raise ConfigError(f"{key}.{field_name}[{j}]: {tool!r} is not a tool name")
    choice = rt.tool_choice
    kind, _, name = choice.partition(":")
    if choice in ("auto", "none", "required"):
        pass
    elif kind == "function" and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        pass  # the tool's existence is checked by validate_calls (it knows the tool names)
    elif kind == "mcp" and name in labels:
        pass
    else:
        raise ConfigError(
            f"realtime.tool_choice: {choice!r} is not auto, none, required, function:<tool name> "
            "or mcp:<an mcp_servers server_label>"
        )


_DIGITS = "0123456789*#ABCD"


def validate_calls(config: GatewayConfig) -> None:
    calls = config.calls
    check_choice("calls.dtmf_mode", calls.dtmf_mode, ("forward", "ignore"))
    if calls.digit_terminator not in ("", *_DIGITS):
        raise ConfigError(
            f"calls.digit_terminator: {calls.digit_terminator!r} is not a DTMF digit (or empty)"
        )
    if not 1 <= calls.max_digits <= 64:
        raise ConfigError(f"calls.max_digits: {calls.max_digits} is not in 1-64")
    if not 1 <= calls.max_dtmf_per_s <= 100:
        raise ConfigError(f"calls.max_dtmf_per_s: {calls.max_dtmf_per_s:g} is not in 1-100")
    if not 0.1 <= calls.inter_digit_timeout_s <= 30:
        raise ConfigError(
            f"calls.inter_digit_timeout_s: {calls.inter_digit_timeout_s} is not in 0.1-30 s"
        )
    if not 0 <= calls.truncate_allowance_ms <= 1000:
        raise ConfigError(
            f"calls.truncate_allowance_ms: {calls.truncate_allowance_ms} is not in 0-1000 ms"
        )
    names = set()
    for i, target in enumerate(calls.transfer_targets):
        key = f"calls.transfer_targets[{i}]"
        if not target.name or target.name in names:
            raise ConfigError(f"{key}.name: {target.name!r} is empty or used twice")
        names.add(target.name)
        if not SIP_URI.match(target.uri) or not parses_as_uri(target.uri):
            raise ConfigError(f"{key}.uri: {target.uri!r} is not a sip: or sips: URI")
    for i, action in enumerate(calls.digit_actions):
        key = f"calls.digit_actions[{i}]"
        if len(action.digit) != 1 or action.digit not in _DIGITS:
            raise ConfigError(f"{key}.digit: {action.digit!r} is not one DTMF digit")
        check_choice(f"{key}.action", action.action, ("transfer", "hangup"))
        if action.action == "transfer" and action.target not in names:
            raise ConfigError(
                f"{key}.target: {action.target!r} is not a calls.transfer_targets name"
            )
    tool_names = {"end_call", "transfer_call", "send_dtmf"}
    for i, tool in enumerate(config.tools):
        key = f"tools[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool.name) or tool.name in tool_names:
            raise ConfigError(f"{key}.name: {tool.name!r} is not a valid, unique tool name")
        tool_names.add(tool.name)
        if not tool.url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}.url: {tool.url!r} is not an http:// or https:// URL")
        check_plain_http(f"{key}.url", tool.url, tool.allow_plain_http, key)
        if not 1 <= tool.max_response_bytes <= 64 * 1024 * 1024:
            raise ConfigError(
                f"{key}.max_response_bytes: {tool.max_response_bytes} is not in 1-67108864"
            )
        if tool.parameters.get("type") != "object":
            raise ConfigError(f'{key}.parameters: must be a JSON schema with type = "object"')
        if not 0.1 <= tool.timeout_s <= 120:
            raise ConfigError(f"{key}.timeout_s: {tool.timeout_s} is not in 0.1-120 s")
    kind, _, name = config.realtime.tool_choice.partition(":")
    if not calls.transfer_targets:
        tool_names.discard("transfer_call")  # offered only with a target (call/tools.py)
    if kind == "function" and name not in tool_names:
        raise ConfigError(
            f"realtime.tool_choice: {name!r} is not a tool of this call "
            f"({', '.join(sorted(tool_names))})"
        )
    _validate_call_recovery(calls, names)


def _validate_call_recovery(calls: CallsConfig, transfer_names: set[str]) -> None:
    """Issue 10 keys: the idle watchdog and failed-response recovery."""
    if not (calls.idle_prompt_s == 0 or 1 <= calls.idle_prompt_s <= 3600):
        raise ConfigError(
            f"calls.idle_prompt_s: {calls.idle_prompt_s} is not 0 (off) or in 1-3600 s"
        )
    if not 0 <= calls.idle_prompts_max <= 10:
        raise ConfigError(f"calls.idle_prompts_max: {calls.idle_prompts_max} is not in 0-10")
    if not 0 <= calls.failed_response_retries <= 5:
        raise ConfigError(
            f"calls.failed_response_retries: {calls.failed_response_retries} is not in 0-5"
        )
    if calls.failed_response_transfer and calls.failed_response_transfer not in transfer_names:
        raise ConfigError(
            f"calls.failed_response_transfer: {calls.failed_response_transfer!r} is not a "
            "calls.transfer_targets name"
        )
    texts = (
        "failed_response_instructions",
        "idle_prompt_instructions",
        "idle_goodbye_instructions",
    )
    for key in texts:
        if len(getattr(calls, key)) > 4000:
            raise ConfigError(f"calls.{key}: longer than 4000 characters")
    if calls.replay_transcription_model and not re.fullmatch(
        r"[A-Za-z0-9._-]{1,64}", calls.replay_transcription_model
    ):
        raise ConfigError(
            f"calls.replay_transcription_model: {calls.replay_transcription_model!r} is not a "
            "model id"
        )
