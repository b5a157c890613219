"""From the gateway configuration to one call's voice settings (backend, session, policy, tools).

`[realtime] api` chooses the voice backend per route: "realtime" (the Realtime GA API,
gateway/realtime/) or "live" (GPT-Live, gateway/live/). Both are built here, above the call:
gateway/call/session.py gets a `VoiceBackend`, an endpoint and a session configuration it does
not look into.

Kept apart from `app.py` so the mapping (which config key becomes which `session.update` field,
which tools the model is offered) can be read and tested on its own. Routes (gateway/routes.py)
give each call its own `GatewayConfig` (the global one with the route's overrides); the functions
here take whichever they are handed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gateway.call.call import CallServices
from gateway.call.machine import CallPolicy, DigitAction, DtmfMode
from gateway.call.session import APPEND_S, SessionSettings
from gateway.call.srtp import SrtpSettings
from gateway.call.tools import HttpTool, builtin_tool_definitions, http_tool_definition
from gateway.config import (
    DEFAULT_REALTIME_URL,
    CallsConfig,
    ConfigError,
    GatewayConfig,
    registration_name,
)
from gateway.live import protocol as live_protocol
from gateway.live.backend import LiveBackend
from gateway.live.client import DEFAULT_LIVE_URL, live_endpoint_azure, live_endpoint_openai
from gateway.media.leg import LegSettings
from gateway.realtime import protocol
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint
from gateway.realtime.models import DEFAULT_MODEL
from gateway.wsock import Endpoint as WsEndpoint
from sip.sdp import SUPPORTED_CODECS, CodecPrefs
from sip.sdp_crypto import SrtpPolicy
from sip.uri import parse_uri

CODEC_FORMATS = {"PCMU": "audio/pcmu", "PCMA": "audio/pcma"}


def use_simulator(config: GatewayConfig) -> bool:
    """The built-in simulator serves calls when asked to, or when there is no key and no URL."""
    rt = config.realtime
    if rt.simulator == "always":
        return True
    no_key = not rt.api_key.reveal()
    return rt.simulator == "auto" and no_key and rt.url == DEFAULT_REALTIME_URL


def endpoint_for(config: GatewayConfig, simulator_url: str | None = None) -> Endpoint:
    rt = config.realtime
    if simulator_url is not None:
        return Endpoint.custom(simulator_url)
    key = rt.api_key.reveal()
    if rt.provider == "azure":
        if not key:
            raise ConfigError(
                f"realtime.api_key_env: {rt.api_key_env} is not set (Azure needs a key)"
            )
        return Endpoint.azure(rt.url, rt.model, key)
    if rt.provider == "openai" and rt.url == DEFAULT_REALTIME_URL:
        if not key:
            raise ConfigError(
                f"realtime.api_key_env: {rt.api_key_env} is not set and realtime.simulator = "
                f"{rt.simulator!r}"
            )
        return Endpoint.openai(key, rt.model, rt.url)
    # Any other URL (a proxy, a local simulator given with --realtime-url): used as written,
    # with the model added when the URL has no query, and the key when there is one.
    url = rt.url if "?" in rt.url else f"{rt.url}?model={quote(rt.model, safe='')}"
    return Endpoint.custom(url, {"Authorization": f"Bearer {key}"} if key else None)


SIMULATOR_TOKEN = "simulator"


def uses_live(config: GatewayConfig) -> bool:
    """Some calls go to GPT-Live: the global [realtime] api or a route's."""
    if config.realtime.api == "live":
        return True
    return any(route.realtime.get("api") == "live" for route in config.routes)


async def start_voice_endpoints(
    config: GatewayConfig,
) -> tuple[Any, Endpoint, WsEndpoint | None]:
    """The process's voice endpoints: (the built-in simulator when it is to serve, else None;
    the Realtime endpoint; the GPT-Live endpoint or None). The simulator is started here."""
    simulator: Any = None
    if use_simulator(config):
        # Imported here: the simulator is a development/test aid, not on the call path.
        from gateway.realtime.simulator import Simulator

        simulator = Simulator("127.0.0.1", 0)
        await simulator.start()
    endpoint = endpoint_for(config, simulator.url if simulator is not None else None)
    return simulator, endpoint, live_endpoint_for(config, simulator)


def live_endpoint_for(config: GatewayConfig, simulator: Any = None) -> WsEndpoint | None:
    """The GPT-Live endpoint. With the built-in simulator: its `live_url` (the same process
    serves both APIs, each at its own path). When no route uses api = "live" a missing key is
    no error (None), so a reload that moves a route to GPT-Live finds the endpoint ready
    whenever one can be built."""
    try:
        return _live_endpoint(config, simulator)
    except ConfigError:
        if uses_live(config):
            raise
        return None


def _live_endpoint(config: GatewayConfig, simulator: Any) -> WsEndpoint:
    rt = config.realtime
    if simulator is not None:
        # The simulator wants a Bearer token as the service does (reference section 12); any
        # will do, and this one is no secret.
        return WsEndpoint(simulator.live_url, {"Authorization": f"Bearer {SIMULATOR_TOKEN}"})
    key = rt.api_key.reveal()
    if rt.provider == "azure":
        if not key:
            raise ConfigError(
                f"realtime.api_key_env: {rt.api_key_env} is not set (Azure needs a key)"
            )
        return live_endpoint_azure(rt.url, key)
    if rt.url == DEFAULT_REALTIME_URL:
        if not key:
            raise ConfigError(
                f"realtime.api_key_env: {rt.api_key_env} is not set and realtime.simulator = "
                f"{rt.simulator!r}"
            )
        return live_endpoint_openai(key, DEFAULT_LIVE_URL)
    # Any other URL (a proxy, a local simulator): used as written (Live takes no query).
    return WsEndpoint(rt.url, {"Authorization": f"Bearer {key}"} if key else {})


def live_model(config: GatewayConfig) -> str:
    """realtime.model for api = "live": the Realtime default means "not set" -> gpt-live-1."""
    model = config.realtime.model
    return live_protocol.DEFAULT_LIVE_MODEL if model == DEFAULT_MODEL else model


def instructions_for(config: GatewayConfig) -> str:
    rt = config.realtime
    if not rt.instructions_file:
        return rt.instructions
    try:
        return Path(rt.instructions_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"realtime.instructions_file: cannot read {rt.instructions_file!r}: {exc}"
        ) from None


def http_tools_for(config: GatewayConfig) -> dict[str, HttpTool]:
    return {
        tool.name: HttpTool(
            tool.name,
            tool.description,
            tool.url,
            tool.parameters,
            tool.timeout_s,
            max_response_bytes=tool.max_response_bytes,
            allow_plain_http=tool.allow_plain_http,
        )
        for tool in config.tools
    }


def session_config_for(
    config: GatewayConfig, codec: str, instructions: str
) -> protocol.SessionConfig:
    """session.update for a call whose RTP codec is `codec`: the same G.711 law both ways."""
    rt = config.realtime
    fmt = CODEC_FORMATS[codec]
    turn: protocol.ServerVad | protocol.SemanticVad
    if rt.turn_detection == "server_vad":
        turn = protocol.ServerVad(
            threshold=rt.vad_threshold,
            prefix_padding_ms=rt.prefix_padding_ms,
            silence_duration_ms=rt.silence_duration_ms,
            idle_timeout_ms=rt.idle_timeout_ms or None,
            create_response=rt.create_response,
            interrupt_response=rt.interrupt_response,
        )
    else:
        turn = protocol.SemanticVad(
            eagerness=rt.eagerness,  # type: ignore[arg-type]  # validated by config
            create_response=rt.create_response,
            interrupt_response=rt.interrupt_response,
        )
    targets = [t.name for t in config.calls.transfer_targets]
    tools = [
        protocol.FunctionTool(d["name"], d["description"], d["parameters"])
        for d in builtin_tool_definitions(targets)
    ]
    tools += [
        protocol.FunctionTool(d["name"], d["description"], d["parameters"])
        for d in map(http_tool_definition, http_tools_for(config).values())
    ]
    mcp_tools = [
        protocol.McpTool(
            server_label=server.server_label,
            server_url=server.server_url,
            server_description=server.server_description,
            headers=tuple((name, value.reveal()) for name, value in server.headers.items()),
            allowed_tools=server.allowed_tools,
            require_approval=server.require_approval,  # type: ignore[arg-type]  # validated
            no_approval_tools=server.no_approval_tools,
        )
        for server in rt.mcp_servers
    ]
    truncation: str | float = rt.truncation
    if rt.truncation == "retention_ratio":
        truncation = rt.truncation_retention_ratio
    return protocol.SessionConfig(
        input_format=fmt,  # type: ignore[arg-type]
        output_format=fmt,  # type: ignore[arg-type]
        voice=rt.voice,
        instructions=instructions,
        turn_detection=turn,
        noise_reduction=rt.noise_reduction or None,  # type: ignore[arg-type]
        transcription_model=rt.transcription_model or None,
        transcription_language=rt.transcription_language or None,
        transcription_prompt=rt.transcription_prompt or None,
        tools=(*tools, *mcp_tools),
        tool_choice=rt.tool_choice,
        speed=rt.speed,
        max_output_tokens=rt.max_output_tokens or None,
        truncation=truncation,
        reasoning_effort=rt.reasoning_effort or None,
    )


def live_session_config_for(
    config: GatewayConfig, codec: str, instructions: str
) -> live_protocol.LiveSessionConfig:
    """session.start for a call whose RTP codec is `codec`: that G.711 law, both ways. The
    tools (built-ins and HTTP tools) go to Responses delegation; the Realtime-only keys are
    refused by the configuration's validation (gateway/config/per_call.py)."""
    rt = config.realtime
    targets = [t.name for t in config.calls.transfer_targets]
    definitions = builtin_tool_definitions(targets)
    definitions += [http_tool_definition(tool) for tool in http_tools_for(config).values()]
    tools = tuple(
        live_protocol.LiveFunctionTool(d["name"], d["description"], d["parameters"])
        for d in definitions
    )
    return live_protocol.LiveSessionConfig(
        model=live_model(config),
        audio_format=live_protocol.format_for_codec(codec),
        voice=rt.voice,
        instructions=instructions,
        tools=tools,
        delegation_model=rt.delegation_model,
        delegation_instructions=rt.delegation_instructions,
        tool_choice=rt.tool_choice,
        max_output_tokens=rt.max_output_tokens or None,
        reasoning_effort=rt.reasoning_effort or None,
    )


def voice_config_for(config: GatewayConfig, codec: str, instructions: str) -> Any:
    """The session configuration of the route's backend for `codec`."""
    if config.realtime.api == "live":
        return live_session_config_for(config, codec, instructions)
    return session_config_for(config, codec, instructions)


def call_policy_for(config: GatewayConfig) -> CallPolicy:
    calls, rt = config.calls, config.realtime
    live = rt.api == "live"
    return CallPolicy(
        greeting=rt.greeting or None,
        server_interrupts=rt.interrupt_response,
        truncate_allowance_ms=calls.truncate_allowance_ms,
        dtmf_mode=DtmfMode(calls.dtmf_mode),
        digit_actions={a.digit: DigitAction(a.action, a.target) for a in calls.digit_actions},
        digit_terminator=calls.digit_terminator,
        max_digits=calls.max_digits,
        inter_digit_timeout_s=calls.inter_digit_timeout_s,
        dtmf_barge_in=calls.dtmf_barge_in,
        transfer_targets={t.name: t.uri for t in calls.transfer_targets},
        setup_timeout_s=rt.setup_timeout_s,
        drain_timeout_s=calls.drain_timeout_s,
        session_cap_s=rt.session_cap_s,
        rollover_margin_s=rt.rollover_margin_s,
        failed_response_retries=calls.failed_response_retries,
        failed_response_transfer=calls.failed_response_transfer,
        idle_prompt_s=calls.idle_prompt_s,
        idle_prompts_max=calls.idle_prompts_max,
        continuous_output=live,
        **_spoken_texts(calls),
    )


REALTIME_BACKEND = RealtimeBackend()
LIVE_BACKEND = LiveBackend()


def session_settings_for(
    config: GatewayConfig,
    endpoint: WsEndpoint,
    codec: str,
    instructions: str,
    *,
    caller: str,
    callee: str,
    input_burst_s: float,
    append_s: float = APPEND_S,
) -> SessionSettings:
    """Everything one call's voice session needs, from its route's configuration; `endpoint`
    is the one of the route's api."""
    live = config.realtime.api == "live"
    return SessionSettings(
        endpoint=endpoint,
        config=voice_config_for(config, codec, instructions),
        policy=call_policy_for(config),
        http_tools=http_tools_for(config),
        caller=caller,
        callee=callee,
        reconnect_budget=config.realtime.reconnect_budget,
        reconnect_window_s=config.realtime.reconnect_window_s,
        input_burst_s=input_burst_s,
        append_s=append_s,
        replay_transcription_model=config.calls.replay_transcription_model,
        backend=LIVE_BACKEND if live else REALTIME_BACKEND,
    )


def _spoken_texts(calls: CallsConfig) -> dict[str, str]:
    """The calls.* texts that are set ("" keeps CallPolicy's built-in text)."""
    keys = ("failed_response_instructions", "idle_prompt_instructions", "idle_goodbye_instructions")
    return {key: getattr(calls, key) for key in keys if getattr(calls, key)}


def call_services_for(
    config: GatewayConfig,
    *,
    loop: asyncio.AbstractEventLoop,
    metrics: Any,
    webhooks: Any,
    ports: Any,
    clock: Any,
    families: Any,
    advertised_host: str,
    endpoint: Endpoint | None,
    spawn: Callable[[Coroutine[Any, Any, None]], None],
    ended: Callable[[Any], None],
    live_endpoint: WsEndpoint | None = None,
) -> CallServices:
    """What each new call gets from the process: shared objects and the configuration's values
    (gateway/call never reads the configuration). `endpoint` None: echo test, no session.
    `live_endpoint`: for routes with api = "live"."""
    media = config.media
    prefs = CodecPrefs(codecs=config.sip.codecs)
    codec = prefs.codecs[0]
    input_burst_s = media.input_burst_ms / 1000.0
    append_s = media.append_ms / 1000.0

    def session_settings(
        route: Any, codec: str, instructions: str, caller: str, callee: str
    ) -> SessionSettings:
        assert endpoint is not None
        chosen: WsEndpoint = endpoint
        if route.config.realtime.api == "live":
            if live_endpoint is None:
                raise ConfigError(f"route {route.name!r}: api = live has no endpoint")
            chosen = live_endpoint
        return session_settings_for(
            route.config,
            chosen,
            codec,
            instructions,
            caller=caller,
            callee=callee,
            input_burst_s=input_burst_s,
            append_s=append_s,
        )

    def session_config(route: Any, codec: str, instructions: str) -> Any:
        return voice_config_for(route.config, codec, instructions)

    return CallServices(
        loop=loop,
        metrics=metrics,
        webhooks=webhooks,
        ports=ports,
        clock=clock,
        families=families,
        prefs=prefs,
        leg=LegSettings(
            codec=codec,
            payload_type=SUPPORTED_CODECS[codec],
            symmetric_rtp=media.symmetric_rtp,
            rtp_timeout_s=media.rtp_timeout_s,
            rtp_latch_packets=media.rtp_latch_packets,
            rtp_latch_any_host=media.rtp_latch_any_host,
            jitter_min_ms=media.jitter_min_ms,
            jitter_max_ms=media.jitter_max_ms,
            idle_audio=media.idle_audio,
            playout_max_s=media.playout_max_s,
            inband_dtmf=media.inband_dtmf,
            echo=media.echo,
            wants_audio=endpoint is not None,
        ),
        advertised_host=advertised_host,
        sip_host=config.sip.host,
        answer_delay_s=config.calls.answer_delay_ms / 1000.0,
        rtp_timeout_s=media.rtp_timeout_s,
        records_dir=config.records.dir,
        recording_dir=config.records.recording_dir,
        webhooks_want_records=bool(config.webhooks.call_ended_url),
        voice=endpoint is not None,
        session_settings=session_settings if endpoint is not None else None,
        session_config=session_config,
        spawn=spawn,
        ended=ended,
        srtp=srtp_settings_for(config, advertised_host),
    )


def srtp_settings_for(config: GatewayConfig, agent_host: str = "") -> SrtpSettings:
    """media.srtp, media.srtp_suites, sip.tls.allow_sdes_over_plain and the `srtp` overrides
    of routes and registrations (gateway/call/srtp.py applies them per call)."""
    regs = config.registrations
    return SrtpSettings(
        policy=SrtpPolicy(config.media.srtp),
        suites=tuple(config.media.srtp_suites),
        allow_sdes_over_plain=config.sip.tls.allow_sdes_over_plain,
        by_route={r.name: SrtpPolicy(r.srtp) for r in config.routes if r.srtp},
        by_registration={registration_name(r): SrtpPolicy(r.srtp) for r in regs if r.srtp},
        registrar_hosts={
            _registrar_host(r.registrar): registration_name(r) for r in regs if r.srtp
        },
        agent_host=agent_host,
    )


def _registrar_host(registrar: str) -> str:
    try:
        return parse_uri(registrar).host.strip("[]").lower()
    except ValueError:
        return ""
