"""SDP offer/answer for one call, and the conversion of its result into the media's own type.

sip/sdp.py does the RFC 3264 work; this module adds what the gateway decides about it: an
address of the IP family our RTP socket cannot serve is unusable (RFC 3261 20.43 warn-code
301), the codec names of a refused offer are logged, and `negotiated` hands the media path a
`NegotiatedMedia` so gateway/media never imports sip.sdp.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.media.negotiated import NegotiatedMedia
from gateway.media_address import (
    INCOMPATIBLE_ADDRESS,
    answered_address,
    reoffer_problem,
    warning_301,
)
from sip.sdp import (
    CodecPrefs,
    MediaInfo,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    parse_sdp,
    process_answer,
)
from sip.sdp_crypto import CryptoAttribute, SdesTerms


def negotiated(info: MediaInfo) -> NegotiatedMedia:
    """The media path's view of a negotiated SDP stream."""
    return NegotiatedMedia(
        codec=info.codec,
        payload_type=info.payload_type,
        remote_host=info.remote_host,
        remote_port=info.remote_port,
        remote_rtcp_port=info.remote_rtcp_port,
        direction=info.direction,
        telephone_event_pt=info.telephone_event_pt,
        ptime=info.ptime,
        on_hold=info.on_hold,
    )


def answer_media(
    media_bind: str,
    offer: SessionDescription,
    sdp: bytes,
    offered_crypto: Sequence[CryptoAttribute] = (),
) -> MediaInfo:
    """The stream of an answer to our offer; SdpError when unusable, an address of the
    other family than our socket included, or an SRTP offer's answer without a matching
    a=crypto line (the call then ends with Reason 488)."""
    info = process_answer(offer, parse_sdp(sdp), offered_crypto)
    problem = reoffer_problem(media_bind, info.remote_host, what="answer")
    if problem is not None:
        raise SdpError(problem)
    return info


def reoffer_family_problem(
    media_bind: str, offer_sdp: bytes, prefs: CodecPrefs, srtp: SdesTerms | None = None
) -> str | None:
    """Why a re-offer moving the media to the other IP family cannot be served by the socket
    we hold, or None (an unparsable offer is reported by the real answer)."""
    try:
        remote_host = answered_address(parse_sdp(offer_sdp), prefs, srtp)
    except SdpError:
        return None
    return reoffer_problem(media_bind, remote_host)


def incompatible_address(advertised_host: str, reason: str) -> NoCommonCodec:
    """The 488 of an offer whose address family we cannot serve, with its Warning 301."""
    return NoCommonCodec(reason, warning=warning_301(advertised_host, INCOMPATIBLE_ADDRESS))


def offered_codecs(offer: SessionDescription) -> list[str]:
    """Codec names of the offer's audio streams, for the 488 log line."""
    names: list[str] = []
    for media in offer.media:
        if media.media.lower() != "audio":
            continue
        for fmt in media.fmts:
            mapped = media.codec(fmt)
            names.append(f"{mapped.encoding}/{mapped.clock_rate}" if mapped else fmt)
    return names


def caller_sends(info: MediaInfo | None) -> bool:
    """False when the negotiated direction says no RTP will ever come (we are sendonly or
    inactive): then the ACK, not the first RTP packet, starts the call's audio time."""
    return info is None or info.may_receive


__all__ = [
    "answer_media",
    "caller_sends",
    "incompatible_address",
    "negotiated",
    "offered_codecs",
    "reoffer_family_problem",
]
