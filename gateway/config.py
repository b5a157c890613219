"""Gateway configuration: TOML file < environment < command line, validated once at start.

Every problem is reported as a `ConfigError` whose message starts with the dotted key
(`sip.port: 70000 is not a valid port (1-65535)`), so an operator can fix the file without
reading code. Unknown keys are errors too: a typo such as `rtp_port_mn` would otherwise be
silently ignored and the default used, which is how "no audio" tickets start (lessons.md 3.1).

Secrets (SIP passwords, the OpenAI API key) are wrapped in `Secret`, whose repr and str are
redacted, so logging a config object or a dataclass never leaks them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.realtime.models import DEFAULT_MODEL, REASONING_EFFORTS, takes_reasoning

ENV_PREFIX = "SRG_"
DEFAULT_REALTIME_URL = "wss://api.openai.com/v1/realtime"
VALID_TRANSPORTS = ("udp", "tcp")
VALID_CODECS = ("PCMU", "PCMA")
VALID_IDLE_AUDIO = ("silence", "cn", "none")
VALID_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
VALID_LOG_FORMATS = ("auto", "json", "text")


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key and value."""


class Secret:
    """A secret string whose repr/str never show the value. Use `reveal()` where it is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class InboundAuthConfig:
    """Optional digest challenge on inbound INVITE (empty username = no auth).

    A nonce lives `nonce_ttl_s`: an older one with the right password gets 401 stale=true (the
    client retries with the new nonce, RFC 7616 3.3). A used nonce is remembered: its nc must
    grow on reuse, and an Authorization header sent again is refused with a fresh challenge."""

    realm: str = "gateway"
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    password_env: str = ""
    password_file: str = ""
    nonce_ttl_s: float = 300.0


@dataclass(frozen=True)
class SipConfig:
    """[sip]. Who may call (every INVITE may open a paid Realtime session), sip/admission.py:

    Closed by default. A source is *trusted* when it is the host itself (127.0.0.0/8, ::1, the
    host's own interface addresses; unless `admit_local = false`), in `allow_networks`, or the registrar of a
    `[[registrations]]` entry (its resolved address: the PBX we register to sends our calls).
    - no `inbound_auth.username`: trusted sources are admitted, every other source gets 403;
    - `inbound_auth.username` and `allow_networks` empty: any source is challenged and admitted
      with the right digest credentials (digest alone admits);
    - `inbound_auth.username` and `allow_networks` set: trusted sources are challenged, others
      get 403 (both must hold).
    Open to the world: put a /0 in `allow_networks` (`"0.0.0.0/0"` for IPv4, `"::/0"` for
    IPv6); `run` then logs a WARNING at start and `check` reports it.
    A refused source gets 403 and at most one log line per minute (`sip.invite_refused`).

    Per source address: `invite_rate_per_source` new INVITEs per second (token bucket of
    `invite_burst_per_source`); beyond it INVITEs are dropped without an answer and counted
    (`srg_sip_invites_rejected_total{reason="rate_limited"}`). At most `max_calls_per_source`
    concurrent calls per source (capped at `max_calls`), then 503; the registrar of a
    registration (one PBX carrying every call) is limited by `max_calls` only. Per-source state
    is kept for at most `max_tracked_sources` addresses (least recently seen forgotten first). A
    trunk or proxy in `allow_networks` that carries every call from one address needs these
    raised.
    SIGHUP applies changes to allow_networks, admit_local, inbound_auth, max_calls and these
    limits."""

    host: str = "0.0.0.0"
    port: int = 5060
    advertised_host: str = ""
    transports: tuple[str, ...] = ("udp", "tcp")
    user_agent: str = "sip-realtime-gateway"
    max_calls: int = 100
    allow_networks: tuple[str, ...] = ()
    inbound_auth: InboundAuthConfig = field(default_factory=InboundAuthConfig)
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    invite_rate_per_source: float = 5.0
    invite_burst_per_source: int = 10
    max_calls_per_source: int = 20
    max_tracked_sources: int = 4096
    # The host itself (loopback and its own addresses) is trusted like an allow_networks entry;
    # false on a host shared with processes that must not place calls (and in bench/flood.py,
    # whose flooder sends from 127.0.0.2).
    admit_local: bool = True
    # Resource limits (issue 9; each key is explained in examples/gateway.toml).
    # Server transactions held at once; 0 = 100 per call of max_calls, at least 1000.
    max_server_transactions: int = 0
    # Share of them one source address may hold; 0 = half of max_server_transactions.
    max_server_transactions_per_source: int = 0
    # Inbound + outbound SIP TCP connections; lowered at start to fit RLIMIT_NOFILE.
    tcp_max_connections: int = 1024
    tcp_max_connections_per_source: int = 32
    # A TCP connection that sends nothing after connecting, or holds a partial message, this
    # long is closed (slowloris).
    tcp_message_deadline_s: float = 10.0
    tcp_max_header_bytes: int = 16384
    tcp_max_body_bytes: int = 32768


@dataclass(frozen=True)
class RegistrationConfig:
    registrar: str
    username: str
    # What routes (`match.registration`) and `POST /calls` (`registration`) call this trunk;
    # empty = the username.
    name: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    password_env: str = ""
    password_file: str = ""
    domain: str = ""
    expires: int = 300
    # Caller IDs (`from` of `POST /calls`) an originated call may present through this trunk,
    # besides the username. Anything else is refused (403): a stolen control token must not
    # turn the gateway into a caller-ID spoofing service on a real trunk.
    allowed_caller_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MediaConfig:
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    # Echo test mode: play the caller's own audio back, a diagnostic for one-way audio.
    echo: bool = False
    # What the gateway sends while it has nothing to say: keeping RTP flowing stops NATs and
    # SBCs from closing the pinhole and PBXs from declaring the call dead (RFC 3389 for "cn").
    idle_audio: str = "silence"
    rtp_timeout_s: float = 30.0
    symmetric_rtp: bool = True
    inband_dtmf: bool = False
    # Strict latching (gateway/media/latch.py): RTP from the SDP's address counts at once;
    # another source is learned after this many in-sequence packets with one SSRC, and only
    # from the SDP's or the SIP signalling's host unless rtp_latch_any_host.
    rtp_latch_packets: int = 3
    rtp_latch_any_host: bool = False
    # Caller audio handed to Realtime never runs ahead of real time by more than this.
    input_burst_ms: int = 200
    # Bot audio waiting to be played, at most (the model streams faster than real time).
    playout_max_s: float = 120.0
    # IPv6 media (issue 10): an offer whose c= is IPv6 gets RTP on this address (written in
    # c=IN IP6; "::" = bind all, advertise the local address towards the caller). Empty: IPv6
    # media only when sip.host is IPv6; otherwise such an offer gets 488 + Warning: 301.
    ipv6_address: str = ""
    # A released RTP port pair waits this long before reuse (late packets of the old call must
    # not reach a new one); 0 = off. Size the range for it: docs/deployment.md "RTP port range".
    rtp_port_quarantine_s: float = 30.0


@dataclass(frozen=True)
class TransferTargetConfig:
    name: str  # what the model says (transfer_call target), e.g. "operator"
    uri: str  # where the REFER points, e.g. "sip:100@pbx.example.com"


@dataclass(frozen=True)
class DigitActionConfig:
    digit: str  # one of 0-9 * # A-D
    action: str  # "transfer" (to `target`) or "hangup"
    target: str = ""  # a transfer target name


@dataclass(frozen=True)
class CallsConfig:
    # 0 = unlimited; otherwise the gateway ends the call with BYE (Reason cause=200).
    max_duration_s: float = 0.0
    # Ring for this long (180 is sent at once) before answering; 0 = answer when ready.
    answer_delay_ms: int = 0
    # Audio assumed still in the phone's own buffer when the caller interrupts: subtracted
    # from the played bytes before conversation.item.truncate.
    truncate_allowance_ms: int = 0
    # DTMF to the model: "forward" (collected, then "The caller pressed ...") or "ignore".
    dtmf_mode: str = "forward"
    digit_terminator: str = "#"
    max_digits: int = 16
    inter_digit_timeout_s: float = 2.0
    dtmf_barge_in: bool = True
    digit_actions: tuple[DigitActionConfig, ...] = ()
    transfer_targets: tuple[TransferTargetConfig, ...] = ()
    # Longest wait for the bot's last words before BYE (end_call, shutdown drain).
    drain_timeout_s: float = 30.0
    # DTMF digits one call may send per second (burst: twice that); more are dropped and
    # counted (srg_dtmf_dropped_total). A keypad cannot exceed ~12/s (RFC 4733 tones of 40 ms
    # and gaps of 40 ms), and every collected digit string is a paid model turn.
    max_dtmf_per_s: float = 12.0
    # Issue 10. Inactivity watchdog (the gateway's own timer, so it works with semantic_vad):
    # prompt a silent caller after idle_prompt_s; after idle_prompts_max unanswered prompts
    # (server_vad timeout_triggered re-prompts count too) say goodbye and BYE. 0 = off.
    idle_prompt_s: float = 0.0
    idle_prompts_max: int = 2
    # A response.done with status failed (or incomplete and silent): ask again this many times
    # in a row, then REFER to failed_response_transfer (a transfer_targets name) or BYE 503.
    failed_response_retries: int = 1
    failed_response_transfer: str = ""
    # Input transcription used only to replay the caller's turns into a new session (rollover,
    # reconnect) when realtime.transcription_model is off; those transcripts are never logged
    # or recorded. "" = off (the caller's side is then lost on a reconnect).
    replay_transcription_model: str = "gpt-4o-mini-transcribe"
    # What the bot is told to say in those cases ("" = the built-in text, gateway/call/machine.py
    # CallPolicy): the spoken fallback after a failed response, the idle prompt, the goodbye.
    failed_response_instructions: str = ""
    idle_prompt_instructions: str = ""
    idle_goodbye_instructions: str = ""


@dataclass(frozen=True)
class ToolConfig:
    """A custom tool: the gateway POSTs {call_id, caller, callee, name, arguments} to `url`."""

    name: str
    description: str
    url: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout_s: float = 10.0
    # The response is read up to this many bytes, then cut (the model sees at most 64 KiB).
    max_response_bytes: int = 1024 * 1024
    # http:// to a host that is not loopback (the call's data unencrypted): only when set.
    allow_plain_http: bool = False


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "auto"  # auto: JSON when stderr is not a TTY, text on a TTY


@dataclass(frozen=True)
class McpServerConfig:
    """A remote MCP server the model may call (`type: "mcp"` tool in session.update).

    The Realtime service, not the gateway, connects to `server_url`. Header values are secrets:
    only the names of environment variables appear here (`headers_env = {Authorization =
    "CRM_MCP_AUTH"}`); the loader reads them into `headers`, which a file may not set."""

    server_label: str
    server_url: str
    server_description: str = ""
    headers_env: dict[str, str] = field(default_factory=dict)  # header name -> env variable
    headers: dict[str, Secret] = field(default_factory=dict)  # filled by the loader
    # Tool names the model may use; [] = every tool the server lists.
    allowed_tools: tuple[str, ...] = ()
    # "always": each call waits for an approval the gateway never gives (nobody on a phone
    # line can approve), so the tool does not run; "never": tools run at once. Tools named in
    # `no_approval_tools` run at once even with "always".
    require_approval: str = "always"
    no_approval_tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class RealtimeConfig:
    url: str = DEFAULT_REALTIME_URL
    # gateway/realtime/models.py: not deprecated in the SDK; `run`/`check` warn 60 days before
    # a configured model's announced shutdown.
    model: str = DEFAULT_MODEL
    api_key_env: str = "OPENAI_API_KEY"
    api_key: Secret = field(default_factory=lambda: Secret(""))
    # "openai" (Bearer key), "azure" (api-key header; url = wss://<res>.openai.azure.com/openai/v1/realtime,
    # model = the deployment name) or "custom" (url as given, Bearer key when one is set).
    provider: str = "openai"
    # "auto": the built-in simulator when no API key is set; "always"; "never" (fail instead).
    simulator: str = "auto"
    voice: str = "marin"
    instructions: str = (
        "You are a friendly, concise voice assistant answering a phone call. "
        "Keep answers short; the caller hears you over a telephone line."
    )
    instructions_file: str = ""  # read at start; overrides `instructions`
    greeting: str = ""  # instructions for a first response right after the ACK ("" = none)
    turn_detection: str = "semantic_vad"  # "semantic_vad" | "server_vad"
    eagerness: str = "auto"  # semantic_vad: low | medium | high | auto
    vad_threshold: float = 0.5  # server_vad
    prefix_padding_ms: int = 300  # server_vad
    silence_duration_ms: int = 500  # server_vad
    idle_timeout_ms: int = 0  # server_vad; 0 = off
    create_response: bool = True
    interrupt_response: bool = True
    noise_reduction: str = ""  # "" (off) | near_field | far_field
    transcription_model: str = ""  # e.g. gpt-4o-mini-transcribe; "" = no caller transcript
    setup_timeout_s: float = 5.0  # session.updated must arrive within this, else 503
    session_cap_s: float = 3600.0  # the service's session limit (60 min)
    rollover_margin_s: float = 300.0  # roll over at a silence this long before the cap
    # Reconnects per call: at most this many attempts in any reconnect_window_s, with backoff
    # between them; past it the call ends with BYE (Reason cause=503, "voice session
    # unavailable") instead of reconnecting while the caller hears silence. 0 = never reconnect.
    reconnect_budget: int = 3
    reconnect_window_s: float = 60.0
    # Issue 10: the session.update fields below validate against the SDK's GA session model.
    speed: float = 1.0  # output speech speed, 0.25-1.5
    transcription_language: str = ""  # ISO-639-1 of the caller's speech, e.g. "de"
    transcription_prompt: str = ""  # vocabulary / style hint for the transcription model
    # "auto" | "none" | "required" | "function:<name>" | "mcp:<server_label>"
    tool_choice: str = "auto"
    max_output_tokens: int = 0  # per response, 1-4096; 0 = the model's maximum ("inf")
    # "auto" | "disabled" | "retention_ratio" (keep `truncation_retention_ratio` of the
    # conversation when it overflows: fewer truncations, better cache hits)
    truncation: str = "auto"
    truncation_retention_ratio: float = 0.8
    reasoning_effort: str = ""  # "" = model default; minimal|low|medium|high|xhigh
    mcp_servers: tuple[McpServerConfig, ...] = ()


@dataclass(frozen=True)
class RouteMatchConfig:
    """Every condition given must hold (AND); an empty match catches every call.

    `*_regex` keys are Python regular expressions matched against the whole value
    (`re.fullmatch`); the plain keys compare exactly."""

    request_user: str = ""  # user part of the request-URI (the called number on most trunks)
    request_user_regex: str = ""
    to_user: str = ""  # user part of the To URI
    to_user_regex: str = ""
    header: str = ""  # a header name, e.g. "X-Route"; with header_value / header_regex
    header_value: str = ""
    header_regex: str = ""
    source_network: str = ""  # CIDR the INVITE's source address must be in (a trunk's SBC)
    registration: str = ""  # name of a [[registrations]] entry: the INVITE comes from its registrar


@dataclass(frozen=True)
class RouteConfig:
    """A `[[routes]]` entry: which calls (match) get which overrides of the global settings."""

    name: str
    match: RouteMatchConfig = field(default_factory=RouteMatchConfig)
    # Overrides of [realtime] keys (model, voice, instructions, instructions_file, greeting,
    # turn_detection, eagerness, vad_threshold, ...) and [calls] keys (dtmf_mode, digit_actions,
    # transfer_targets, max_duration_s, ...), checked against those sections' keys and types.
    realtime: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, Any] = field(default_factory=dict)
    # Names of [[tools]] entries offered on this route; ["*"] = all of them, [] = none.
    tools: tuple[str, ...] = ("*",)
    # "" = [records] recording decides; "on" / "off" (true / false in TOML) overrides it.
    recording: str = ""


@dataclass(frozen=True)
class ControlConfig:
    """The HTTP control API (health, readiness, metrics, live calls)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080  # 0 = any free port (tests)
    # Bearer token: from the environment variable named here, or a file; never inline.
    # Neither set (and token_required): a random token is generated at first start into
    # .srg/control.token (gateway/control_token.py); a token_file that does not exist yet is
    # generated the same way. The path is logged, the token never.
    token_env: str = ""
    token_file: str = ""
    token: Secret = field(default_factory=lambda: Secret(""))
    # false = no token at all (every endpoint open): only for a loopback bind in a private
    # network namespace; `check` reports it on any other bind.
    token_required: bool = True
    # /metrics without the token (Prometheus can send one: `authorization` in scrape_config).
    metrics_public: bool = False
    # Host header names accepted besides IP literals and localhost (DNS-rebinding defence).
    allowed_hosts: tuple[str, ...] = ()
    max_head_bytes: int = 16 * 1024  # request line + headers
    max_body_bytes: int = 64 * 1024
    read_timeout_s: float = 10.0  # for the whole request head, and again for the body


@dataclass(frozen=True)
class RecordsConfig:
    dir: str = ""  # a JSON call record per call is written here at hangup; "" = off
    recording: bool = False  # stereo WAV (caller left, bot right) per answered call
    recording_dir: str = ""  # where WAVs go; "" = `dir`


@dataclass(frozen=True)
class WebhooksConfig:
    call_started_url: str = ""  # POST {event, call_id, caller, callee, route} when answered
    call_ended_url: str = ""  # POST {event, call_id, ..., record} at hangup
    timeout_s: float = 5.0
    max_response_bytes: int = 64 * 1024  # of the receiver's answer (only the status is used)
    allow_plain_http: bool = False  # http:// to a host that is not loopback


@dataclass(frozen=True)
class ShutdownConfig:
    # SIGTERM/SIGINT: live calls may finish on their own this long, then get BYE.
    drain_timeout_s: float = 30.0


@dataclass(frozen=True)
class GatewayConfig:
    sip: SipConfig = field(default_factory=SipConfig)
    registrations: tuple[RegistrationConfig, ...] = ()
    media: MediaConfig = field(default_factory=MediaConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    tools: tuple[ToolConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    control: ControlConfig = field(default_factory=ControlConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)


# Keys that only the loader fills in (resolved secrets); a file may not set them directly
# where a safer indirection exists.
_RESOLVED_ONLY = {"realtime.api_key", "control.token"}
_ENV_SECTIONS = (
    "sip", "media", "calls", "log", "realtime", "control", "records", "webhooks", "shutdown"
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Loading


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GatewayConfig:
    """Build the configuration: defaults < TOML file < `SRG_*` environment < `overrides`.

    `overrides` maps dotted keys (`"sip.port"`) to already-typed values (from the CLI).
    Raises `ConfigError` naming the key on any problem.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    _apply_env(raw, env)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    _normalise_routes(raw)
    config = _build(GatewayConfig, raw, "")
    config = _resolve_secrets(config, env)
    validate(config)
    return config


def _normalise_routes(raw: dict[str, Any]) -> None:
    """`recording = true/false` in a route reads naturally; the field stores "on"/"off" so that
    "not set" ("") can inherit [records] recording."""
    routes = raw.get("routes")
    if not isinstance(routes, list):
        return
    for route in routes:
        if isinstance(route, dict) and isinstance(route.get("recording"), bool):
            route["recording"] = "on" if route["recording"] else "off"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    target = raw.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{section}: expected a table, got {type(target).__name__}")
    target[key] = value


def _env_keys() -> dict[str, tuple[str, str, Any]]:
    """SRG_<SECTION>_<KEY> -> (section, key, type) for every scalar or list key of a section."""
    keys: dict[str, tuple[str, str, Any]] = {}
    hints = typing.get_type_hints(GatewayConfig)
    for section in _ENV_SECTIONS:
        section_type = hints[section]
        for name, hint in typing.get_type_hints(section_type).items():
            if dataclasses.is_dataclass(hint) or hint is Secret or _is_table(hint):
                continue
            keys[f"{ENV_PREFIX}{section}_{name}".upper()] = (section, name, hint)
    return keys


def _is_table(hint: Any) -> bool:
    """A dict, or a list of tables: not expressible as one environment variable."""
    if hint is dict or typing.get_origin(hint) is dict:
        return True
    args = typing.get_args(hint) if typing.get_origin(hint) is tuple else ()
    return bool(args) and dataclasses.is_dataclass(args[0])


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, (section, name, hint) in _env_keys().items():
        if var not in env:
            continue
        text = env[var]
        _set_dotted(raw, f"{section}.{name}", _parse_env_value(text, hint, var))


def _parse_env_value(text: str, hint: Any, var: str) -> Any:
    """Environment values are strings: convert them to the field's type, naming the variable."""
    text = text.strip()
    if hint is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}: {text!r} is not a boolean (true/false)")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{var}: {text!r} is not an integer") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{var}: {text!r} is not a number") from None
    if typing.get_origin(hint) is tuple:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _build(cls: Any, raw: Any, prefix: str) -> Any:
    """Turn a TOML table into dataclass `cls`, checking types and rejecting unknown keys."""
    if isinstance(raw, cls):  # already built (a route's MCP servers, resolved at load)
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        where = _join(prefix, key)
        if where in _RESOLVED_ONLY:
            source = "realtime.api_key_env" if where == "realtime.api_key" else "control.token_env"
            raise ConfigError(
                f"{where}: not allowed in a file; the value is read from the environment "
                f"variable named by {source} (or the matching *_file)"
            )
        if key not in known:
            raise ConfigError(f"{where}: unknown key")
        if cls is McpServerConfig and key == "headers":
            raise ConfigError(
                f"{where}: not allowed in a file; name environment variables in headers_env "
                '(e.g. headers_env = {Authorization = "CRM_MCP_AUTH"})'
            )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{_join(prefix, f.name)}: required key is missing")
            continue
        kwargs[f.name] = _convert(hints[f.name], raw[f.name], _join(prefix, f.name))
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {_describe(value)}")
        if dataclasses.is_dataclass(item_type):
            return tuple(_build(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
        return tuple(_convert(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {_describe(value)}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {hint} for {key}")  # a bug, not user input
    if hint is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__}")
        return Secret(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {_describe(value)} is not a boolean (true/false)")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {_describe(value)} is not an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: {_describe(value)} is not a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {_describe(value)} is not a string")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# ---------------------------------------------------------------------------------------------
# Secrets


def _read_secret(
    key: str, inline: Secret, env_name: str, file_name: str, env: Mapping[str, str]
) -> Secret:
    """One password source only: inline, `*_env` (variable name) or `*_file` (path)."""
    sources = [s for s in (bool(inline), bool(env_name), bool(file_name)) if s]
    if len(sources) > 1:
        raise ConfigError(f"{key}: set only one of password, password_env, password_file")
    if env_name:
        if env_name not in env:
            raise ConfigError(f"{key}_env: environment variable {env_name} is not set")
        return Secret(env[env_name])
    if file_name:
        try:
            # Files written by `echo secret > f` end with a newline that is not the password.
            return Secret(Path(file_name).read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key}_file: cannot read {file_name!r} ({exc})") from None
    return inline


def _resolve_secrets(config: GatewayConfig, env: Mapping[str, str]) -> GatewayConfig:
    regs = tuple(
        dataclasses.replace(
            reg,
            password=_read_secret(
                f"registrations[{i}].password",
                reg.password,
                reg.password_env,
                reg.password_file,
                env,
            ),
        )
        for i, reg in enumerate(config.registrations)
    )
    auth = config.sip.inbound_auth
    auth = dataclasses.replace(
        auth,
        password=_read_secret(
            "sip.inbound_auth.password", auth.password, auth.password_env, auth.password_file, env
        ),
    )
    api_key = (
        Secret(env.get(config.realtime.api_key_env, ""))
        if config.realtime.api_key_env
        else Secret("")
    )
    control = config.control
    if control.token_env and control.token_file:
        raise ConfigError("control.token_env: set only one of token_env, token_file")
    token_file = control.token_file
    if token_file and not Path(token_file).exists():
        token_file = ""  # generated at start (gateway/control_token.py), not an error
    token = _read_secret("control.token", Secret(""), control.token_env, token_file, env)
    if control.token_env and not token.reveal().strip():
        raise ConfigError(f"control.token_env: environment variable {control.token_env} is empty")
    if token_file and not token.reveal().strip():
        raise ConfigError(f"control.token_file: {token_file!r} is empty")
    control = dataclasses.replace(control, token=token)
    mcp = _resolve_mcp(config.realtime.mcp_servers, "realtime.mcp_servers", env)
    return dataclasses.replace(
        config,
        control=control,
        registrations=regs,
        sip=dataclasses.replace(config.sip, inbound_auth=auth),
        realtime=dataclasses.replace(config.realtime, api_key=api_key, mcp_servers=mcp),
        routes=tuple(_resolve_route_mcp(route, i, env) for i, route in enumerate(config.routes)),
    )


def _resolve_mcp(
    servers: tuple[McpServerConfig, ...], key: str, env: Mapping[str, str]
) -> tuple[McpServerConfig, ...]:
    """Read each MCP server's header values from the environment variables it names."""
    resolved = []
    for i, server in enumerate(servers):
        headers: dict[str, Secret] = {}
        for header, var in server.headers_env.items():
            where = f"{key}[{i}].headers_env.{header}"
            if not isinstance(var, str) or not var:
                raise ConfigError(f"{where}: expected the name of an environment variable")
            if not env.get(var, "").strip():
                raise ConfigError(f"{where}: environment variable {var} is not set or empty")
            headers[header] = Secret(env[var].strip())
        resolved.append(dataclasses.replace(server, headers=headers))
    return tuple(resolved)


def _resolve_route_mcp(route: RouteConfig, index: int, env: Mapping[str, str]) -> RouteConfig:
    """A route's `realtime.mcp_servers` override, built and resolved now (route_config has no
    environment to read header secrets from)."""
    raw = route.realtime.get("mcp_servers")
    if raw is None:
        return route
    key = f"routes[{index}].realtime.mcp_servers"
    built = _convert(tuple[McpServerConfig, ...], raw, key)
    realtime = {**route.realtime, "mcp_servers": _resolve_mcp(built, key, env)}
    return dataclasses.replace(route, realtime=realtime)


# ---------------------------------------------------------------------------------------------
# Validation

_SIP_URI = re.compile(r"^sips?:[^\s]+$", re.IGNORECASE)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def _check_port(key: str, port: int, low: int = 1) -> None:
    if not low <= port <= 65535:
        raise ConfigError(f"{key}: {port} is not a valid port ({low}-65535)")


def _check_ip(key: str, value: str) -> None:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an IP address") from None


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def _validate_admission(sip: SipConfig) -> None:
    if not 0 < sip.invite_rate_per_source <= 10000:
        raise ConfigError(
            f"sip.invite_rate_per_source: {sip.invite_rate_per_source} must be > 0 and <= 10000"
        )
    if not 1 <= sip.invite_burst_per_source <= 100000:
        raise ConfigError(
            f"sip.invite_burst_per_source: {sip.invite_burst_per_source} must be 1-100000"
        )
    if sip.max_calls_per_source < 1:
        raise ConfigError(f"sip.max_calls_per_source: {sip.max_calls_per_source} must be >= 1")
    if not 16 <= sip.max_tracked_sources <= 1_000_000:
        raise ConfigError(f"sip.max_tracked_sources: {sip.max_tracked_sources} must be 16-1000000")
    if not 1 <= sip.inbound_auth.nonce_ttl_s <= 86400:
        raise ConfigError(
            f"sip.inbound_auth.nonce_ttl_s: {sip.inbound_auth.nonce_ttl_s} must be 1-86400 seconds"
        )


def _validate_media_bounds(media: MediaConfig) -> None:
    """Issue 9 media keys: latching and the input/playout bounds."""
    if not 1 <= media.rtp_latch_packets <= 50:
        raise ConfigError(f"media.rtp_latch_packets: {media.rtp_latch_packets} is not in 1-50")
    if not 20 <= media.input_burst_ms <= 5000:
        raise ConfigError(f"media.input_burst_ms: {media.input_burst_ms} is not in 20-5000 ms")
    if not 0 <= media.rtp_port_quarantine_s <= 600:
        raise ConfigError(
            f"media.rtp_port_quarantine_s: {media.rtp_port_quarantine_s:g} is not in 0-600 s "
            "(0 = off)"
        )
    if not 1 <= media.playout_max_s <= 3600:
        raise ConfigError(f"media.playout_max_s: {media.playout_max_s:g} is not in 1-3600 s")
    if media.ipv6_address:
        try:
            ipaddress.IPv6Address(media.ipv6_address.strip("[]"))
        except ValueError:
            raise ConfigError(
                f"media.ipv6_address: {media.ipv6_address!r} is not an IPv6 address literal"
            ) from None


def _validate_sip_limits(sip: SipConfig) -> None:
    for key in ("max_server_transactions", "max_server_transactions_per_source"):
        if getattr(sip, key) < 0:
            raise ConfigError(f"sip.{key}: {getattr(sip, key)} must be >= 0 (0 = automatic)")
    for key in ("tcp_max_connections", "tcp_max_connections_per_source"):
        if getattr(sip, key) < 1:
            raise ConfigError(f"sip.{key}: {getattr(sip, key)} must be at least 1")
    if not sip.tcp_message_deadline_s > 0:
        raise ConfigError(f"sip.tcp_message_deadline_s: {sip.tcp_message_deadline_s} must be > 0")
    # 65535 is the cap on a whole message (sip.transport DEFAULT_MAX_MESSAGE).
    for key, low in (("tcp_max_header_bytes", 1024), ("tcp_max_body_bytes", 0)):
        value = getattr(sip, key)
        if not low <= value <= 65535:
            raise ConfigError(f"sip.{key}: {value} is not in {low}-65535")


def server_transaction_cap(sip: SipConfig) -> int:
    """sip.max_server_transactions, or its automatic value: 100 per call (a call holds a few at
    once: INVITE until Timer L, BYE, refreshes, one per INFO digit for 64*T1), at least 1000."""
    return sip.max_server_transactions or max(1000, 100 * sip.max_calls)


def validate(config: GatewayConfig) -> None:
    """Check values and cross-field rules; raise `ConfigError` naming the first bad key."""
    sip = config.sip
    # The bind address must be a literal: resolving names at start hides which interface
    # the gateway really listens on.
    _check_ip("sip.host", sip.host)
    _check_port("sip.port", sip.port)
    if sip.advertised_host and not (
        _HOSTNAME.match(sip.advertised_host) or is_ip_address(sip.advertised_host)
    ):
        raise ConfigError(
            f"sip.advertised_host: {sip.advertised_host!r} is not an IP address or host name"
        )
    if not sip.transports:
        raise ConfigError("sip.transports: at least one transport is required (udp, tcp)")
    for i, transport in enumerate(sip.transports):
        _check_choice(f"sip.transports[{i}]", transport, VALID_TRANSPORTS)
    if sip.max_calls < 1:
        raise ConfigError(f"sip.max_calls: {sip.max_calls} must be at least 1")
    for i, net in enumerate(sip.allow_networks):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"sip.allow_networks[{i}]: {net!r} is not a CIDR network") from None
    if not sip.codecs:
        raise ConfigError("sip.codecs: at least one codec is required (PCMU, PCMA)")
    for i, codec in enumerate(sip.codecs):
        _check_choice(f"sip.codecs[{i}]", codec, VALID_CODECS)
    if sip.inbound_auth.username and not sip.inbound_auth.password:
        raise ConfigError("sip.inbound_auth.password: required when inbound_auth.username is set")
    _validate_admission(sip)
    _validate_sip_limits(sip)

    for i, reg in enumerate(config.registrations):
        key = f"registrations[{i}]"
        if not _SIP_URI.match(reg.registrar) or not _parses_as_uri(reg.registrar):
            raise ConfigError(f"{key}.registrar: {reg.registrar!r} is not a sip: or sips: URI")
        if not reg.username:
            raise ConfigError(f"{key}.username: must not be empty")
        if not 10 <= reg.expires <= 86400:
            raise ConfigError(f"{key}.expires: {reg.expires} is not in 10-86400 seconds")
        for j, caller in enumerate(reg.allowed_caller_ids):
            if not re.fullmatch(r"[A-Za-z0-9+*#._~-]{1,64}", caller):
                raise ConfigError(
                    f"{key}.allowed_caller_ids[{j}]: {caller!r} is not a SIP user part "
                    "(1-64 of A-Z a-z 0-9 + * # . _ ~ -)"
                )

    media = config.media
    # Below 1024 needs root and collides with system services; RTP wants an even base port
    # (RFC 3550 11) with RTCP on the next odd one, so a range needs at least two ports.
    _check_port("media.rtp_port_min", media.rtp_port_min, low=1024)
    _check_port("media.rtp_port_max", media.rtp_port_max, low=1024)
    if media.rtp_port_max <= media.rtp_port_min:
        raise ConfigError(
            f"media.rtp_port_max: {media.rtp_port_max} must be greater than "
            f"media.rtp_port_min ({media.rtp_port_min})"
        )
    _check_choice("media.idle_audio", media.idle_audio, VALID_IDLE_AUDIO)
    if media.rtp_timeout_s < 0:
        raise ConfigError(f"media.rtp_timeout_s: {media.rtp_timeout_s} must be >= 0 (0 = off)")
    _validate_media_bounds(media)

    if not 0 <= config.calls.answer_delay_ms <= 60000:
        raise ConfigError(
            f"calls.answer_delay_ms: {config.calls.answer_delay_ms} is not in 0-60000 ms"
        )
    if config.calls.max_duration_s < 0:
        raise ConfigError(
            f"calls.max_duration_s: {config.calls.max_duration_s} must be >= 0 (0 = unlimited)"
        )

    _check_choice("log.level", config.log.level.upper(), VALID_LOG_LEVELS)
    _check_choice("log.format", config.log.format, VALID_LOG_FORMATS)

    url = config.realtime.url
    if not (url.startswith("ws://") or url.startswith("wss://")):
        raise ConfigError(f"realtime.url: {url!r} is not a ws:// or wss:// URL")
    _validate_realtime(config)
    _validate_calls(config)
    _validate_product(config)
    for i in range(len(config.routes)):
        route_config(config, i)  # raises naming routes[i].<key>


def _validate_product(config: GatewayConfig) -> None:
    """[control], [records], [webhooks], [shutdown], registration names and [[routes]]."""
    control = config.control
    _check_ip("control.host", control.host)
    _check_port("control.port", control.port, low=0)
    for i, name in enumerate(control.allowed_hosts):
        if not (_HOSTNAME.match(name) or is_ip_address(name)):
            raise ConfigError(f"control.allowed_hosts[{i}]: {name!r} is not a host name")
    if not 1024 <= control.max_head_bytes <= 1024 * 1024:
        raise ConfigError(
            f"control.max_head_bytes: {control.max_head_bytes} is not in 1024-1048576"
        )
    if not 1024 <= control.max_body_bytes <= 16 * 1024 * 1024:
        raise ConfigError(
            f"control.max_body_bytes: {control.max_body_bytes} is not in 1024-16777216"
        )
    if not 0.5 <= control.read_timeout_s <= 300:
        raise ConfigError(f"control.read_timeout_s: {control.read_timeout_s} is not in 0.5-300 s")
    if config.records.recording and not (config.records.recording_dir or config.records.dir):
        raise ConfigError("records.recording: true needs records.dir or records.recording_dir")
    if any(r.recording == "on" for r in config.routes) and not (
        config.records.recording_dir or config.records.dir
    ):
        raise ConfigError("records.dir: a route records calls, so a directory is required")
    hooks = config.webhooks
    for key in ("call_started_url", "call_ended_url"):
        url = getattr(hooks, key)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhooks.{key}: {url!r} is not an http:// or https:// URL")
        _check_plain_http(f"webhooks.{key}", url, hooks.allow_plain_http, "webhooks")
    if not 0.1 <= hooks.timeout_s <= 60:
        raise ConfigError(f"webhooks.timeout_s: {hooks.timeout_s} is not in 0.1-60 s")
    if not 0 <= hooks.max_response_bytes <= 64 * 1024 * 1024:
        raise ConfigError(
            f"webhooks.max_response_bytes: {hooks.max_response_bytes} is not in 0-67108864"
        )
    if not 0 <= config.shutdown.drain_timeout_s <= 3600:
        raise ConfigError(
            f"shutdown.drain_timeout_s: {config.shutdown.drain_timeout_s} is not in 0-3600 s"
        )
    reg_names: set[str] = set()
    for i, reg in enumerate(config.registrations):
        name = registration_name(reg)
        if name in reg_names:
            raise ConfigError(f"registrations[{i}].name: {name!r} is used twice")
        reg_names.add(name)
    route_names: set[str] = set()
    tool_names = {t.name for t in config.tools}
    for i, route in enumerate(config.routes):
        key = f"routes[{i}]"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", route.name) or route.name in route_names:
            raise ConfigError(
                f"{key}.name: {route.name!r} must be unique, 1-64 of A-Z a-z 0-9 _ . -"
            )
        route_names.add(route.name)
        match = route.match
        for field_name in ("request_user_regex", "to_user_regex", "header_regex"):
            pattern = getattr(match, field_name)
            if pattern:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(
                        f"{key}.match.{field_name}: {pattern!r} is not a regular expression ({exc})"
                    ) from None
        if (match.header_value or match.header_regex) and not match.header:
            raise ConfigError(f"{key}.match.header: required with header_value / header_regex")
        if match.header and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", match.header):
            raise ConfigError(f"{key}.match.header: {match.header!r} is not a header name")
        if match.source_network:
            try:
                ipaddress.ip_network(match.source_network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"{key}.match.source_network: {match.source_network!r} is not a CIDR network"
                ) from None
        if match.registration and match.registration not in reg_names:
            raise ConfigError(
                f"{key}.match.registration: {match.registration!r} is not a registrations name"
            )
        for j, tool in enumerate(route.tools):
            if tool != "*" and tool not in tool_names:
                raise ConfigError(f"{key}.tools[{j}]: {tool!r} is not a [[tools]] name")
        _check_choice(f"{key}.recording", route.recording, ("", "on", "off"))


def registration_name(reg: RegistrationConfig) -> str:
    return reg.name or reg.username


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
            changes[key] = _convert(hints[key], value, where)
        sections[section] = dataclasses.replace(base, **changes)
    tools = config.tools
    if "*" not in route.tools:
        tools = tuple(t for t in config.tools if t.name in route.tools)
    result = dataclasses.replace(config, tools=tools, **sections)
    try:
        _validate_realtime(result)
        _validate_calls(result)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}.{exc}") from None
    return result


def _validate_realtime(config: GatewayConfig) -> None:
    rt = config.realtime
    _check_choice("realtime.provider", rt.provider, ("openai", "azure", "custom"))
    _check_choice("realtime.simulator", rt.simulator, ("auto", "always", "never"))
    _check_choice("realtime.turn_detection", rt.turn_detection, ("semantic_vad", "server_vad"))
    _check_choice("realtime.eagerness", rt.eagerness, ("low", "medium", "high", "auto"))
    _check_choice("realtime.noise_reduction", rt.noise_reduction, ("", "near_field", "far_field"))
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
    _check_choice("realtime.truncation", rt.truncation, ("auto", "disabled", "retention_ratio"))
    if not 0.0 <= rt.truncation_retention_ratio <= 1.0:
        raise ConfigError(
            f"realtime.truncation_retention_ratio: {rt.truncation_retention_ratio} is not "
            "within 0..1"
        )
    if rt.reasoning_effort:
        _check_choice("realtime.reasoning_effort", rt.reasoning_effort, REASONING_EFFORTS)
        if takes_reasoning(rt.model) is False:
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
        _check_choice(f"{key}.require_approval", server.require_approval, ("always", "never"))
        for field_name in ("allowed_tools", "no_approval_tools"):
            for j, tool in enumerate(getattr(server, field_name)):
                if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", tool):
                    raise ConfigError(f"{key}.{field_name}[{j}]: {tool!r} is not a tool name")
    choice = rt.tool_choice
    kind, _, name = choice.partition(":")
    if choice in ("auto", "none", "required"):
        pass
    elif kind == "function" and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        pass  # the tool's existence is checked by _validate_calls (it knows the tool names)
    elif kind == "mcp" and name in labels:
        pass
    else:
        raise ConfigError(
            f"realtime.tool_choice: {choice!r} is not auto, none, required, function:<tool name> "
            "or mcp:<an mcp_servers server_label>"
        )


_DIGITS = "0123456789*#ABCD"


def _validate_calls(config: GatewayConfig) -> None:
    calls = config.calls
    _check_choice("calls.dtmf_mode", calls.dtmf_mode, ("forward", "ignore"))
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
        if not _SIP_URI.match(target.uri) or not _parses_as_uri(target.uri):
            raise ConfigError(f"{key}.uri: {target.uri!r} is not a sip: or sips: URI")
    for i, action in enumerate(calls.digit_actions):
        key = f"calls.digit_actions[{i}]"
        if len(action.digit) != 1 or action.digit not in _DIGITS:
            raise ConfigError(f"{key}.digit: {action.digit!r} is not one DTMF digit")
        _check_choice(f"{key}.action", action.action, ("transfer", "hangup"))
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
        _check_plain_http(f"{key}.url", tool.url, tool.allow_plain_http, key)
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


def _check_plain_http(key: str, url: str, allowed: bool, section: str) -> None:
    """http:// only to loopback, or with `<section>.allow_plain_http = true` (issue 9)."""
    from gateway.http_post import plain_http_problem

    problem = plain_http_problem(url, allowed) if url else None
    if problem is not None:
        raise ConfigError(
            f"{key}: {problem.replace('allow_plain_http', f'{section}.allow_plain_http')}"
        )


def _parses_as_uri(value: str) -> bool:
    # The same parser the registration client uses, so whatever passes here also starts.
    from sip.uri import UriError, parse_uri

    try:
        parse_uri(value)
    except (UriError, ValueError):
        return False
    return True


def is_ip_address(value: str) -> bool:
    """An IPv4/IPv6 literal (brackets allowed), not a host name."""
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def parse_port_range(text: str) -> tuple[int, int]:
    """`"10000-20000"` -> (10000, 20000); raises ConfigError naming `--rtp-ports`."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--rtp-ports: {text!r} is not MIN-MAX (e.g. 10000-20000)")
    return int(match.group(1)), int(match.group(2))


def redacted(config: GatewayConfig) -> dict[str, Any]:
    """The config as plain data for a start-up log line, with every secret replaced by ***."""

    def walk(value: Any) -> Any:
        if isinstance(value, Secret):
            return "***" if value else ""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: walk(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(config)
