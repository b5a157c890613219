"""A call we place (control API `POST /calls`): our offer in the INVITE, the callee's answer
in its 200, then the same call object as an inbound call.

We are the offerer here (RFC 3264 5): the codec is known before the voice session starts,
so the session's Answer only tells it the call is up (`LiveCall.answer`, outbound branch).
Failures are values (`ControlFailure`) the control API reports; nothing here speaks HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.call import accounting
from gateway.call.answer import answer_media
from gateway.call.call import REASON_BAD_ANSWER, CallServices, LiveCall, PendingDialog
from gateway.call.causes import EndCause
from gateway.call.srtp import CallSrtp, offer_refusal
from gateway.control_failure import ControlFailure
from gateway.media.stream import NoFreePortError
from gateway.observe.logs import log_event
from sip.sdp import SdpError

log = logging.getLogger("gateway")


async def place_call(
    services: CallServices,
    ua: Any,  # sip.useragent.UserAgent
    route: Any,
    target: str,
    target_uri: Any,  # sip.uri.SipUri of `target`
    dest: Any,  # the resolved next hop (sip.useragent.Hop)
    *,
    instructions: str,
    from_user: str | None,
    credentials: Any,
    ring_timeout: float,
    registration: str | None,
    register: Callable[[LiveCall], None],
) -> str | ControlFailure:
    """INVITE `target` through `dest`; the Call-ID once the callee answered and the voice
    session started, else why not. `register` enters the answered call in the process's
    registry before anything else can end it."""
    live = LiveCall(services, PendingDialog(), route, direction="outbound")
    # SRTP: the trunk's policy (registration), SDES keys only over TLS (gateway/call/srtp.py).
    policy = services.srtp.policy_for(route.name, registration=registration)
    live.srtp = CallSrtp(services.srtp, policy, getattr(dest, "proto", "") == "tls")
    if (refusal := offer_refusal(live.srtp.terms())) is not None:
        return ControlFailure(422, f"to: {refusal}")
    live.choose_media_endpoint(services.families.for_peer(dest.host), dest.host)
    try:
        media = await live.open_media()
    except NoFreePortError as exc:
        return ControlFailure(503, str(exc))
    offer = live.our_offer()
    log_event(log, "call.originating", f"calling {target}", to=target, registration=registration)
    try:
        call = await ua.invite(
            target_uri,
            offer.to_bytes(),
            from_user=from_user or None,
            dest=dest,
            credentials=credentials,
            ring_timeout=ring_timeout,
        )
    except Exception as exc:
        media.close(EndCause.ERROR)
        return ControlFailure(502, f"INVITE to {target} failed: {exc}")
    if call.status is None or not 200 <= call.status < 300:
        media.close(EndCause.REJECTED)
        status = call.status or 408
        if call.challenge_refused:
            return ControlFailure(
                502,
                f"{target}: {call.challenge_refused} challenged the call ({status}); not "
                f"answered: registration {registration or '-'!r} "
                "authenticates only to its registrar",
            )
        return ControlFailure(502, f"{target} answered {status} {call.reason}".strip())
    live.sip = call
    register(live)
    accounting.open_record(live, f"{dest.host}:{dest.port}")
    log_event(
        log,
        "call.originated",
        f"{target} answered",
        call_id=call.call_id,
        **{"from": call.from_header, "to": call.to_header},
        route=route.name,
    )
    try:
        info = answer_media(live.media_bind, offer, call.remote_sdp or b"", live.srtp.offered)
    except SdpError as exc:
        log_event(
            log,
            "call.media_failed",
            f"callee's answer unusable: {exc}",
            level=logging.WARNING,
            call_id=call.call_id,
            reason=str(exc),
        )
        services.spawn(live.hangup_now(EndCause.BAD_ANSWER, REASON_BAD_ANSWER))
        return ControlFailure(502, f"{target}: unusable SDP answer ({exc})")
    live.apply_media(info)
    live.start_session(b"", instructions=instructions)
    live.answered()
    return str(call.call_id)


__all__ = ["place_call"]
