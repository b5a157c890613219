"""The Gateway: SIP user agent + registrations + live calls + shutdown, for one process.

Call path (one inbound call):
    INVITE -> UserAgent (100, 180, admission: max calls, allowlist, digest) -> `_on_invite`
    -> RTP ports from the allocator -> sip.sdp.answer_offer (488 when no G.711 in the offer)
    -> media (`Gateway._open_media`: RtpStream + PlayoutQueue on the shared MediaClock)
    -> 200 with our SDP -> ... -> BYE (either side) -> media closed, ports released, `call.ended`.

What ends a call, and the Reason header (RFC 3326) on a BYE we send:
- `max_duration`: `[calls] max_duration_s` reached -> `Reason: SIP;cause=200;text="max duration"`
  (the call completed normally, it was just long: cause 200, like Asterisk's `L()` limit).
- `rtp_timeout`: no RTP for `[media] rtp_timeout_s` -> `Reason: SIP;cause=408;text="RTP timeout"`
  (408 Request Timeout is the SIP status closest to "the media went away"; the cause tells the
  PBX's CDR why the call was cut instead of leaving a silent one-way call up).
- `shutdown`: SIGTERM/SIGINT -> `Reason: SIP;cause=503;text="shutdown"` (the gateway is going
  away; callers retrying get a 503 from a draining instance too).
- `bad_answer`: late offer whose answer (in the ACK) has no codec we offered ->
  `Reason: SIP;cause=488;text="unusable SDP answer"` (a 2xx was already sent, so the 488 can only travel in the BYE).
- `voice_session_unavailable`: the Realtime session kept dropping (the per-call reconnect
  budget, `realtime.reconnect_budget` per `reconnect_window_s`, is spent) ->
  `Reason: SIP;cause=503;text="voice session unavailable"` instead of silence for the caller.
- `process_restart`: the call was up when the process died; its record is written from the
  in-progress marker at the next start (`gateway.observe.records.recover_after_crash`).
- `remote_bye`, `cancelled`, `ack_timeout`, `session_expired`, `rejected`: from the peer/UA.

Every offered call produces exactly one `call.offered` and one `call.ended` log line, so the log
doubles as a call record.

Around the call path (issue 5): the route (gateway/routes.py) is chosen in `_on_invite` and its
settings drive `_start_session`; one `Metrics` per gateway is fed at answer/hangup and by the
session's observer; a `CallRecord` (and an optional stereo WAV on the media clock) is written at
hangup; webhooks are fire-and-forget tasks. `GatewayControl` is the control API's view of the
gateway (health, readiness, live calls, hang up, originate, say). `stop()` drains: 503 to new
INVITEs and /readyz false, answered calls may end on their own until the drain timeout, then BYE.
Outbound calls (`originate`) are `LiveCall`s too, with `direction="outbound"` and the
`call.originated` event instead of `call.offered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.admission import (
    AdmissionCollector,
    admission_policy,
    apply_to_ua,
    inbound_auth,
    open_networks,
    resolve_registrars,
)
from gateway.busy_port import bind_failure, with_errno
from gateway.call.session import CallSession, SessionSettings
from gateway.call.settings import (
    call_policy_for,
    endpoint_for,
    http_tools_for,
    session_config_for,
    use_simulator,
)
from gateway.caller_id import caller_id_for
from gateway.config import (
    ConfigError,
    GatewayConfig,
    RegistrationConfig,
    SipConfig,
    is_ip_address,
    load_config,
    registration_name,
)
from gateway.config.redact import configured_secrets
from gateway.config.reload import changed_keys, reload_plan
from gateway.limits import limit_counts, sip_limits, transport_options
from gateway.media import g711
from gateway.media.dtmf import InbandDtmfDetector
from gateway.media.jitter import Frame, JitterBuffer
from gateway.media.pacer import (
    CallOutput,
    IdlePolicy,
    MediaClock,
    PlayoutQueue,
    shared_clock,
)
from gateway.media.ports import PortAllocator, pair_count, pairs_needed, range_shortfall
from gateway.media.stream import NoFreePortError, RtpStream, StreamConfig
from gateway.media_address import (
    INCOMPATIBLE_ADDRESS,
    MediaEndpoint,
    MediaFamilies,
    answered_address,
    local_ip_towards,
    offer_problem,
    reoffer_problem,
    warning_301,
)
from gateway.observe.logs import log_event, set_secrets
from gateway.observe.metrics import Metrics
from gateway.observe.recording import StereoRecorder
from gateway.observe.records import (
    RESTART_CAUSE,
    CallRecord,
    recover_after_crash,
    remove_live_marker,
    write_live_marker,
)
from gateway.realtime.client import Endpoint
from gateway.routes import Route, RouteTable, facts_from_invite
from gateway.webhooks import Webhooks
from sip.admission import Admission, TokenBucket, local_addresses
from sip.registration import REGISTERED, RegistrationClient
from sip.sdp import (
    SUPPORTED_CODECS,
    AnswerResult,
    CodecPrefs,
    LocalSdpState,
    MediaInfo,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    answer_offer,
    build_offer,
    parse_sdp,
    process_answer,
)
from sip.transport import Transport
from sip.uac_auth import bind_hops
from sip.uri import parse_uri
from sip.useragent import IncomingCall, UserAgent

log = logging.getLogger("gateway")

REASON_MAX_DURATION = 'SIP;cause=200;text="max duration"'
REASON_RTP_TIMEOUT = 'SIP;cause=408;text="RTP timeout"'
REASON_SHUTDOWN = 'SIP;cause=503;text="shutdown"'
REASON_BAD_ANSWER = 'SIP;cause=488;text="unusable SDP answer"'

OUTBOUND_ROUTE = "outbound"  # route label of calls placed through the control API

_IDLE = {
    "silence": IdlePolicy.SILENCE,
    "cn": IdlePolicy.COMFORT_NOISE,
    "none": IdlePolicy.NOTHING,
}
# Echo mode keeps at most this much caller audio queued (0.5 s of G.711).
_ECHO_MAX_QUEUED_BYTES = 4000

# UserAgent end reasons -> the `cause` we log.
_UA_CAUSES = {
    "bye": "remote_bye",
    "cancelled": "cancelled",
    "no answer": "no_answer",
    "ack timeout": "ack_timeout",
    "session expired": "session_expired",
    "local bye": "local_bye",
    "rejected": "rejected",
    "shutdown": "shutdown",
}


@dataclass
class CallMedia:
    """One call's media: its RTP port and, once running, the stream and the outbound tick."""

    rtp_port: int
    stream: RtpStream
    queue: PlayoutQueue | None = None  # created once the codec is negotiated
    output: CallOutput | None = None  # our outbound 20 ms tick, from answer on
    inband: InbandDtmfDetector | None = None
    after_tick: Any = None  # Realtime mode: the session's per-tick hook (drain detection)
    recorder: StereoRecorder | None = None  # stereo WAV, from answer on
    caller_offset: int | None = None  # media clock samples minus the caller's media_time
    last_bot_sample: int = -1


class _PendingCall:
    """Stands in for the SIP call of an outbound call while its INVITE is in flight."""

    call_id = ""
    from_header = ""
    to_header = ""
    local_tag = ""
    remote_tag = ""
    state = "early"


@dataclass
class LiveCall:
    """What the gateway tracks for one call, from INVITE to `call.ended`."""

    sip: Any  # IncomingCall, or OutgoingCall for calls placed through the control API
    offered_at: float
    route: Route
    direction: str = "inbound"
    record: CallRecord | None = None
    started_wall: float = 0.0  # time.time() at INVITE, for records and webhooks
    sdp_state: LocalSdpState = field(default_factory=LocalSdpState)
    answered_at: float | None = None
    media: CallMedia | None = None
    media_info: MediaInfo | None = None
    local_ip: str = ""  # our c= address
    media_bind: str = ""  # where the RTP socket binds (its family is the c= family)
    late_offer: SessionDescription | None = None
    local_cause: str | None = None  # set when we end the call ourselves
    reject_status: int | None = None
    ended: bool = False
    session: CallSession | None = None  # the Realtime bridge (None in echo mode)
    answer_body: bytes = b""  # our SDP, sent when the session is ready
    timers: set[asyncio.Task[Any]] = field(default_factory=set)
    dtmf_bucket: TokenBucket | None = None  # calls.max_dtmf_per_s, made at the first digit
    dtmf_drop_logged: bool = False

    @property
    def call_id(self) -> str:
        return self.sip.call_id


class Gateway:
    """One gateway process: `await start()`, serve calls, `await stop(drain_timeout)`."""

    def __init__(
        self,
        config: GatewayConfig,
        config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """`config_path`: the file SIGHUP re-reads (None: reload keeps everything);
        `overrides`: the command line's dotted keys, applied again on every reload."""
        self.config = config
        self.config_path = config_path
        self.overrides = dict(overrides or {})
        # The file alone (no command line), to tell a file edit of a key the command line pins.
        self._file_config = self._load_file_only(os.environ) if self.overrides else None
        self._control_token = ""  # generated or read at start; redacted from logs too
        self._register_secrets()
        # ConfigError here (an unreadable instructions file) is a start-up configuration error.
        self.routes = RouteTable.load(config)
        self.prometheus = Metrics()
        self.prometheus.registry.register(AdmissionCollector(lambda: self.ua))
        self.webhooks = Webhooks(config.webhooks, config.sip.user_agent)
        self.control: Any = None  # gateway.control.ControlServer once started
        self._reg_names: dict[int, str] = {}
        self._parse_errors_seen = 0
        self._drained = asyncio.Event()
        self.transport: Transport | None = None
        self.ua: UserAgent | None = None
        self.registrations: list[RegistrationClient] = []
        self.ports = PortAllocator(
            config.media.rtp_port_min,
            config.media.rtp_port_max,
            config.media.rtp_port_quarantine_s,
        )
        self.clock: MediaClock | None = None
        self._owned_tasks: set[asyncio.Task[Any]] = set()
        self.calls: dict[str, LiveCall] = {}
        self._prefs = CodecPrefs(codecs=config.sip.codecs)
        self._media_ip: str | None = None
        self._media_families: MediaFamilies | None = None
        self._stopping = False
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Realtime: the endpoint calls connect to, and the built-in simulator when it serves.
        self.simulator: Any = None
        self.endpoint: Endpoint | None = None

    @property
    def realtime_mode(self) -> bool:
        """Calls are bridged to Realtime unless the gateway runs as an echo test."""
        return not self.config.media.echo

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def active_calls(self) -> int:
        return sum(1 for live in self.calls.values() if not live.ended)

    @property
    def sip_port(self) -> int:
        return self.transport.port if self.transport is not None else self.config.sip.port

    async def start(self) -> None:
        """Bind SIP, start the media clock and registrations. OSError when the port is taken."""
        self._loop = asyncio.get_running_loop()
        sip = self.config.sip
        limits = sip_limits(self.config)
        self.transport = Transport(
            sip.host, sip.port, transports=sip.transports, **transport_options(self.config, limits)
        )
        self.ua = UserAgent(
            self.transport,
            advertised_host=sip.advertised_host or None,
            user_agent=sip.user_agent,
            max_calls=sip.max_calls,
            admission=Admission(admission_policy(sip)),
            inbound_auth=inbound_auth(sip),
            on_invite=self._on_invite,
            on_call_ended=self._on_call_ended,
            on_ack_sdp=self._on_ack_sdp,
            on_reoffer=self._on_reoffer,
            on_dtmf=self._on_info_dtmf,
            on_ack=self._on_ack,
            max_server_transactions=limits.max_server_transactions,
            max_server_transactions_per_source=limits.max_server_transactions_per_source,
        )
        self.prometheus.read_sip_limits_from(lambda: limit_counts(self.ua, self.transport))
        if limits.tcp_lowered and "tcp" in sip.transports:
            log_event(
                log,
                "sip.tcp_cap_lowered",
                f"sip.tcp_max_connections lowered from {limits.tcp_configured} to "
                f"{limits.tcp_max_connections} to fit the open-file limit {limits.fd_limit} "
                f"({limits.fd_for_calls} descriptors kept for calls); raise it with ulimit -n",
                level=logging.WARNING,
            )
        media = self.config.media
        short = range_shortfall(
            media.rtp_port_min, media.rtp_port_max, sip.max_calls, media.rtp_port_quarantine_s
        )
        if short:
            log_event(
                log,
                "media.port_range_small",
                short,
                level=logging.WARNING,
                port_pairs=pair_count(media.rtp_port_min, media.rtp_port_max),
                pairs_needed=pairs_needed(sip.max_calls, media.rtp_port_quarantine_s),
            )
        if self.realtime_mode:
            await self._start_realtime()
        self._recover_after_crash()
        self.transport.on_trace = self._count_sip_message
        await self._configure_admission()
        await self.ua.start()
        self._media_ip = await self._resolve_media_ip()
        self._media_families = MediaFamilies.from_config(
            self.config.sip.host, self._media_ip, self.config.media.ipv6_address
        )
        self.clock = shared_clock(self._loop)
        self.prometheus.read_pacer_from(
            lambda: self.clock.stats if self.clock is not None else None
        )
        for reg in self.config.registrations:
            self.registrations.append(await self._start_registration(reg))
        await self._start_control()
        self._started = True
        log_event(
            log,
            "gateway.started",
            f"listening on {self.transport.host}:{self.transport.port} "
            f"({', '.join(self.transport.transports)})",
            host=self.transport.host,
            port=self.transport.port,
            transports=list(self.transport.transports),
            advertised_host=self.ua.advertised_host,
            # What goes in our SDP c= line: a wrong one is the classic one-way-audio cause.
            sdp_address=self._media_ip or "local address towards each caller",
            media_families=self._media_families.names,
            rtp_ports=f"{self.config.media.rtp_port_min}-{self.config.media.rtp_port_max}",
            registrations=len(self.config.registrations),
            echo=self.config.media.echo,
            realtime=self.endpoint.redacted() if self.endpoint else None,
            simulator=self.simulator is not None,
            routes=self.routes.names,
            control=self.control.url if self.control is not None else None,
        )

    async def _configure_admission(self) -> None:
        """Who may call: the host's own addresses and the registrars (sip/admission.py)."""
        assert self.ua is not None
        sip = self.config.sip
        self._trust_local(sip)
        registrars = await resolve_registrars(self.config.registrations)
        self.ua.admission.set_registrars(registrars)
        opened = open_networks(sip)
        if opened:
            log_event(
                log,
                "admission.open",
                f"sip.allow_networks contains {', '.join(opened)}: any source may call (and "
                "spend Realtime minutes)"
                + ("" if sip.inbound_auth.username else " without credentials"),
                level=logging.WARNING,
                networks=opened,
            )
        log_event(
            log,
            "admission.configured",
            "INVITEs admitted from: the host itself"
            + (f", {', '.join(sip.allow_networks)}" if sip.allow_networks else "")
            + (f", registrars {', '.join(registrars)}" if registrars else "")
            + ("; digest required" if sip.inbound_auth.username else ""),
            allow_networks=list(sip.allow_networks),
            registrars=registrars,
            digest=bool(sip.inbound_auth.username),
            invite_rate_per_source=sip.invite_rate_per_source,
            max_calls_per_source=min(sip.max_calls_per_source, sip.max_calls),
        )

    def _trust_local(self, sip: SipConfig) -> None:
        """The host itself is a trusted source unless `sip.admit_local = false`."""
        assert self.ua is not None
        if sip.admit_local:
            self.ua.admission.set_local_addresses([*local_addresses(), sip.host])
        else:
            self.ua.admission.local_networks = ()

    def _register_secrets(self) -> None:
        """Every secret of the current configuration, plus the control token (which may come
        from a generated file, not the configuration), is redacted from every log line."""
        set_secrets([*configured_secrets(self.config), self._control_token])

    async def _start_control(self) -> None:
        """The control API. A port already taken is logged, not fatal: calls are the product,
        and a second instance on one host (or a test run) must still answer the phone; the
        ERROR line and failing /readyz probes make the problem visible. The same holds for a
        token file that cannot be written: the API then stays off (closed), it never opens
        without its token."""
        cfg = self.config.control
        if not cfg.enabled:
            return
        from gateway.control import ControlServer, Limits
        from gateway.control_token import control_token

        try:
            token = control_token(cfg)
        except OSError as exc:
            log_event(
                log,
                "control.start_failed",
                f"{exc.strerror or exc}; set control.token_env or control.token_file",
                level=logging.ERROR,
                address=f"{cfg.host}:{cfg.port}",
            )
            return
        self._control_token = token or ""
        self._register_secrets()
        limits = Limits(
            max_head_bytes=cfg.max_head_bytes,
            max_body_bytes=cfg.max_body_bytes,
            head_timeout=cfg.read_timeout_s,
            body_timeout=cfg.read_timeout_s,
        )
        server = ControlServer(
            GatewayControl(self),
            cfg.host,
            cfg.port,
            token=token,
            limits=limits,
            allowed_hosts=cfg.allowed_hosts,
            metrics_public=cfg.metrics_public,
        )
        try:
            await server.start()
        except OSError as exc:
            address = f"{cfg.host}:{cfg.port}"
            exc = with_errno(exc, cfg.host, cfg.port, ("tcp",))
            message = bind_failure(
                "control API port", address, exc, "--control-port", "control.port"
            )
            log_event(log, "control.start_failed", message, level=logging.ERROR, address=address)
            return
        self.control = server

    def _count_sip_message(self, direction: str, data: bytes) -> None:
        method, status = _sip_first_line(data)
        if method is not None:
            self.prometheus.sip_request(direction, method)
        elif status is not None:
            self.prometheus.sip_response(direction, status)

    async def _start_realtime(self) -> None:
        """Resolve the Realtime endpoint; start the built-in simulator when it is to serve."""
        simulator_url = None
        if use_simulator(self.config):
            # Imported here: the simulator is a development/test aid, not on the call path.
            from gateway.realtime.simulator import Simulator

            self.simulator = Simulator("127.0.0.1", 0)
            await self.simulator.start()
            simulator_url = self.simulator.url
        self.endpoint = endpoint_for(self.config, simulator_url)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Drain and stop: refuse new calls (503, /readyz false), let answered calls end on
        their own for up to `drain_timeout` seconds (default `[shutdown] drain_timeout_s`),
        then BYE the rest (Reason cause=503), unregister, close the transport."""
        if self._stopping:
            return
        self._stopping = True
        if drain_timeout is None:
            drain_timeout = self.config.shutdown.drain_timeout_s
        if self.ua is not None:
            self.ua.accepting = False
        # Calls not answered yet get their 503 now: the PBX or dispatcher retries elsewhere.
        for live in list(self.calls.values()):
            if not live.ended and live.answered_at is None and live.direction == "inbound":
                self._reject(live, 503, "shutdown", cause="shutdown")
        if self.active_calls and drain_timeout > 0:
            log_event(
                log,
                "gateway.draining",
                f"waiting up to {drain_timeout:g} s for {self.active_calls} call(s) to end",
                calls=self.active_calls,
                drain_timeout_s=drain_timeout,
            )
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_drained(), drain_timeout)
        ending = [
            asyncio.ensure_future(self._end_for_shutdown(live))
            for live in list(self.calls.values())
            if not live.ended
        ]
        if ending:
            # BYE transactions are bounded by the UA (Timer F); this only guards against a bug.
            _, pending = await asyncio.wait(ending, timeout=10.0)
            for task in pending:
                task.cancel()
        for live in list(self.calls.values()):
            await self._finish(live, "shutdown")
        if self._owned_tasks:
            _, pending = await asyncio.wait(list(self._owned_tasks), timeout=1.0)
            for task in pending:
                task.cancel()
        # Unregister all at once: each waits for its registrar, bounded by its own timeout.
        if self.registrations:
            await asyncio.gather(
                *(r.stop(timeout=max(min(drain_timeout, 5.0), 1.0)) for r in self.registrations),
                return_exceptions=True,
            )
        self.registrations.clear()
        if self.control is not None:
            await self.control.stop()
            self.control = None
        await self.webhooks.close()
        if self.ua is not None:
            await self.ua.close()
        elif self.transport is not None:
            self.transport.close()
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None
        # The shared clock is per event loop and may serve other gateways in the same loop
        # (tests); it stops firing by itself once no call is registered.
        if self._started:
            log_event(log, "gateway.stopped", "gateway stopped")

    async def _wait_drained(self) -> None:
        while self.active_calls:
            self._drained.clear()
            await self._drained.wait()

    # -- reload (SIGHUP) -------------------------------------------------------------------------
    def reload(self, env: Any = None) -> bool:
        """SIGHUP: re-read the config file. Routes (and instructions files), tools, [calls],
        per-call [realtime] keys and the admission keys (gateway/admission.py
        RELOADABLE_PREFIXES) are applied and logged. A changed key that needs a restart
        (sip.port, ...) refuses the whole reload with an ERROR naming it; a bad file is logged
        too. Either way the running configuration stays; live calls keep their route."""
        if self.config_path is None:
            log_event(
                log, "routes.reload_skipped", "no config file to reload", level=logging.WARNING
            )
            return False
        try:
            config = load_config(
                self.config_path, os.environ if env is None else env, self.overrides
            )
            table = RouteTable.load(config)
        except ConfigError as exc:
            log_event(
                log,
                "routes.reload_failed",
                f"keeping the current configuration: {exc}",
                level=logging.ERROR,
                path=self.config_path,
                error=str(exc),
            )
            return False
        applied, restart = reload_plan(self.config, config)
        restart += self._shadowed_by_command_line(env)
        if restart:
            log_event(
                log,
                "config.reload_refused",
                f"{', '.join(restart)} changed: needs a restart; nothing was reloaded (restart, "
                "or revert those keys and send SIGHUP again)",
                level=logging.ERROR,
                path=self.config_path,
                keys=restart,
            )
            return False
        self.routes = table
        self.config = config
        if self._file_config is not None:
            self._file_config = self._load_file_only(os.environ if env is None else env)
        self._register_secrets()  # a reload may bring a new digest password
        if self.ua is not None:
            apply_to_ua(self.ua, config.sip)
            self._trust_local(config.sip)
        if applied:
            log_event(log, "config.reloaded", f"applied: {', '.join(applied)}", keys=applied)
        log_event(log, "routes.reloaded", "routes reloaded", routes=table.names)
        return True

    def _load_file_only(self, env: Any) -> GatewayConfig | None:
        if self.config_path is None:
            return None
        try:
            return load_config(self.config_path, env)
        except ConfigError:
            return None

    def _shadowed_by_command_line(self, env: Any) -> list[str]:
        """Keys changed in the file that the command line sets (e.g. --sip-port): the edit
        cannot take effect, so the reload is refused rather than ignoring it silently."""
        if self._file_config is None:
            return []
        new = self._load_file_only(os.environ if env is None else env)
        if new is None:
            return []
        changed = changed_keys(self._file_config, new)
        return [f"{key} (set on the command line)" for key in changed if key in self.overrides]

    # -- outbound calls (control API POST /calls) ---------------------------------------------------
    async def originate(
        self,
        to: str,
        instructions: str,
        registration: str | None = None,
        from_user: str | None = None,
        ring_timeout: float = 25.0,
    ) -> str:
        """Call `to` (a SIP URI, or a number dialled through a registration's registrar) and
        bridge the answered call to a Realtime session with `instructions`. Returns the
        Call-ID once the callee answered; ControlError (4xx/5xx) otherwise.

        We are the offerer here (RFC 3264 5): the INVITE carries our offer and the callee's 200
        carries the answer, so the codec is known before the session starts."""
        from gateway.control import ControlError
        from sip.useragent import Credentials

        if self._stopping or self.ua is None or not self._started:
            raise ControlError(503, "the gateway is not accepting calls")
        if not self.realtime_mode:
            raise ControlError(409, "echo mode: outbound calls need a Realtime session")
        reg = self._registration_named(registration)
        if registration and reg is None:
            raise ControlError(422, f"registration: no registration named {registration!r}")
        from_user = caller_id_for(reg, from_user)  # ControlError(403) outside the allowed set
        credentials = None
        if to.lower().startswith(("sip:", "sips:")):
            target = to
        else:
            if reg is None:
                raise ControlError(
                    422, "to: a number needs a registration (none configured or named)"
                )
            registrar = parse_uri(reg.registrar)
            port = f":{registrar.port}" if registrar.port else ""
            target = f"sip:{to}@{registrar.host}{port}"
        if reg is not None:
            # The trunk's password answers challenges from its registrar only (sip.uac_auth).
            credentials = Credentials(
                reg.username, reg.password.reveal(), bound_to=await self._registrar_hops(reg)
            )
        assert self._loop is not None
        route = dataclasses.replace(self.routes.default, name=OUTBOUND_ROUTE)
        live = LiveCall(
            sip=_PendingCall(),
            offered_at=self._loop.time(),
            route=route,
            direction="outbound",
            started_wall=time.time(),
        )
        try:
            target_uri = parse_uri(target)
            dest = await self.ua.resolve(target_uri)
        except (ValueError, OSError) as exc:
            raise ControlError(422, f"to: cannot reach {target!r}: {exc}") from None
        self._choose_media_endpoint(live, self._families().for_peer(dest.host), dest.host)
        try:
            live.media = await self._open_media(live)
        except NoFreePortError as exc:
            raise ControlError(503, str(exc)) from None
        offer = build_offer(live.local_ip, live.media.rtp_port, self._prefs, state=live.sdp_state)
        log_event(
            log,
            "call.originating",
            f"calling {target}",
            to=target,
            registration=registration_name(reg) if reg is not None else None,
        )
        try:
            call = await self.ua.invite(
                target_uri,
                offer.to_bytes(),
                from_user=from_user or None,
                dest=dest,
                credentials=credentials,
                ring_timeout=ring_timeout,
            )
        except Exception as exc:
            self._close_media(live.media, "error")
            raise ControlError(502, f"INVITE to {target} failed: {exc}") from None
        if call.status is None or not 200 <= call.status < 300:
            self._close_media(live.media, "rejected")
            status = call.status or 408
            if call.challenge_refused:
                raise ControlError(
                    502,
                    f"{target}: {call.challenge_refused} challenged the call ({status}); not "
                    f"answered: registration {registration_name(reg) if reg else '-'!r} "
                    "authenticates only to its registrar",
                )
            raise ControlError(502, f"{target} answered {status} {call.reason}".strip())
        live.sip = call
        self.calls[call.call_id] = live
        self._call_started(live, f"{dest.host}:{dest.port}")
        log_event(
            log,
            "call.originated",
            f"{target} answered",
            call_id=call.call_id,
            **{"from": call.from_header, "to": call.to_header},
            route=route.name,
        )
        try:
            info = self._answer_media(live, offer, call.remote_sdp or b"")
        except SdpError as exc:
            log_event(
                log,
                "call.media_failed",
                f"callee's answer unusable: {exc}",
                level=logging.WARNING,
                call_id=call.call_id,
                reason=str(exc),
            )
            self._spawn_owned(self._hangup(live, "bad_answer", REASON_BAD_ANSWER))
            raise ControlError(502, f"{target}: unusable SDP answer ({exc})") from None
        live.media_info = info
        self._apply_media(live.media, info)
        self._start_session(
            live, b"", control=_OutboundCallControl(self, live), instructions=instructions
        )
        self._answered(live)
        return call.call_id

    async def _registrar_hops(self, reg: RegistrationConfig) -> tuple[tuple[str, int], ...]:
        """The resolved address of the trunk's registrar: where its credentials may go."""
        assert self.ua is not None
        try:
            hop = await self.ua.resolve(parse_uri(reg.registrar))
        except (ValueError, OSError):
            return ()  # unresolvable now: answer nobody's challenge
        return bind_hops([(hop.host, hop.port)])

    def _registration_named(self, name: str | None) -> RegistrationConfig | None:
        regs = self.config.registrations
        if not name:
            return regs[0] if regs else None
        return next((r for r in regs if registration_name(r) == name), None)

    def _collect_polled_metrics(self) -> None:
        """Counters kept by other layers as plain ints: moved into Prometheus at scrape time.
        (The media clock's lateness histogram is read by the metric itself: read_pacer_from.)"""
        if self.ua is not None:
            errors = self.ua.counters.parse_errors
            # One increment for all of them: a scanner's flood must not become a loop here.
            self.prometheus.sip_parse_error(errors - self._parse_errors_seen)
            self._parse_errors_seen = errors

    async def _end_for_shutdown(self, live: LiveCall) -> None:
        if live.answered_at is None and live.direction == "inbound":
            self._reject(live, 503, "shutdown", cause="shutdown")
            return
        await self._hangup(live, "shutdown", REASON_SHUTDOWN)

    # -- addresses ---------------------------------------------------------------------------
    async def _resolve_media_ip(self) -> str | None:
        """The IP written in our SDP c= line, or None to pick per call (wildcard bind).

        SDP needs an address, and peers handle IP literals far better than names (lessons 3.1:
        wrong c= addresses are the first cause of one-way audio), so a configured host name is
        resolved once at start."""
        advertised = self.config.sip.advertised_host
        if advertised:
            if is_ip_address(advertised):
                return advertised.strip("[]")
            assert self._loop is not None
            try:
                infos = await self._loop.getaddrinfo(advertised, None, type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"sip.advertised_host {advertised!r} does not resolve: {exc}"
                ) from None
            return str(infos[0][4][0])
        host = self.config.sip.host
        if ipaddress.ip_address(host).is_unspecified:
            return None
        return host

    def _families(self) -> MediaFamilies:
        assert self._media_families is not None
        return self._media_families

    def _choose_media_endpoint(
        self, live: LiveCall, endpoint: MediaEndpoint | None, peer_host: str
    ) -> None:
        """Where the call's RTP binds and what our c= says (gateway/media_address.py)."""
        if endpoint is None:  # every configuration has one family at least
            raise OSError(f"no media address for a peer at {peer_host}")
        live.media_bind = endpoint.bind_host
        live.local_ip = local_ip_towards(endpoint, peer_host)

    # -- registrations -----------------------------------------------------------------------
    async def _start_registration(self, reg: RegistrationConfig) -> RegistrationClient:
        """Keep one AOR registered; the client logs registration.ok / registration.failed."""
        assert self.ua is not None
        client = RegistrationClient(
            self.ua,
            reg.registrar,
            reg.username,
            reg.password.reveal(),
            domain=reg.domain,
            expires=reg.expires,
            on_state=self._on_registration_state,
        )
        name = registration_name(reg)
        self._reg_names[id(client)] = name
        self.prometheus.registration_state(name, False)
        await client.start()
        return client

    def _on_registration_state(self, client: RegistrationClient, state: str, reason: str) -> None:
        name = self._reg_names.get(id(client), client.aor)
        self.prometheus.registration_state(name, state == REGISTERED)

    # -- calls: offer and answer ---------------------------------------------------------------
    async def _on_invite(self, call: IncomingCall) -> None:
        assert self._loop is not None
        facts = facts_from_invite(
            call.request_uri, call.to_header, call.invite.headers.items(), call.source.host
        )
        route = self.routes.select(facts)
        live = LiveCall(
            sip=call, offered_at=self._loop.time(), route=route, started_wall=time.time()
        )
        self.calls[call.call_id] = live
        self._call_started(live, f"{call.source.host}:{call.source.port}")
        log_event(
            log,
            "call.offered",
            f"call from {call.from_header} (route {route.name})",
            call_id=call.call_id,
            **{"from": call.from_header, "to": call.to_header},
            source=f"{call.source.host}:{call.source.port}",
            transport=call.source.proto,
            late_offer=call.offer_sdp is None,
            route=route.name,
        )
        if self._ended_by_peer(live):
            return
        if self._stopping:
            self._reject(live, 503, "shutdown", cause="shutdown")
            return
        try:
            await self._answer(live)
        except Exception as exc:  # a bug must not leave the caller ringing forever
            log.exception(
                "failed to answer call",
                extra={"event": "call.error", "fields": {"call_id": call.call_id}},
            )
            if not live.ended and live.answered_at is None:
                self._reject(live, 500, f"internal error: {type(exc).__name__}")

    async def _answer(self, live: LiveCall) -> None:
        call = live.sip
        offer: SessionDescription | None = None
        endpoint = self._families().for_peer(call.source.host)
        if call.offer_sdp is not None:
            try:
                offer = parse_sdp(call.offer_sdp)
                remote_host = answered_address(offer, self._prefs)
                endpoint, problem = offer_problem(self._families(), remote_host)
            except NoCommonCodec as exc:
                assert offer is not None
                self._reject(live, 488, str(exc), offered_codecs=_offered_codecs(offer))
                return
            except SdpError as exc:
                self._reject(live, 488, f"unparsable SDP offer: {exc}")
                return
            if endpoint is None:
                # Never a 200 whose media cannot flow (RFC 3261 20.43 warn-code 301).
                host = self.ua.advertised_host if self.ua is not None else self.config.sip.host
                self._reject(live, 488, problem, warning=warning_301(host, INCOMPATIBLE_ADDRESS))
                return
        self._choose_media_endpoint(live, endpoint, call.source.host)
        try:
            live.media = await self._open_media(live)
        except NoFreePortError as exc:
            self._reject(live, 503, str(exc))
            return
        if live.ended:  # shut down while the sockets were being bound
            self._close_media(live.media, "shutdown")
            return
        if self._ended_by_peer(live):  # CANCELled meanwhile: _finish closes the media
            return
        rtp_port = live.media.rtp_port
        if offer is None:
            # Late offer (RFC 3261 13.2.1): we offer in the 200, the answer comes in the ACK.
            # Bridged to Realtime, the session starts on our first codec and is switched
            # (session.update) if the answer picks the other law: never transcoded.
            live.late_offer = build_offer(
                live.local_ip, rtp_port, self._prefs, state=live.sdp_state
            )
            body = live.late_offer.to_bytes()
        else:
            try:
                result: AnswerResult = answer_offer(
                    offer, live.local_ip, rtp_port, self._prefs, state=live.sdp_state
                )
            except NoCommonCodec as exc:
                self._reject(live, 488, str(exc), offered_codecs=_offered_codecs(offer))
                return
            live.media_info = result.media
            self._apply_media(live.media, result.media)
            body = result.answer.to_bytes()
        if self.realtime_mode:
            # 200 only once session.updated confirmed the G.711 format (the state machine
            # calls _accept through CallControl.answer); 503 + Retry-After otherwise.
            self._start_session(live, body)
            return
        await self._accept(live, body)

    def _start_session(
        self, live: LiveCall, body: bytes, control: Any = None, instructions: str | None = None
    ) -> None:
        assert self.endpoint is not None and live.media is not None
        call = live.sip
        route = live.route
        codec = live.media_info.codec if live.media_info else self._prefs.codecs[0]
        if live.media.queue is None:
            live.media.queue = self._new_queue(codec)
        live.answer_body = body
        settings = SessionSettings(
            endpoint=self.endpoint,
            config=session_config_for(
                route.config, codec, route.instructions if instructions is None else instructions
            ),
            policy=call_policy_for(route.config),
            http_tools=http_tools_for(route.config),
            caller=call.from_header,
            callee=call.to_header,
            reconnect_budget=route.config.realtime.reconnect_budget,
            reconnect_window_s=route.config.realtime.reconnect_window_s,
            input_burst_s=self.config.media.input_burst_ms / 1000.0,
            replay_transcription_model=route.config.calls.replay_transcription_model,
        )
        session = CallSession(
            call.call_id,
            settings,
            control if control is not None else _CallControl(self, live),
            live.media.queue,
            observe=lambda kind, fields: self._on_session_event(live, kind, fields),
        )
        live.session = session
        live.media.after_tick = session.on_output_tick
        session.start()

    async def _accept(self, live: LiveCall, body: bytes) -> None:
        """Send the 200 (after the configured ring delay) and start our outbound stream."""
        call = live.sip
        assert live.media is not None
        rtp_port = live.media.rtp_port
        delay = self.config.calls.answer_delay_ms / 1000.0
        if delay > 0:
            # Ring first (the UA already sent 180): some PBXs and tests need an early phase.
            await asyncio.sleep(delay)
        if live.ended or self._ended_by_peer(live) or call.state != "early":
            return  # CANCELled (or shut down) while we prepared
        call.accept(body)
        self._answered(live)
        info = live.media_info
        log_event(
            log,
            "call.answered",
            "call answered",
            call_id=call.call_id,
            codec=info.codec if info else None,
            remote_rtp=f"{info.remote_host}:{info.remote_port}" if info else None,
            local_rtp=f"{live.local_ip}:{rtp_port}",
            telephone_event_pt=info.telephone_event_pt if info else None,
            echo=self.config.media.echo,
            route=live.route.name,
        )

    def _answered(self, live: LiveCall) -> None:
        """The call is up (200 sent, or the callee's 200 received): start sending, the
        recording, the max-duration timer, the call_started webhook."""
        assert self._loop is not None and live.media is not None
        live.answered_at = self._loop.time()
        self.prometheus.observe_setup(live.answered_at - live.offered_at)
        if live.media_info is not None:
            self._start_recording(live)
            self._start_output(live.media)
        self._mark_live(live)
        max_duration = live.route.config.calls.max_duration_s
        if max_duration > 0:
            self._spawn_timer(live, self._max_duration_timer(live, max_duration))
        self.webhooks.call_started(
            {
                "call_id": live.call_id,
                "direction": live.direction,
                "caller": live.sip.from_header,
                "callee": live.sip.to_header,
                "route": live.route.name,
            }
        )

    def _on_ack(self, call: IncomingCall) -> None:
        live = self.calls.get(call.call_id)
        if live is not None and live.session is not None and not live.ended:
            live.session.on_ack(caller_sends=_caller_sends(live))

    def _on_ack_sdp(self, call: IncomingCall, sdp: bytes) -> None:
        live = self.calls.get(call.call_id)
        if live is None or live.late_offer is None or live.ended:
            return
        try:
            info = self._answer_media(live, live.late_offer, sdp)
        except SdpError as exc:
            log_event(
                log,
                "call.media_failed",
                f"late-offer answer unusable: {exc}",
                level=logging.WARNING,
                call_id=call.call_id,
                reason=str(exc),
            )
            self._spawn_owned(self._hangup(live, "bad_answer", REASON_BAD_ANSWER))
            return
        live.media_info = info
        if live.media is not None:
            if live.session is not None and live.media.queue is not None:
                if live.media.queue.codec != info.codec:
                    live.media.queue = self._new_queue(info.codec)
                live.session.set_codec(
                    session_config_for(live.route.config, info.codec, live.route.instructions),
                    live.media.queue,
                )
            self._apply_media(live.media, info)
            if live.answered_at is not None:
                self._start_recording(live)
            self._start_output(live.media)

    def _on_reoffer(self, call: IncomingCall, offer_sdp: bytes) -> bytes | None:
        """re-INVITE/UPDATE: hold, resume, new remote address. Same port, same codec."""
        live = self.calls.get(call.call_id)
        if live is None or live.media is None or live.ended:
            return None
        self._check_reoffer_family(live, offer_sdp)
        try:
            result = answer_offer(
                parse_sdp(offer_sdp),
                live.local_ip,
                live.media.rtp_port,
                self._prefs,
                state=live.sdp_state,
                current=live.media_info,
            )
        except SdpError as exc:
            # Returning None lets the UA mirror the direction on our last SDP: the call
            # survives a re-offer we cannot parse instead of being torn down.
            log_event(
                log,
                "call.reoffer_failed",
                f"re-offer not usable: {exc}",
                level=logging.WARNING,
                call_id=call.call_id,
                reason=str(exc),
            )
            return None
        previous = live.media_info
        live.media_info = result.media
        self._apply_media(live.media, result.media)
        if previous is None or previous.direction != result.media.direction:
            log_event(
                log,
                "call.hold" if result.media.on_hold else "call.resumed",
                f"direction now {result.media.direction}",
                call_id=call.call_id,
                direction=result.media.direction,
            )
        return result.answer.to_bytes()

    def _answer_media(self, live: LiveCall, offer: SessionDescription, sdp: bytes) -> MediaInfo:
        """The stream of an answer to our offer; SdpError when unusable, an address of the
        other family than our socket included (the caller hangs up with Reason 488)."""
        info = process_answer(offer, parse_sdp(sdp))
        problem = reoffer_problem(live.media_bind, info.remote_host, what="answer")
        if problem is not None:
            raise SdpError(problem)
        return info

    def _check_reoffer_family(self, live: LiveCall, offer_sdp: bytes) -> None:
        """A re-offer moving the media to the other IP family cannot be served by the socket
        we hold: NoCommonCodec with Warning 301 (-> 488, the call stays as it was)."""
        try:
            remote_host = answered_address(parse_sdp(offer_sdp), self._prefs)
        except SdpError:
            return  # the real answer reports it
        reason = reoffer_problem(live.media_bind, remote_host)
        if reason is None:
            return
        log_event(
            log,
            "call.reoffer_failed",
            f"re-offer not usable: {reason}",
            level=logging.WARNING,
            call_id=live.call_id,
            reason=reason,
        )
        host = self.ua.advertised_host if self.ua is not None else self.config.sip.host
        raise NoCommonCodec(reason, warning=warning_301(host, INCOMPATIBLE_ADDRESS))

    def _reject(
        self,
        live: LiveCall,
        status: int,
        reason: str,
        cause: str = "rejected",
        retry_after_s: int | None = None,
        warning: str | None = None,
        **fields: Any,
    ) -> None:
        live.reject_status = status
        headers = [("Retry-After", str(retry_after_s))] if retry_after_s else []
        if warning:
            headers.append(("Warning", warning))
        with contextlib.suppress(Exception):  # the UA may already have ended the transaction
            live.sip.reject(status, headers=headers)
        log_event(
            log,
            "call.rejected",
            f"rejected with {status}: {reason}",
            level=logging.WARNING,
            call_id=live.call_id,
            status=status,
            reason=reason,
            **fields,
        )
        self._spawn_owned(self._finish(live, cause))

    # -- calls: DTMF ---------------------------------------------------------------------------
    def _on_info_dtmf(self, call: IncomingCall, digit: str, duration_ms: int) -> None:
        live = self.calls.get(call.call_id)
        if live is not None:
            self._log_dtmf(live, digit, duration_ms, "info")

    def _log_dtmf(self, live: LiveCall, digit: str, duration_ms: int | None, source: str) -> None:
        if not self._dtmf_within_rate(live, source):
            return
        self.prometheus.dtmf_digit(source)
        if live.record is not None:
            live.record.add_dtmf(time.time(), digit, source, duration_ms)
        if live.session is not None:
            live.session.on_dtmf(digit, source)
        log_event(
            log,
            "dtmf.received",
            f"DTMF {digit} ({source})",
            call_id=live.call_id,
            digit=digit,
            source=source,
            duration_ms=duration_ms,
        )

    def _dtmf_within_rate(self, live: LiveCall, source: str) -> bool:
        """Input bounded by real time, for digits too: a caller's flood of RFC 4733 events or
        SIP INFOs must not become a flood of model turns (issue 9)."""
        rate = live.route.config.calls.max_dtmf_per_s
        if live.dtmf_bucket is None:
            live.dtmf_bucket = TokenBucket(rate, 2 * rate)
        if live.dtmf_bucket.take(time.monotonic()):
            return True
        self.prometheus.dtmf_dropped_digit(source)
        if not live.dtmf_drop_logged:
            live.dtmf_drop_logged = True
            log_event(
                log,
                "dtmf.dropped",
                f"DTMF faster than calls.max_dtmf_per_s ({rate:g}/s): digits dropped",
                level=logging.WARNING,
                call_id=live.call_id,
                source=source,
            )
        return False

    # -- calls: ending -------------------------------------------------------------------------
    async def _max_duration_timer(self, live: LiveCall, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._spawn_owned(self._hangup(live, "max_duration", REASON_MAX_DURATION))

    def _on_rtp_timeout(self, live: LiveCall) -> None:
        # Before the answer (a long answer_delay_ms) silence from the caller is normal.
        if live.ended or live.local_cause is not None or live.answered_at is None:
            return
        log_event(
            log,
            "call.rtp_timeout",
            f"no RTP for {self.config.media.rtp_timeout_s:g} s",
            level=logging.WARNING,
            call_id=live.call_id,
            rtp_timeout_s=self.config.media.rtp_timeout_s,
        )
        self._spawn_owned(self._hangup(live, "rtp_timeout", REASON_RTP_TIMEOUT))

    async def _hangup(self, live: LiveCall, cause: str, reason_header: str) -> None:
        if live.ended or live.local_cause is not None:
            return
        live.local_cause = cause
        status: int | None = None
        try:
            status = await live.sip.hangup(reason_header=reason_header)
        except Exception as exc:  # the peer vanished: we still clean up our side
            log_event(
                log,
                "call.hangup_failed",
                f"BYE failed: {exc}",
                level=logging.WARNING,
                call_id=live.call_id,
            )
        log_event(
            log,
            "call.hangup",
            f"BYE sent ({cause})",
            call_id=live.call_id,
            cause=cause,
            bye_status=status,
        )
        await self._finish(live, cause)

    def _ended_by_peer(self, live: LiveCall) -> bool:
        """The UA ended the call (CANCEL, ...) while we were not looking: on_invite runs as
        its own task, so a CANCEL can be processed before it, and `_on_call_ended` then found
        no call to finish. Finish it now; True when the call is over."""
        if live.ended:
            return True
        if live.sip.state != "terminated":
            return False
        reason = live.sip.end_reason or "cancelled"
        self._spawn_owned(self._finish(live, _UA_CAUSES.get(reason, reason.replace(" ", "_"))))
        return True

    def _on_call_ended(self, call: IncomingCall, reason: str) -> None:
        live = self.calls.get(call.call_id)
        if live is None or live.ended:
            return
        if live.session is not None:
            live.session.on_sip_ended(reason)
        cause = live.local_cause or _UA_CAUSES.get(reason, reason.replace(" ", "_"))
        if live.reject_status is not None:
            cause = "rejected"
        self._spawn_owned(self._finish(live, cause))

    def _spawn_owned(self, coro: Coroutine[Any, Any, None]) -> None:
        """Hang-ups and clean-ups: owned by the gateway (stop() waits for them), not by the
        call, because finishing a call cancels the call's own timers."""
        task = asyncio.ensure_future(coro)
        self._owned_tasks.add(task)
        task.add_done_callback(self._owned_tasks.discard)

    async def _finish(self, live: LiveCall, cause: str) -> None:
        """Stop media, release ports, log `call.ended` once."""
        if live.ended:
            return
        live.ended = True
        current = asyncio.current_task()
        for task in list(live.timers):
            if task is not current:
                task.cancel()
        stats: dict[str, Any] = {}
        try:
            if live.session is not None:
                await live.session.close()
                stats.update(_session_summary(live.session))
            if live.media is not None:
                stats.update(self._close_media(live.media, cause))
        except Exception:
            # Whatever failed while tearing down, the call is still accounted below (metrics,
            # record, call.ended): a gauge that never goes down hides every later problem.
            log.exception(
                "call cleanup failed",
                extra={"event": "call.cleanup_failed", "fields": {"call_id": live.call_id}},
            )
        self.calls.pop(live.call_id, None)
        now = self._loop.time() if self._loop else 0.0
        duration = now - live.answered_at if live.answered_at is not None else 0.0
        fields: dict[str, Any] = {
            "call_id": live.call_id,
            "cause": cause,
            "answered": live.answered_at is not None,
            "duration_s": round(duration, 3),
            "route": live.route.name,
        }
        if live.reject_status is not None:
            fields["status"] = live.reject_status
        fields.update(stats)
        self._account_ended(live, cause, duration, stats)
        log_event(log, "call.ended", f"call ended ({cause})", **fields)
        if not self.active_calls:
            self._drained.set()

    # -- calls: observability (metrics, record, recording, webhooks) -----------------------------
    def _call_started(self, live: LiveCall, source: str) -> None:
        self.prometheus.call_started(live.route.name)
        if self.config.records.dir or self.config.webhooks.call_ended_url:
            live.record = CallRecord(
                live.call_id,
                started_at=live.started_wall,
                caller=live.sip.from_header,
                callee=live.sip.to_header,
                route=live.route.name,
                local_tag=live.sip.local_tag or "",
                remote_tag=live.sip.remote_tag or "",
                source=source,
            )

    def _on_session_event(self, live: LiveCall, kind: str, fields: dict[str, Any]) -> None:
        """CallSession observer: metrics and the call record (see session.Observer)."""
        metrics, record, now = self.prometheus, live.record, time.time()
        if kind == "connected":
            metrics.observe_realtime_connect(fields["connect_s"])
        elif kind == "response_latency":
            metrics.observe_response_latency(fields["seconds"])
        elif kind == "barge_in":
            metrics.barge_in(fields["action"])
            if record is not None:
                record.add_barge_in(
                    now, fields["item_id"], fields["audio_end_ms"], fields["action"]
                )
        elif kind == "tool":
            metrics.tool_call(fields["name"], fields["result"])
            if record is not None:
                record.add_tool_call(
                    now,
                    fields["name"],
                    fields["tool_call_id"],
                    fields["arguments"],
                    fields["result"],
                    fields["duration_ms"],
                    fields["output"],
                )
        elif kind == "usage":
            metrics.add_tokens(fields)
            if record is not None:
                record.add_usage(fields)
        elif kind == "transcript" and record is not None:
            record.add_transcript(now, fields["speaker"], fields["text"])
        elif kind == "reconnect":
            metrics.realtime_reconnect()
        elif kind == "response_done":
            metrics.realtime_response(fields["status"])
        elif kind == "idle":
            metrics.idle_event(fields["source"])
        elif kind == "mcp" and record is not None:
            record.add_mcp(now, fields["event"], {k: v for k, v in fields.items() if k != "event"})

    def _account_ended(
        self, live: LiveCall, cause: str, duration: float, stats: dict[str, Any]
    ) -> None:
        answered = live.answered_at is not None
        self.prometheus.call_ended(live.route.name, cause, duration if answered else None)
        rtp = stats.get("rtp")
        if isinstance(rtp, dict) and (rtp.get("packets_received") or rtp.get("packets_sent")):
            jitter_ms = rtp.get("jitter_ms")
            self.prometheus.rtp_call_stats(
                packets_in=int(rtp.get("packets_received") or 0),
                packets_out=int(rtp.get("packets_sent") or 0),
                lost=int(rtp.get("lost") or 0),
                late=int(rtp.get("late") or 0),
                concealed_frames=int(rtp.get("concealed") or 0),
                jitter_s=jitter_ms / 1000.0 if isinstance(jitter_ms, int | float) else None,
            )
        self._account_dropped(live, rtp)
        recording: str | None = None
        if live.media is not None and live.media.recorder is not None:
            recorder = live.media.recorder
            recorder.close()
            recording = None if recorder.failed else str(recorder.path)
        record = live.record
        if record is None:
            return
        if live.media_info is not None:
            record.set_codec(live.media_info.codec)
        record.set_remote_tag(live.sip.remote_tag or "")
        if live.session is not None:
            for ts, state in live.session.transitions:
                record.add_transition(ts, state)
        if isinstance(rtp, dict):
            record.set_rtp_quality(rtp)
        extra: dict[str, Any] = {"direction": live.direction}
        if live.reject_status is not None:
            extra["status"] = live.reject_status
        if live.session is not None and live.session.ctx.hangup_cause:
            extra["detail"] = live.session.ctx.hangup_cause
        if recording is not None:
            extra["recording"] = recording
        document = record.finish(cause, ended_at=time.time(), **extra)
        if self.config.records.dir:
            record.write(self.config.records.dir)
            remove_live_marker(self.config.records.dir, live.call_id, live.started_wall)
        self.webhooks.call_ended(
            {"call_id": live.call_id, "route": live.route.name, "cause": cause, "record": document}
        )

    def _mark_live(self, live: LiveCall) -> None:
        """At answer: the marker that becomes this call's record if the process dies."""
        if not self.config.records.dir:
            return
        recorder = live.media.recorder if live.media is not None else None
        write_live_marker(
            self.config.records.dir,
            live.call_id,
            live.started_wall,
            caller=live.sip.from_header,
            callee=live.sip.to_header,
            route=live.route.name,
            direction=live.direction,
            local_tag=live.sip.local_tag or "",
            remote_tag=live.sip.remote_tag or "",
            codec=live.media_info.codec if live.media_info is not None else "",
            recording=str(recorder.path) if recorder is not None and not recorder.failed else "",
        )

    def _recover_after_crash(self) -> None:
        """At start: repair recordings and record the calls a killed process left live."""
        records = self.config.records
        for document in recover_after_crash(records.dir, records.recording_dir):
            route = document.get("route") or "default"
            self.prometheus.call_ended(route, RESTART_CAUSE, was_active=False)
            self.webhooks.call_ended(
                {
                    "call_id": document["call_id"],
                    "route": route,
                    "cause": RESTART_CAUSE,
                    "record": document,
                }
            )

    def _account_dropped(self, live: LiveCall, rtp: Any) -> None:
        """What strict media refused during the call (issue 9), into the metrics."""
        rtp = rtp if isinstance(rtp, dict) else {}
        session = live.session.stats if live.session is not None else None
        self.prometheus.media_dropped(
            {
                "foreign_source": int(rtp.get("dropped_foreign_source") or 0),
                "probation": int(rtp.get("dropped_probation") or 0),
                "rate": int(rtp.get("dropped_rate") or 0),
                "rtcp_foreign": int(rtp.get("rtcp_dropped_foreign") or 0),
                "jitter_overflow": int(rtp.get("jitter_overflow") or 0),
            },
            {
                "input_rate": session.input_rate_dropped_bytes if session else 0,
                "playout_overflow": session.playout_overflow_bytes if session else 0,
            },
        )

    def _clock_sample(self) -> int:
        """Now on the shared media clock, in 8 kHz samples (one 20 ms tick = 160)."""
        clock = self.clock
        if clock is None or self._loop is None:
            return 0
        return int((self._loop.time() - clock.epoch) / clock.period) * 160

    def _start_recording(self, live: LiveCall) -> None:
        media = live.media
        if (
            media is None
            or media.recorder is not None
            or live.media_info is None
            or not live.route.recording
        ):
            return
        records = self.config.records
        if not (records.recording_dir or records.dir):
            return  # validate() requires a directory; a config built in code may lack one
        directory = Path(records.recording_dir or records.dir)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(live.started_wall))
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", live.call_id).strip("._")[:64] or "call"
        media.recorder = StereoRecorder(
            directory / f"{stamp}_{safe}.wav",
            live.media_info.codec,
            start_time=self._clock_sample(),
            call_id=live.call_id,
        )

    def _spawn_timer(self, live: LiveCall, coro: Coroutine[Any, Any, None]) -> None:
        """A per-call timer (max duration), cancelled when the call ends."""
        task = asyncio.ensure_future(coro)
        live.timers.add(task)
        task.add_done_callback(live.timers.discard)

    # -- media: the one place that knows the media modules --------------------------------------
    async def _open_media(self, live: LiveCall) -> CallMedia:
        """Bind the call's RTP/RTCP pair (NoFreePortError when the range is exhausted).

        Inbound audio is released by the shared clock from the start (so early RTP is counted
        and latched); our outbound stream starts at answer (`_start_output`)."""
        media_cfg = self.config.media
        stream = RtpStream(
            StreamConfig(
                codec=self._prefs.codecs[0],
                payload_type=SUPPORTED_CODECS[self._prefs.codecs[0]],
                latching=media_cfg.symmetric_rtp,
                inactivity_timeout_s=media_cfg.rtp_timeout_s,
                latch_packets=media_cfg.rtp_latch_packets,
                latch_any_host=media_cfg.rtp_latch_any_host,
                signalling_host=_signalling_host(live.sip),
            ),
            on_dtmf=lambda digit: self._log_dtmf(
                live, digit.digit, digit.duration_ms, digit.source
            ),
            on_timeout=lambda: self._on_rtp_timeout(live),
        )
        rtp_port = await stream.open(self.ports, live.media_bind or self.config.sip.host)
        media = CallMedia(rtp_port=rtp_port, stream=stream)
        if media_cfg.echo or media_cfg.inband_dtmf or self.realtime_mode:
            stream.on_audio = lambda frames: self._on_inbound_audio(live, media, frames)
        assert self.clock is not None
        stream.start(self.clock)
        return media

    def _new_queue(self, codec: str) -> PlayoutQueue:
        media_cfg = self.config.media
        return PlayoutQueue(
            codec=codec,
            idle_policy=_IDLE[media_cfg.idle_audio],
            max_queued_bytes=int(media_cfg.playout_max_s * 8000),
        )

    def _apply_media(self, media: CallMedia, info: MediaInfo) -> None:
        """Negotiated (or re-negotiated: hold, resume, new address) stream parameters."""
        stream = media.stream
        if stream.config.codec != info.codec or stream.config.payload_type != info.payload_type:
            # The codec is only known after the answer, the port had to be bound before it.
            stream.config.codec = info.codec
            stream.config.payload_type = info.payload_type
            stream.jitter = JitterBuffer(
                info.codec,
                min_delay_ms=stream.config.jitter_min_ms,
                max_delay_ms=stream.config.jitter_max_ms,
                clock_rate=stream.config.clock_rate,
            )
        stream.apply_media_info(info)
        if media.queue is None:
            media.queue = self._new_queue(info.codec)
        if media.inband is None and self.config.media.inband_dtmf:
            media.inband = InbandDtmfDetector()

    def _start_output(self, media: CallMedia) -> None:
        """Start sending (silence/CN/echo) on the shared clock: keeps NATs and PBX RTP
        timeouts happy even before the bot has anything to say."""
        if media.output is not None or media.queue is None:
            return
        stream = media.stream
        send_frame = stream.send_frame
        if media.recorder is not None:
            send_frame = self._recording_sender(media, send_frame)
        media.output = CallOutput(
            media.queue,
            send_frame,
            send_event=stream.send_event,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        # One clock callback per call per 20 ms: the stream's (already running for inbound
        # release) runs this output's tick, then the session's hook, which hears every tick
        # right after the frame went out (drained playout, hold-gap filling).
        media.output.ride(stream, after=media.after_tick)

    def _recording_sender(self, media: CallMedia, send_frame: Any) -> Any:
        """Wrap the outbound frame sender: every frame we send also goes to the right channel,
        placed at the clock tick it went out on (catch-up ticks take the following slots)."""

        def send(payload: bytes, marker: bool) -> None:
            send_frame(payload, marker)
            recorder = media.recorder
            if recorder is not None:
                at = max(self._clock_sample(), media.last_bot_sample + 160)
                media.last_bot_sample = at
                recorder.bot(at, payload)

        return send

    def _on_inbound_audio(self, live: LiveCall, media: CallMedia, frames: list[Frame]) -> None:
        """Jitter-buffered caller audio (only wired when echo or in-band DTMF is on)."""
        if media.inband is not None and live.media_info is not None:
            for frame in frames:
                pcm = g711.decode(live.media_info.codec, frame.payload)
                for digit in media.inband.feed(pcm):
                    self._log_dtmf(live, digit.digit, digit.duration_ms, "inband")
        recorder = media.recorder
        if recorder is not None and frames:
            # Both channels sit on the shared media clock: the caller's contiguous media_time
            # is anchored to the clock once, at the first frame after the answer.
            if media.caller_offset is None:
                media.caller_offset = self._clock_sample() - frames[0].media_time
            for frame in frames:
                recorder.caller(frame.media_time + media.caller_offset, frame.payload)
        if live.session is not None:
            live.session.on_audio(frames)
            return
        queue = media.queue
        if self.config.media.echo and queue is not None and media.output is not None:
            if queue.queued_bytes > _ECHO_MAX_QUEUED_BYTES:
                # The clock fell behind the caller: drop the backlog rather than let the
                # echo delay grow for the rest of the call.
                queue.flush()
            for frame in frames:
                queue.enqueue("echo", frame.payload)

    def _close_media(self, media: CallMedia, cause: str) -> dict[str, Any]:
        """Stop sending, RTCP BYE, close sockets, release the port; return the stats summary."""
        if media.output is not None:
            media.output.stop()
        stream = media.stream
        stream.close(reason=cause)
        stats = stream.snapshot()
        return {
            "rtp_packets_in": stats.packets_received,
            "rtp_packets_out": stats.packets_sent,
            "rtp_lost": stats.lost,
            "rtp_jitter_ms": round(stats.jitter_ms, 2),
            "rtp": stats.as_dict(),
        }


class _CallControl:
    """The Gateway side of one call, as the call session sees it (session.CallControl)."""

    def __init__(self, gateway: Gateway, live: LiveCall) -> None:
        self.gateway = gateway
        self.live = live

    def answer(self) -> None:
        gw, live = self.gateway, self.live
        if live.ended or live.answered_at is not None:
            return
        gw._spawn_timer(live, gw._accept(live, live.answer_body))

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        if not self.live.ended:
            self.gateway._reject(self.live, status, reason, retry_after_s=retry_after_s)

    def hangup(self, reason_text: str, status: int = 200) -> None:
        cause = reason_text.replace(" ", "_")
        header = f'SIP;cause={status};text="{reason_text}"'
        self.gateway._spawn_owned(self.gateway._hangup(self.live, cause, header))

    async def refer(self, target_uri: str) -> int:
        return await self.live.sip.refer(target_uri)

    def send_digits(self, digits: str) -> None:
        media = self.live.media
        if media is None or media.output is None:
            raise ValueError("no media stream to send DTMF on")
        media.output.send_digits(digits)

    def stop_media(self) -> None:
        media = self.live.media
        if media is not None and media.output is not None:
            media.output.stop()


class _OutboundCallControl(_CallControl):
    """CallControl of a call we placed: the callee's 200 already made the call, so `answer`
    (the machine's "session ready, send the 200") only starts our media and tells the session
    the call is up, as the ACK does for an inbound call."""

    def answer(self) -> None:
        live = self.live
        if live.ended or live.session is None:
            return
        session = live.session
        # Not from inside the machine's own dispatch: the Ack is the next event.
        asyncio.get_running_loop().call_soon(session.on_ack, _caller_sends(live))

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        # No Realtime session for a call that is already up: end it with BYE.
        header = f'SIP;cause={status};text="{reason[:60]}"'
        self.gateway._spawn_owned(self.gateway._hangup(self.live, "realtime_failed", header))


class GatewayControl:
    """The Gateway as the control API sees it (gateway.control.ControlTarget)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def healthy(self) -> bool:
        # Stays true while draining: a liveness probe failing then would get the process
        # killed before its calls ended. /readyz is what turns false.
        return self.gateway._started

    def ready(self) -> tuple[bool, str]:
        gw = self.gateway
        if not gw._started:
            return False, "starting"
        if gw._stopping:
            return False, "draining: not accepting calls"
        for client in gw.registrations:
            if not client.registered:
                name = gw._reg_names.get(id(client), client.aor)
                why = client.core.reason or client.state
                return False, f"registration {name} ({client.aor}): {why}"
        return True, ""

    def metrics(self) -> tuple[bytes, str]:
        self.gateway._collect_polled_metrics()
        return self.gateway.prometheus.render()

    def list_calls(self) -> list[dict[str, Any]]:
        gw = self.gateway
        now = gw._loop.time() if gw._loop else 0.0
        calls = []
        for live in list(gw.calls.values()):
            if live.ended:
                continue
            rtp = live.media.stream.snapshot() if live.media is not None else None
            calls.append(
                {
                    "call_id": live.call_id,
                    "direction": live.direction,
                    "from": live.sip.from_header,
                    "to": live.sip.to_header,
                    "route": live.route.name,
                    "state": (
                        live.session.ctx.state.value
                        if live.session is not None
                        else ("answered" if live.answered_at is not None else "offered")
                    ),
                    "codec": live.media_info.codec if live.media_info else None,
                    "duration_s": (
                        round(now - live.answered_at, 3) if live.answered_at is not None else 0.0
                    ),
                    "rtp": None
                    if rtp is None
                    else {
                        "packets_in": rtp.packets_received,
                        "packets_out": rtp.packets_sent,
                        "lost": rtp.lost,
                        "late": rtp.late,
                        "concealed": rtp.concealed,
                        "jitter_ms": round(rtp.jitter_ms, 2),
                    },
                }
            )
        return calls

    def hangup(self, call_id: str) -> bool:
        gw = self.gateway
        live = gw.calls.get(call_id)
        if live is None or live.ended:
            return False
        if live.answered_at is None and live.direction == "inbound":
            gw._reject(live, 480, "hung up by operator", cause="local_bye")
            return True
        gw._spawn_owned(gw._hangup(live, "local_bye", 'SIP;cause=200;text="operator hangup"'))
        return True

    async def originate(self, request: Any) -> str:
        return await self.gateway.originate(
            request.to, request.instructions, request.registration, request.from_
        )

    def say(self, call_id: str, text: str, role: str, respond: bool) -> bool:
        live = self.gateway.calls.get(call_id)
        if live is None or live.ended:
            return False
        if live.session is None:
            from gateway.control import ControlError

            raise ControlError(409, "the call has no Realtime session (echo mode)")
        live.session.say(text, role, respond)
        return True


def _sip_first_line(data: bytes) -> tuple[str | None, int | None]:
    """(method, None) for a request, (None, status) for a response, from the first line only:
    cheap enough for every message, and the metrics need nothing more."""
    head = data[:64].lstrip(b"\r\n")
    if head.startswith(b"SIP/2.0 "):
        code = head[8:11]
        return None, int(code) if code.isdigit() else None
    space = head.find(b" ")
    return (head[:space].decode("ascii", "replace") if space > 0 else None), None


def _session_summary(session: CallSession) -> dict[str, Any]:
    st = session.stats
    return {
        "hangup_cause": session.ctx.hangup_cause,
        "barge_ins": st.barge_ins,
        "truncates": st.truncates,
        "deletes": st.deletes,
        "reconnects": st.reconnects,
        "tool_calls": st.tool_calls,
        "audio_appended_bytes": st.audio_appended_bytes,
        "silence_filled_bytes": st.silence_filled_bytes,
        "input_rate_dropped_bytes": st.input_rate_dropped_bytes,
        "playout_overflow_bytes": st.playout_overflow_bytes,
        "usage": dict(st.usage),
    }


def _signalling_host(sip_call: Any) -> str | None:
    """Where the call's SIP came from: a host strict latching may learn RTP sources on."""
    source = getattr(sip_call, "source", None)
    return getattr(source, "host", None) or None


def _caller_sends(live: LiveCall) -> bool:
    """False when the negotiated direction says no RTP will ever come (we are sendonly or
    inactive): then the ACK, not the first RTP packet, starts the call's audio time."""
    info = live.media_info
    return info is None or info.may_receive


def _offered_codecs(offer: SessionDescription) -> list[str]:
    """Codec names of the offer's audio streams, for the 488 log line."""
    names: list[str] = []
    for media in offer.media:
        if media.media.lower() != "audio":
            continue
        for fmt in media.fmts:
            mapped = media.codec(fmt)
            names.append(f"{mapped.encoding}/{mapped.clock_rate}" if mapped else fmt)
    return names
