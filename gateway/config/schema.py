"""The configuration's shape: one frozen dataclass per TOML table, their defaults, the accepted
values of the choice keys, and `ConfigError`. No loading, no checking (load.py, validate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.realtime.models import DEFAULT_MODEL
from gateway.secret import Secret
from sip.sdp_crypto import DEFAULT_SUITES, SUITES
from sip.tls import TlsClientSettings, TlsServerSettings

ENV_PREFIX = "SRG_"
DEFAULT_REALTIME_URL = "wss://api.openai.com/v1/realtime"
VALID_TRANSPORTS = ("udp", "tcp")
VALID_CODECS = ("PCMU", "PCMA")
VALID_IDLE_AUDIO = ("silence", "cn", "none")
VALID_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
VALID_LOG_FORMATS = ("auto", "json", "text")
VALID_SRTP_POLICIES = ("off", "optional", "required")
VALID_SRTP_SUITES = tuple(SUITES)
VALID_TLS_VERSIONS = ("1.2", "1.3")


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key and value."""


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
class TlsConfig:
    """[sip.tls]: SIP over TLS (RFC 3261 section 26; issue 13). The listener presents
    `cert_file` (PEM, the certificate then its intermediates) with `key_file`; SIGHUP re-reads
    both. `verify_client` asks every TLS client for a certificate signed by a CA in
    `client_ca_file` (mutual TLS, for trunks that use it). Outbound TLS (registrations, trunks)
    verifies the server against `ca_file` (empty: the system trust store) and its host name;
    `verify_server = false` turns that off and `check` warns. SDES keys (a=crypto) travel in
    the SDP: they are accepted or offered over plain UDP/TCP only with
    `allow_sdes_over_plain = true` (RFC 4568 section 8.3)."""

    enabled: bool = False
    port: int = 5061
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    client_ca_file: str = ""
    verify_client: bool = False
    verify_server: bool = True
    min_version: str = "1.2"
    allow_sdes_over_plain: bool = False

    def server_settings(self) -> TlsServerSettings:
        """What sip/tls.py `server_context` / `ServerTls` take (the listener)."""
        return TlsServerSettings(
            self.cert_file, self.key_file, self.client_ca_file, self.verify_client, self.min_version
        )

    def client_settings(self) -> TlsClientSettings:
        """What sip/tls.py `client_context` takes (registrations, trunks, REFER targets)."""
        return TlsClientSettings(self.ca_file, self.verify_server, self.min_version)


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
    # RFC 3261 T1 (the round-trip estimate every transaction timer derives from: retransmits
    # from T1, give-ups such as Timer B/F/H at 64 x T1). 500 ms is the RFC's default; a closed
    # low-latency network may lower it, a long satellite path raise it.
    timer_t1_ms: int = 500
    tls: TlsConfig = field(default_factory=TlsConfig)


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
    # SRTP policy of calls from this trunk (its registrar's host) and placed through it:
    # "off" | "optional" | "required"; "" = media.srtp. A route's `srtp` wins over it.
    srtp: str = ""


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
    # Caller audio goes to the voice session in appends of at least this much (ms). 20 = each
    # packet at once (the least latency); 40-100 send one WebSocket frame per that much audio,
    # which saves CPU per call (docs/deployment.md, capacity) and delays what the model hears by
    # up to that much less 20 ms.
    append_ms: int = 20
    # Inbound jitter buffer (gateway/media/jitter.py): the hold follows the measured jitter and
    # reordering between these bounds. 20 = one packet time: a clean link waits no longer.
    jitter_min_ms: float = 20.0
    jitter_max_ms: float = 200.0
    # Bot audio waiting to be played, at most (the model streams faster than real time).
    playout_max_s: float = 120.0
    # IPv6 media (issue 10): an offer whose c= is IPv6 gets RTP on this address (written in
    # c=IN IP6; "::" = bind all, advertise the local address towards the caller). Empty: IPv6
    # media only when sip.host is IPv6; otherwise such an offer gets 488 + Warning: 301.
    ipv6_address: str = ""
    # A released RTP port pair waits this long before reuse (late packets of the old call must
    # not reach a new one); 0 = off. Size the range for it: docs/deployment.md "RTP port range".
    rtp_port_quarantine_s: float = 30.0
    # SRTP (RFC 3711, SDES keys per RFC 4568; issue 13): "off" answers RTP/AVP only (an
    # RTP/SAVP offer gets 488), "optional" answers SRTP when offered, "required" refuses plain
    # offers with 488. `srtp_suites` in our order of preference (sip/sdp_crypto.py).
    srtp: str = "off"
    srtp_suites: tuple[str, ...] = DEFAULT_SUITES


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
    # The voice API (issue 12), per route too: "realtime" (Realtime GA) or "live" (GPT-Live,
    # wss://api.openai.com/v1/live/sessions; model gpt-live-1 unless `model` is set; the
    # Realtime-only keys below are refused with it, gateway/config/per_call.py).
    api: str = "realtime"
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
    # api = "live": the Responses model the tools are delegated to, and its own prompt
    # (the tool rules; `instructions` is the voice model's).
    delegation_model: str = "gpt-5-mini"
    delegation_instructions: str = ""


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
    # SRTP policy of this route's calls: "off" | "optional" | "required"; "" = the
    # registration's `srtp`, else media.srtp (issue 13).
    srtp: str = ""


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
