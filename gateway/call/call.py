"""The one per-call object: from INVITE (or originate) to `call.ended`.

A `LiveCall` owns the SIP dialog handle (`sip`: an IncomingCall, or an OutgoingCall for calls
placed through the control API), the media leg (gateway/media/leg.py) and the voice session
(gateway/call/session.py, which runs the state machine). It executes what the machine decides
(`CallControl`: answer, reject, BYE, REFER, digits, stop media) and feeds it the call-level
events the media and the clock produce (RTP timeout, maximum duration). The process
(gateway/app.py) only admits the call, keeps it in its registry and ends it at shutdown.

Inbound call path:
    `offered` (metrics, record, `call.offered`) -> `answer_inbound`: SDP offer/answer
    (gateway/call/answer.py, 488 when no G.711), RTP port bound (`MediaLeg.open`), voice session
    started -> the machine's Answer -> `answer()` -> `_accept` (200) -> ACK -> ... -> BYE.

What ends a call, and the Reason header (RFC 3326) on a BYE we send (causes: causes.EndCause):
- `max_duration`: `[calls] max_duration_s` reached -> `Reason: SIP;cause=200;text="max duration"`
  (the call completed normally, it was just long: cause 200, like Asterisk's `L()` limit).
- `rtp_timeout`: no RTP for `[media] rtp_timeout_s` -> `Reason: SIP;cause=408;text="RTP timeout"`
  (408 Request Timeout is the SIP status closest to "the media went away"; the cause tells the
  PBX's CDR why the call was cut instead of leaving a silent one-way call up).
- `shutdown`: SIGTERM/SIGINT -> `Reason: SIP;cause=503;text="shutdown"`.
- `bad_answer`: an SDP answer with no codec we offered -> `Reason: SIP;cause=488`.
- the voice session's own decisions (end_call, transfer, reconnect budget...): the machine's
  SendBye carries its cause, status and text.
Every offered call produces exactly one `call.offered` (or `call.originated`) and one
`call.ended` log line, so the log doubles as a call record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.call import accounting
from gateway.call import srtp as call_srtp
from gateway.call.answer import (
    answer_media,
    caller_sends,
    incompatible_address,
    negotiated,
    offered_codecs,
    reoffer_family_problem,
)
from gateway.call.causes import EndCause, bye_reason, reason_header, ua_cause
from gateway.call.session import CallSession, SessionSettings
from gateway.media.leg import LegSettings, MediaLeg, rtp_summary
from gateway.media.pacer import MediaClock
from gateway.media.ports import PortAllocator
from gateway.media.stream import NoFreePortError
from gateway.media_address import (
    MediaEndpoint,
    MediaFamilies,
    answered_address,
    local_ip_towards,
    offer_problem,
)
from gateway.observe.logs import log_event
from gateway.observe.metrics import Metrics
from gateway.observe.records import CallRecord
from sip.admission import TokenBucket
from sip.sdp import (
    CodecPrefs,
    LocalSdpState,
    MediaInfo,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    SrtpRefused,
    answer_offer,
    build_offer,
    parse_sdp,
)

log = logging.getLogger("gateway")

REASON_MAX_DURATION = bye_reason(EndCause.MAX_DURATION).header()
REASON_RTP_TIMEOUT = bye_reason(EndCause.RTP_TIMEOUT).header()
REASON_SHUTDOWN = bye_reason(EndCause.SHUTDOWN).header()
REASON_BAD_ANSWER = bye_reason(EndCause.BAD_ANSWER).header()
REASON_ACK_TIMEOUT = bye_reason(EndCause.ACK_TIMEOUT).header()

# (route, codec, instructions, caller, callee) -> the voice session's settings
SessionSettingsFor = Callable[[Any, str, str, str, str], SessionSettings]
# (route, codec, instructions) -> the session.update configuration (a late offer's codec change)
SessionConfigFor = Callable[[Any, str, str], Any]


@dataclass(frozen=True)
class CallServices:
    """What the process lends each call: shared objects and plain configuration values (the
    call layer never reads the configuration itself). Built by gateway/app.py at start and on
    every reload; a call keeps the services it started with, as it keeps its route."""

    loop: asyncio.AbstractEventLoop
    metrics: Metrics
    webhooks: Any  # gateway.webhooks.Webhooks
    ports: PortAllocator
    clock: MediaClock
    families: MediaFamilies
    prefs: CodecPrefs
    leg: LegSettings
    advertised_host: str  # Warning 301's agent
    sip_host: str  # where RTP binds when no media address is configured
    answer_delay_s: float
    rtp_timeout_s: float
    records_dir: str
    recording_dir: str
    webhooks_want_records: bool
    voice: bool  # bridged to a voice session (False: echo test)
    session_settings: SessionSettingsFor | None
    session_config: SessionConfigFor | None
    spawn: Callable[[Coroutine[Any, Any, None]], None]  # a task the process owns
    ended: Callable[[LiveCall], None]  # the process forgets the call
    srtp: call_srtp.SrtpSettings = call_srtp.NO_SRTP  # per route/registration policy

    def clock_sample(self) -> int:
        """Now on the shared media clock, in 8 kHz samples (one 20 ms tick = 160)."""
        clock = self.clock
        return int((self.loop.time() - clock.epoch) / clock.period) * 160


class PendingDialog:
    """Stands in for the SIP call of an outbound call while its INVITE is in flight."""

    call_id = ""
    from_header = ""
    to_header = ""
    local_tag = ""
    remote_tag = ""
    state = "early"


class LiveCall:
    """One call, from INVITE to `call.ended`; implements session.CallControl."""

    def __init__(
        self, services: CallServices, sip: Any, route: Any, direction: str = "inbound"
    ) -> None:
        self.services = services
        self.sip = sip
        self.route = route  # gateway.routes.Route: name, config, instructions, recording
        self.direction = direction
        self.offered_at = services.loop.time()
        self.started_wall = time.time()  # for records and webhooks
        self.record: CallRecord | None = None
        self.sdp_state = LocalSdpState()
        self.answered_at: float | None = None
        self.media: MediaLeg | None = None
        self.media_info: MediaInfo | None = None
        self.local_ip = ""  # our c= address
        self.media_bind = ""  # where the RTP socket binds (its family is the c= family)
        self.late_offer: SessionDescription | None = None
        self.local_cause: str | None = None  # set when we end the call ourselves
        self.reject_status: int | None = None
        self.ended = False
        self.session: CallSession | None = None  # the voice session (None in echo mode)
        self.answer_body = b""  # our SDP, sent when the session is ready
        self.timers: set[asyncio.Task[Any]] = set()
        self.dtmf_bucket: TokenBucket | None = None  # calls.max_dtmf_per_s, at the first digit
        self.dtmf_drop_logged = False
        source = getattr(sip, "source", None)  # SRTP: gateway/call/srtp.py (outbound: outbound.py)
        policy = services.srtp.policy_for(route.name, getattr(source, "host", None))
        self.srtp = call_srtp.CallSrtp(services.srtp, policy, getattr(source, "proto", "") == "tls")

    @property
    def call_id(self) -> str:
        return str(self.sip.call_id)

    # -- offer and answer ------------------------------------------------------------------------
    def offered(self) -> None:
        """The INVITE arrived: metrics, the record, `call.offered`."""
        call = self.sip
        accounting.open_record(self, f"{call.source.host}:{call.source.port}")
        log_event(
            log,
            "call.offered",
            f"call from {call.from_header} (route {self.route.name})",
            call_id=call.call_id,
            **{"from": call.from_header, "to": call.to_header},
            source=f"{call.source.host}:{call.source.port}",
            transport=call.source.proto,
            srtp=self.srtp.policy.value,
            late_offer=call.offer_sdp is None,
            route=self.route.name,
        )

    async def answer_inbound(self) -> None:
        """Answer the offer (or offer in the 200 for a late offer), bind the media, start the
        voice session; a bug must not leave the caller ringing forever (500)."""
        try:
            await self._answer_inbound()
        except Exception as exc:
            log.exception(
                "failed to answer call",
                extra={"event": "call.error", "fields": {"call_id": self.call_id}},
            )
            if not self.ended and self.answered_at is None:
                self.reject_with(500, f"internal error: {type(exc).__name__}")

    async def _answer_inbound(self) -> None:
        call, services = self.sip, self.services
        offer: SessionDescription | None = None
        endpoint = services.families.for_peer(call.source.host)
        if call.offer_sdp is not None:
            try:
                offer = parse_sdp(call.offer_sdp)
                remote_host = answered_address(offer, services.prefs, self.srtp.terms())
                endpoint, problem = offer_problem(services.families, remote_host)
            except NoCommonCodec as exc:
                assert offer is not None
                self._reject_offer(offer, exc)
                return
            except SdpError as exc:
                self.reject_with(488, f"unparsable SDP offer: {exc}")
                return
            if endpoint is None:
                # Never a 200 whose media cannot flow (RFC 3261 20.43 warn-code 301).
                refused = incompatible_address(services.advertised_host, problem)
                self.reject_with(488, problem, warning=refused.warning)
                return
        self.choose_media_endpoint(endpoint, call.source.host)
        try:
            await self.open_media()
        except NoFreePortError as exc:
            self.reject_with(503, str(exc))
            return
        assert self.media is not None
        if self.ended:  # shut down while the sockets were being bound
            self.media.close(EndCause.SHUTDOWN)
            return
        if self.ended_by_peer():  # CANCELled meanwhile: finish closes the media
            return
        if offer is None:
            # Late offer (RFC 3261 13.2.1): we offer in the 200, the answer comes in the ACK.
            # Bridged to a voice session, the session starts on our first codec and is switched
            # (session.update) if the answer picks the other law: never transcoded.
            if (refusal := call_srtp.offer_refusal(self.srtp.terms())) is not None:
                self.reject_with(488, refusal, warning=services.srtp.warning(refusal))
                return
            self.late_offer = self.our_offer()
            body = self.late_offer.to_bytes()
        else:
            try:
                result = answer_offer(
                    offer,
                    self.local_ip,
                    self.media.rtp_port,
                    services.prefs,
                    state=self.sdp_state,
                    srtp=self.srtp.terms(),
                )
            except NoCommonCodec as exc:
                self._reject_offer(offer, exc)
                return
            self.apply_media(result.media)
            body = result.answer.to_bytes()
        if services.voice:
            # 200 only once session.updated confirmed the G.711 format (the machine's Answer
            # action calls `answer`); 503 + Retry-After otherwise.
            self.start_session(body)
            return
        await self._accept(body)

    def _reject_offer(self, offer: SessionDescription, exc: NoCommonCodec) -> None:
        """488 for an unusable offer; an SRTP refusal says why in a Warning header."""
        warning = self.services.srtp.warning(str(exc)) if type(exc) is SrtpRefused else None
        self.reject_with(488, str(exc), warning=warning, offered_codecs=offered_codecs(offer))

    def choose_media_endpoint(self, endpoint: MediaEndpoint | None, peer_host: str) -> None:
        """Where the call's RTP binds and what our c= says (gateway/media_address.py)."""
        if endpoint is None:  # every configuration has one family at least
            raise OSError(f"no media address for a peer at {peer_host}")
        self.media_bind = endpoint.bind_host
        self.local_ip = local_ip_towards(endpoint, peer_host)

    async def open_media(self) -> MediaLeg:
        """Bind the call's RTP/RTCP pair (NoFreePortError when the range is exhausted)."""
        services = self.services
        source = getattr(self.sip, "source", None)
        leg = MediaLeg(
            services.leg,
            signalling_host=getattr(source, "host", None) or None,
            on_dtmf=self.on_dtmf,
            on_timeout=self.on_rtp_timeout,
            clock_sample=services.clock_sample,
        )
        await leg.open(services.ports, self.media_bind or services.sip_host)
        # Inbound audio is released by the shared clock from the start (so early RTP is
        # counted and latched); our outbound stream starts at answer.
        leg.start(services.clock)
        self.media = leg
        return leg

    def apply_media(self, info: MediaInfo) -> None:
        """The negotiated (or re-negotiated) stream, into the media leg; new SRTP keys key it
        anew, the same keys keep its SRTP contexts (rollover counter, replay window)."""
        self.media_info = info
        if self.media is not None:
            self.srtp.key(self.media.stream, info.crypto)
            self.media.apply(negotiated(info))

    def our_offer(self) -> SessionDescription:
        """Our SDP offer (late offer, outbound call): RTP/SAVP with fresh keys when the
        policy requires SRTP (gateway/call/srtp.py offer_crypto)."""
        assert self.media is not None
        crypto = self.srtp.offer_lines()
        prefs, port = self.services.prefs, self.media.rtp_port
        return build_offer(self.local_ip, port, prefs, state=self.sdp_state, crypto=crypto)

    def start_session(self, body: bytes, instructions: str | None = None) -> None:
        services, media = self.services, self.media
        assert services.session_settings is not None and media is not None
        codec = self.media_info.codec if self.media_info else services.prefs.codecs[0]
        if media.queue is None:
            media.queue = media.new_queue(codec)
        self.answer_body = body
        settings = services.session_settings(
            self.route,
            codec,
            self.route.instructions if instructions is None else instructions,
            self.sip.from_header,
            self.sip.to_header,
        )
        session = CallSession(
            self.call_id,
            settings,
            self,
            media.queue,
            observe=lambda kind, fields: accounting.on_session_event(self, kind, fields),
        )
        self.session = session
        media.after_tick, media.tick_watch = session.on_output_tick, session.tick_watch
        media.on_audio = session.on_audio
        session.start()

    async def _accept(self, body: bytes) -> None:
        """Send the 200 (after the configured ring delay) and start our outbound stream."""
        call = self.sip
        assert self.media is not None
        delay = self.services.answer_delay_s
        if delay > 0:
            # Ring first (the UA already sent 180): some PBXs and tests need an early phase.
            await asyncio.sleep(delay)
        if self.ended_by_peer() or call.state != "early":
            return  # CANCELled (or shut down) while we prepared
        call.accept(body)
        self.answered()
        info = self.media_info
        log_event(
            log,
            "call.answered",
            "call answered",
            call_id=call.call_id,
            codec=info.codec if info else None,
            remote_rtp=f"{info.remote_host}:{info.remote_port}" if info else None,
            local_rtp=f"{self.local_ip}:{self.media.rtp_port}",
            telephone_event_pt=info.telephone_event_pt if info else None,
            echo=not self.services.voice,
            route=self.route.name,
        )

    def answered(self) -> None:
        """The call is up (200 sent, or the callee's 200 received): start sending, the
        recording, the max-duration timer, the call_started webhook."""
        services = self.services
        assert self.media is not None
        self.answered_at = services.loop.time()
        services.metrics.observe_setup(self.answered_at - self.offered_at)
        if self.media_info is not None:
            accounting.start_recording(self)
            self.media.start_output()
        accounting.mark_live(self)
        max_duration = self.route.config.calls.max_duration_s
        if max_duration > 0:
            self._spawn_timer(self._max_duration_timer(max_duration))
        services.webhooks.call_started(
            {
                "call_id": self.call_id,
                "direction": self.direction,
                "caller": self.sip.from_header,
                "callee": self.sip.to_header,
                "route": self.route.name,
            }
        )

    # -- in-dialog events from the user agent ----------------------------------------------------
    def on_ack(self) -> None:
        if self.session is not None and not self.ended:
            self.session.on_ack(caller_sends=caller_sends(self.media_info))

    def on_ack_timeout(self) -> None:
        """Timer H: our 2xx was never acknowledged. The machine decides (BYE, cause
        ack_timeout); a call without a voice session (echo mode) BYEs at once."""
        if self.ended or self.local_cause is not None:
            return  # the user agent logged sip.call.ack_timeout
        if self.session is not None:
            self.session.on_ack_timeout()
            return
        self.services.spawn(self.hangup_now(EndCause.ACK_TIMEOUT, REASON_ACK_TIMEOUT))

    def on_ack_sdp(self, sdp: bytes) -> None:
        """Late offer: the ACK carries the answer to the offer in our 200."""
        if self.late_offer is None or self.ended:
            return
        try:
            info = answer_media(self.media_bind, self.late_offer, sdp, self.srtp.offered)
        except SdpError as exc:
            log_event(
                log,
                "call.media_failed",
                f"late-offer answer unusable: {exc}",
                level=logging.WARNING,
                call_id=self.call_id,
                reason=str(exc),
            )
            self.services.spawn(self.hangup_now(EndCause.BAD_ANSWER, REASON_BAD_ANSWER))
            return
        media = self.media
        if media is None:
            self.media_info = info
            return
        session, config_for = self.session, self.services.session_config
        if session is not None and media.queue is not None and config_for is not None:
            if media.queue.codec != info.codec:
                media.queue = media.new_queue(info.codec)
            # The machine decides (SwitchCodec); the session then reconfigures.
            session.on_codec_answered(
                info.codec,
                config_for(self.route, info.codec, self.route.instructions),
                media.queue,
            )
        self.apply_media(info)
        if self.answered_at is not None:
            accounting.start_recording(self)
        media.start_output()

    def on_reoffer(self, offer_sdp: bytes) -> bytes | None:
        """re-INVITE/UPDATE: hold, resume, new remote address. Same port, same codec."""
        if self.media is None or self.ended:
            return None
        services = self.services
        problem = reoffer_family_problem(
            self.media_bind, offer_sdp, services.prefs, self.srtp.terms()
        )
        if problem is not None:
            # A re-offer moving the media to the other IP family cannot be served by the socket
            # we hold: 488 with Warning 301, the call stays as it was.
            self._log_reoffer_failed(problem)
            raise incompatible_address(services.advertised_host, problem)
        try:
            result = answer_offer(
                parse_sdp(offer_sdp),
                self.local_ip,
                self.media.rtp_port,
                services.prefs,
                state=self.sdp_state,
                current=self.media_info,
                srtp=self.srtp.terms(),
            )
        except SrtpRefused as exc:
            # No downgrade and no SRTP against policy: 488, the call stays as it was.
            self._log_reoffer_failed(str(exc))
            raise SrtpRefused(str(exc), warning=services.srtp.warning(str(exc))) from None
        except SdpError as exc:
            # Returning None lets the UA mirror the direction on our last SDP: the call
            # survives a re-offer we cannot parse instead of being torn down.
            self._log_reoffer_failed(str(exc))
            return None
        previous = self.media_info
        self.apply_media(result.media)
        if previous is None or previous.direction != result.media.direction:
            if self.session is not None:
                # The machine decides what hold means for the conversation (call.hold logged).
                self.session.on_hold_changed(result.media.on_hold, result.media.direction)
                return result.answer.to_bytes()
            log_event(
                log,
                "call.hold" if result.media.on_hold else "call.resumed",
                f"direction now {result.media.direction}",
                call_id=self.call_id,
                direction=result.media.direction,
            )
        return result.answer.to_bytes()

    def _log_reoffer_failed(self, reason: str) -> None:
        log_event(
            log,
            "call.reoffer_failed",
            f"re-offer not usable: {reason}",
            level=logging.WARNING,
            call_id=self.call_id,
            reason=reason,
        )

    def on_dtmf(self, digit: str, duration_ms: int | None, source: str) -> None:
        """A digit from RTP (RFC 4733), in-band audio or SIP INFO."""
        if self.ended or not self._dtmf_within_rate(source):
            return
        self.services.metrics.dtmf_digit(source)
        if self.record is not None:
            self.record.add_dtmf(time.time(), digit, source, duration_ms)
        if self.session is not None:
            self.session.on_dtmf(digit, source)
        log_event(
            log,
            "dtmf.received",
            f"DTMF {digit} ({source})",
            call_id=self.call_id,
            digit=digit,
            source=source,
            duration_ms=duration_ms,
        )

    def _dtmf_within_rate(self, source: str) -> bool:
        """Input bounded by real time, for digits too: a caller's flood of RFC 4733 events or
        SIP INFOs must not become a flood of model turns (issue 9)."""
        rate = self.route.config.calls.max_dtmf_per_s
        if self.dtmf_bucket is None:
            self.dtmf_bucket = TokenBucket(rate, 2 * rate)
        if self.dtmf_bucket.take(time.monotonic()):
            return True
        self.services.metrics.dtmf_dropped_digit(source)
        if not self.dtmf_drop_logged:
            self.dtmf_drop_logged = True
            log_event(
                log,
                "dtmf.dropped",
                f"DTMF faster than calls.max_dtmf_per_s ({rate:g}/s): digits dropped",
                level=logging.WARNING,
                call_id=self.call_id,
                source=source,
            )
        return False

    # -- ending ----------------------------------------------------------------------------------
    async def _max_duration_timer(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.session is not None:
            # The machine decides: the bot's queued words are played first, then BYE.
            self.session.on_max_duration()
            return
        self.services.spawn(self.hangup_now(EndCause.MAX_DURATION, REASON_MAX_DURATION))

    def on_rtp_timeout(self) -> None:
        # Before the answer (a long answer_delay_ms) silence from the caller is normal.
        if self.ended or self.local_cause is not None or self.answered_at is None:
            return
        seconds = self.services.rtp_timeout_s
        log_event(
            log,
            "call.rtp_timeout",
            f"no RTP for {seconds:g} s",
            level=logging.WARNING,
            call_id=self.call_id,
            rtp_timeout_s=seconds,
        )
        if self.session is not None:
            # The machine decides: playout drained, then BYE with Reason cause=408.
            self.session.on_rtp_timeout(seconds)
            return
        self.services.spawn(self.hangup_now(EndCause.RTP_TIMEOUT, REASON_RTP_TIMEOUT))

    def reject_with(
        self,
        status: int,
        reason: str,
        cause: str = EndCause.REJECTED,
        retry_after_s: int | None = None,
        warning: str | None = None,
        **fields: Any,
    ) -> None:
        """Answer the INVITE with an error status; the call is finished by a task of its own."""
        self.reject_status = status
        headers = [("Retry-After", str(retry_after_s))] if retry_after_s else []
        if warning:
            headers.append(("Warning", warning))
        with contextlib.suppress(Exception):  # the UA may already have ended the transaction
            self.sip.reject(status, headers=headers)
        log_event(
            log,
            "call.rejected",
            f"rejected with {status}: {reason}",
            level=logging.WARNING,
            call_id=self.call_id,
            status=status,
            reason=reason,
            **fields,
        )
        self.services.spawn(self.finish(cause))

    async def hangup_now(self, cause: str, reason: str) -> None:
        """BYE with `reason` (a Reason header value), then finish with `cause`."""
        if self.ended or self.local_cause is not None:
            return
        self.local_cause = cause
        status: int | None = None
        try:
            status = await self.sip.hangup(reason_header=reason)
        except Exception as exc:  # the peer vanished: we still clean up our side
            log_event(
                log,
                "call.hangup_failed",
                f"BYE failed: {exc}",
                level=logging.WARNING,
                call_id=self.call_id,
            )
        log_event(
            log,
            "call.hangup",
            f"BYE sent ({cause})",
            call_id=self.call_id,
            cause=cause,
            bye_status=status,
        )
        await self.finish(cause)

    async def end_for_shutdown(self) -> None:
        if self.answered_at is None and self.direction == "inbound":
            self.reject_with(503, "shutdown", cause=EndCause.SHUTDOWN)
            return
        await self.hangup_now(EndCause.SHUTDOWN, REASON_SHUTDOWN)

    def operator_hangup(self) -> None:
        """The control API's DELETE /calls/{id}: a call not answered yet gets 480; an answered
        call bridged to a voice session is ended by its machine (BYE, cause local_bye)."""
        if self.answered_at is None and self.direction == "inbound":
            self.reject_with(480, "hung up by operator", cause=EndCause.LOCAL_BYE)
            return
        if self.session is not None:
            self.session.on_operator_hangup()
            return
        reason = reason_header(200, "operator hangup")
        self.services.spawn(self.hangup_now(EndCause.LOCAL_BYE, reason))

    def ended_by_peer(self) -> bool:
        """The UA ended the call (CANCEL, ...) while we were not looking: the INVITE handler runs
        as its own task, so a CANCEL can be processed before it, and `on_sip_ended` then found
        no call to finish. Finish it now; True when the call is over."""
        if self.ended:
            return True
        if self.sip.state != "terminated":
            return False
        self.services.spawn(self.finish(ua_cause(self.sip.end_reason or "cancelled")))
        return True

    def on_sip_ended(self, reason: str) -> None:
        """The user agent ended the dialog (BYE, CANCEL, Timer H, our own BYE...)."""
        if self.ended:
            return
        if self.session is not None:
            self.session.on_sip_ended(reason)
        cause = self.local_cause or ua_cause(reason)
        if self.reject_status is not None:
            cause = EndCause.REJECTED
        self.services.spawn(self.finish(cause))

    def _spawn_timer(self, coro: Coroutine[Any, Any, None]) -> None:
        """A per-call timer (max duration, the ring delay), cancelled when the call ends."""
        task = asyncio.ensure_future(coro)
        self.timers.add(task)
        task.add_done_callback(self.timers.discard)

    async def finish(self, cause: str) -> None:
        """Stop media, release ports, account, log `call.ended` once."""
        if self.ended:
            return
        self.ended = True
        # The call's length ends with SIP, not with the teardown below (a GPT-Live session's
        # graceful close waits for the service to drain: seconds after the BYE).
        ended_at = self.services.loop.time()
        current = asyncio.current_task()
        for task in list(self.timers):
            if task is not current:
                task.cancel()
        stats: dict[str, Any] = {}
        # Media first: SIP is over, so RTP ports, sockets and the clock slot go now, not after
        # a GPT-Live close that waits seconds for the service to drain (its silence appends are
        # generated, not read from RTP). Each step alone: one failing must not keep the other.
        if self.media is not None:
            try:
                stats.update(rtp_summary(self.media.close(cause)))
            except Exception:
                self._cleanup_failed("media")
        if self.session is not None:
            try:
                await self.session.close()
                stats.update(accounting.session_summary(self.session))
            except Exception:
                self._cleanup_failed("voice session")
        duration = ended_at - self.answered_at if self.answered_at is not None else 0.0
        fields: dict[str, Any] = {
            "call_id": self.call_id,
            "cause": str(cause),
            "answered": self.answered_at is not None,
            "duration_s": round(duration, 3),
            "route": self.route.name,
        }
        if self.reject_status is not None:
            fields["status"] = self.reject_status
        fields.update(stats)
        accounting.account_ended(self, str(cause), duration, stats)
        log_event(log, "call.ended", f"call ended ({cause})", **fields)
        self.services.ended(self)

    def _cleanup_failed(self, what: str) -> None:
        # The call is still accounted (metrics, record, call.ended) whatever failed.
        log.exception(
            "call cleanup failed (%s)",
            what,
            extra={"event": "call.cleanup_failed", "fields": {"call_id": self.call_id}},
        )

    # -- session.CallControl: what the voice session's machine asks of the call --------------------
    def answer(self) -> None:
        if self.ended:
            return
        if self.direction == "outbound":
            # The callee's 200 already made the call: the machine's "session ready, send the
            # 200" only tells the session the call is up, as the ACK does for an inbound call.
            # Not from inside the machine's own dispatch: the Ack is the next event.
            session = self.session
            if session is not None:
                self.services.loop.call_soon(session.on_ack, caller_sends(self.media_info))
            return
        if self.answered_at is None:
            self._spawn_timer(self._accept(self.answer_body))

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        if self.ended:
            return
        if self.direction == "outbound" or self.answered_at is not None:
            # No voice session for a call that is already up: end it with BYE.
            reason_value = reason_header(status, reason[:60])
            self.services.spawn(self.hangup_now(EndCause.REALTIME_FAILED, reason_value))
            return
        self.reject_with(status, reason, retry_after_s=retry_after_s)

    def hangup(self, cause: EndCause, text: str = "") -> None:
        reason = bye_reason(cause)
        header = reason_header(reason.status, text) if text else reason.header()
        self.services.spawn(self.hangup_now(cause, header))

    async def refer(self, target_uri: str) -> int:
        return int(await self.sip.refer(target_uri))

    def send_digits(self, digits: str) -> None:
        if self.media is None:
            raise ValueError("no media stream to send DTMF on")
        self.media.send_digits(digits)

    def stop_media(self) -> None:
        if self.media is not None:
            self.media.stop_output()

    # -- the control API's view ------------------------------------------------------------------
    def summary(self, now: float) -> dict[str, Any]:
        rtp = self.media.stream.snapshot() if self.media is not None else None
        return {
            "call_id": self.call_id,
            "direction": self.direction,
            "from": self.sip.from_header,
            "to": self.sip.to_header,
            "route": self.route.name,
            "state": (
                self.session.ctx.state.value
                if self.session is not None
                else ("answered" if self.answered_at is not None else "offered")
            ),
            "codec": self.media_info.codec if self.media_info else None,
            "duration_s": (
                round(now - self.answered_at, 3) if self.answered_at is not None else 0.0
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


__all__ = [
    "REASON_ACK_TIMEOUT",
    "REASON_BAD_ANSWER",
    "REASON_MAX_DURATION",
    "REASON_RTP_TIMEOUT",
    "REASON_SHUTDOWN",
    "CallServices",
    "LiveCall",
    "PendingDialog",
]
