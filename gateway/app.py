"""The Gateway: one process's SIP user agent, registrations, live calls, reload and drain.

What belongs to the process lives here: admission, the registry of live calls, registrations,
SIGHUP reload, start, stop and drain. Everything about one call (SDP, media, the voice session,
hang-up, accounting) is the call object's: gateway/call/call.py (`LiveCall`), created here per
INVITE (`_on_invite`) or per `originate` (gateway/call/outbound.py), and fed the user agent's
in-dialog events (`_on_ack`, `_on_ack_sdp`, `_on_reoffer`, `_on_info_dtmf`, `_on_call_ended`).

The control API (gateway/control.py) is built in the composition root (gateway/serve.py), which
hands it a `GatewayControl`; this module does not import it. `originate` returns a
`ControlFailure` value when it cannot place the call. `stop()` drains: 503 to new INVITEs and
/readyz false, answered calls may end on their own until the drain timeout, then BYE.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Coroutine
from typing import Any

from gateway import wsock
from gateway.admission import (
    AdmissionCollector,
    admission_policy,
    apply_to_ua,
    configure_admission,
    inbound_auth,
    trust_local,
)
from gateway.call.call import REASON_ACK_TIMEOUT, CallServices, LiveCall
from gateway.call.causes import EndCause
from gateway.call.outbound import place_call
from gateway.call_settings import call_services_for, start_voice_endpoints
from gateway.caller_id import CallerIdRefused, caller_id_for
from gateway.config import (
    ConfigError,
    GatewayConfig,
    RegistrationConfig,
    load_config,
    registration_name,
)
from gateway.config.redact import configured_secrets
from gateway.config.reload import changed_keys, reload_plan
from gateway.control_failure import ControlFailure
from gateway.limits import limit_counts, sip_limits, transport_options
from gateway.media import jitter
from gateway.media.pacer import MediaClock, shared_clock
from gateway.media.ports import PortAllocator, pair_count, pairs_needed, range_shortfall
from gateway.media_address import MediaFamilies, sdp_address
from gateway.observe.logs import log_event, set_secrets
from gateway.observe.metrics import Metrics
from gateway.observe.records import RESTART_CAUSE, recover_after_crash
from gateway.realtime.client import Endpoint
from gateway.routes import RouteTable, facts_from_invite
from gateway.signalling_tls import SignallingTls
from gateway.webhooks import Webhooks
from sip.admission import Admission
from sip.registration import REGISTERED, RegistrationClient
from sip.timers import TimerConfig
from sip.tls import TlsError
from sip.transport import Transport
from sip.uac_auth import bind_hops
from sip.uri import parse_uri
from sip.useragent import Credentials, IncomingCall, UserAgent

log = logging.getLogger("gateway")

OUTBOUND_ROUTE = "outbound"  # route label of calls placed through the control API


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
        try:  # the TLS contexts (gateway/signalling_tls.py): a bad file is the same
            self.tls = SignallingTls(config.sip.tls)
        except TlsError as exc:
            raise ConfigError(f"sip.tls: {exc}") from None
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
        self._call_services: CallServices | None = None
        self._media_ip: str | None = None
        self._media_families: MediaFamilies | None = None
        self._stopping = False
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Realtime: the endpoint calls connect to, and the built-in simulator when it serves.
        self.simulator: Any = None
        self.endpoint: Endpoint | None = None
        self.live_endpoint: Any = None  # GPT-Live, for routes with realtime.api = "live"

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
            sip.host,
            sip.port,
            transports=sip.transports,
            **transport_options(self.config, limits),
            **self.tls.transport_options(sip.tls.port),
        )
        self.ua = UserAgent(
            self.transport,
            advertised_host=sip.advertised_host or None,
            user_agent=sip.user_agent,
            timers=TimerConfig(t1=sip.timer_t1_ms / 1000),
            max_calls=sip.max_calls,
            admission=Admission(admission_policy(sip)),
            inbound_auth=inbound_auth(sip),
            on_invite=self._on_invite,
            on_call_ended=self._on_call_ended,
            on_ack_sdp=self._on_ack_sdp,
            on_reoffer=self._on_reoffer,
            on_dtmf=self._on_info_dtmf,
            on_ack=self._on_ack,
            on_ack_timeout=self._on_ack_timeout,
            max_server_transactions=limits.max_server_transactions,
            max_server_transactions_per_source=limits.max_server_transactions_per_source,
        )
        self.prometheus.read_sip_limits_from(lambda: limit_counts(self.ua, self.transport))
        if limits.tcp_lowered and ("tcp" in sip.transports or sip.tls.enabled):
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
        self.transport.on_trace = self.prometheus.count_sip_message
        await configure_admission(self.ua, self.config.sip, self.config.registrations)
        await self.ua.start()
        self._media_ip = await sdp_address(self._loop, sip.host, sip.advertised_host)
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
            tls_port=self.transport.tls_port or None,
            advertised_host=self.ua.advertised_host,
            # What goes in our SDP c= line: a wrong one is the classic one-way-audio cause.
            sdp_address=self._media_ip or "local address towards each caller",
            media_families=self._media_families.names,
            rtp_ports=f"{self.config.media.rtp_port_min}-{self.config.media.rtp_port_max}",
            jitter_buffer=jitter.IMPLEMENTATION,  # "c" or "python" (docs/deployment.md)
            ws_frames=wsock.FRAME_IMPLEMENTATION,  # the same for the audio append frames
            registrations=len(self.config.registrations),
            echo=self.config.media.echo,
            realtime=self.endpoint.redacted() if self.endpoint else None,
            live=self.live_endpoint.redacted() if self.live_endpoint else None,
            simulator=self.simulator is not None,
            routes=self.routes.names,
            control=self.control.url if self.control is not None else None,
        )

    def _register_secrets(self) -> None:
        """Every secret of the current configuration, plus the control token (which may come
        from a generated file, not the configuration), is redacted from every log line."""
        set_secrets([*configured_secrets(self.config), self._control_token])

    async def _start_control(self) -> None:
        """The control API: none here. gateway/serve.py's Gateway (the one `run` builds)
        starts it; the process itself does not know HTTP."""

    async def _start_realtime(self) -> None:
        """Resolve the voice endpoints; start the built-in simulator when it is to serve."""
        self.simulator, self.endpoint, self.live_endpoint = await start_voice_endpoints(self.config)

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
                live.reject_with(503, "shutdown", cause=EndCause.SHUTDOWN)
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
            asyncio.ensure_future(live.end_for_shutdown())
            for live in list(self.calls.values())
            if not live.ended
        ]
        if ending:
            # BYE transactions are bounded by the UA (Timer F); this only guards against a bug.
            _, pending = await asyncio.wait(ending, timeout=10.0)
            for task in pending:
                task.cancel()
        for live in list(self.calls.values()):
            await live.finish(EndCause.SHUTDOWN)
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
        if not self.tls.reload(self.transport, config.sip.tls):  # certificates renewed in place
            return False
        self.routes = table
        self.config = config
        self._call_services = None  # new calls get the new [calls], [records]...
        if self._file_config is not None:
            self._file_config = self._load_file_only(os.environ if env is None else env)
        self._register_secrets()  # a reload may bring a new digest password
        if self.ua is not None:
            apply_to_ua(self.ua, config.sip)
            trust_local(self.ua, config.sip)
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
    ) -> str | ControlFailure:
        """Call `to` (a SIP URI, or a number dialled through a registration's registrar) and
        bridge the answered call to a voice session with `instructions`. Returns the Call-ID
        once the callee answered, else why not (gateway/call/outbound.py places the call)."""
        if self._stopping or self.ua is None or not self._started:
            return ControlFailure(503, "the gateway is not accepting calls")
        if not self.realtime_mode:
            return ControlFailure(409, "echo mode: outbound calls need a Realtime session")
        reg = self._registration_named(registration)
        if registration and reg is None:
            return ControlFailure(422, f"registration: no registration named {registration!r}")
        try:
            from_user = caller_id_for(reg, from_user)
        except CallerIdRefused as exc:
            return ControlFailure(exc.status, exc.message)
        credentials = None
        if to.lower().startswith(("sip:", "sips:")):
            target = to
        else:
            if reg is None:
                return ControlFailure(
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
        try:
            target_uri = parse_uri(target)
            dest = await self.ua.resolve(target_uri)
        except (ValueError, OSError) as exc:
            return ControlFailure(422, f"to: cannot reach {target!r}: {exc}")
        return await place_call(
            self._services(),
            self.ua,
            dataclasses.replace(self.routes.default, name=OUTBOUND_ROUTE),
            target,
            target_uri,
            dest,
            instructions=instructions,
            from_user=from_user,
            credentials=credentials,
            ring_timeout=ring_timeout,
            registration=registration_name(reg) if reg is not None else None,
            register=self._register,
        )

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

    # -- the registry of live calls ----------------------------------------------------------------
    def _services(self) -> CallServices:
        """What each new call gets from the process (rebuilt after a reload)."""
        if self._call_services is None:
            assert self._loop is not None and self.clock is not None and self.ua is not None
            assert self._media_families is not None
            self._call_services = call_services_for(
                self.config,
                loop=self._loop,
                metrics=self.prometheus,
                webhooks=self.webhooks,
                ports=self.ports,
                clock=self.clock,
                families=self._media_families,
                advertised_host=self.ua.advertised_host,
                endpoint=self.endpoint if self.realtime_mode else None,
                live_endpoint=self.live_endpoint,
                spawn=self._spawn_owned,
                ended=self._forget,
            )
        return self._call_services

    def _register(self, live: LiveCall) -> None:
        self.calls[live.call_id] = live

    def _forget(self, live: LiveCall) -> None:
        self.calls.pop(live.call_id, None)
        if not self.active_calls:
            self._drained.set()

    def _spawn_owned(self, coro: Coroutine[Any, Any, None]) -> None:
        """Hang-ups and clean-ups: owned by the gateway (stop() waits for them), not by the
        call, because finishing a call cancels the call's own timers."""
        task = asyncio.ensure_future(coro)
        self._owned_tasks.add(task)
        task.add_done_callback(self._owned_tasks.discard)

    # -- the user agent's call events --------------------------------------------------------------
    async def _on_invite(self, call: IncomingCall) -> None:
        facts = facts_from_invite(
            call.request_uri, call.to_header, call.invite.headers.items(), call.source.host
        )
        live = LiveCall(self._services(), call, self.routes.select(facts))
        self._register(live)
        live.offered()
        if live.ended_by_peer():
            return
        if self._stopping:
            live.reject_with(503, "shutdown", cause=EndCause.SHUTDOWN)
            return
        await live.answer_inbound()

    def _on_ack(self, call: IncomingCall) -> None:
        if (live := self.calls.get(call.call_id)) is not None:
            live.on_ack()

    def _on_ack_timeout(self, call: IncomingCall) -> None:
        """Timer H: the call decides (its machine BYEs with cause ack_timeout)."""
        if (live := self.calls.get(call.call_id)) is not None:
            live.on_ack_timeout()
        else:  # not (or no longer) one of our calls: the dialog still must not hang
            self._spawn_owned(self._bye_unowned(call))

    @staticmethod
    async def _bye_unowned(call: IncomingCall) -> None:
        with contextlib.suppress(Exception):  # best effort: nobody waits for this call
            await call.hangup(reason_header=REASON_ACK_TIMEOUT)

    def _on_ack_sdp(self, call: IncomingCall, sdp: bytes) -> None:
        if (live := self.calls.get(call.call_id)) is not None:
            live.on_ack_sdp(sdp)

    def _on_reoffer(self, call: IncomingCall, offer_sdp: bytes) -> bytes | None:
        live = self.calls.get(call.call_id)
        return live.on_reoffer(offer_sdp) if live is not None else None

    def _on_info_dtmf(self, call: IncomingCall, digit: str, duration_ms: int) -> None:
        if (live := self.calls.get(call.call_id)) is not None:
            live.on_dtmf(digit, duration_ms, "info")

    def _on_call_ended(self, call: IncomingCall, reason: str) -> None:
        if (live := self.calls.get(call.call_id)) is not None:
            live.on_sip_ended(reason)

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
