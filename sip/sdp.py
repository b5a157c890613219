"""SDP parse/serialise (RFC 8866) and the audio offer/answer the gateway needs (RFC 3264).

Pure code, no I/O. The gateway speaks G.711 only (PCMU/PCMA, RFC 3551) plus RFC 4733
telephone-event, at 20 ms, on one audio stream; every other stream is declined with port 0.

Inbound call with an offer::

    offer = parse_sdp(invite.body)
    try:
        result = answer_offer(offer, local_ip, rtp_port, prefs, state=dialog_sdp_state)
    except NoCommonCodec as exc:      # reply 488 Not Acceptable Here (exc names the reason)
        ...
    body = result.answer.to_bytes(); media = result.media

Late offer (INVITE without SDP) / outbound call::

    offer = build_offer(local_ip, rtp_port, prefs, state=dialog_sdp_state)
    media = process_answer(offer, parse_sdp(ack_or_200.body))

This module is the face the rest of the code imports: the wire structures and `parse_sdp` live in
sip/sdp_wire.py, the offer/answer in sip/sdp_offer_answer.py. What stays here is what a dialog
does with SDP bodies: find the SDP in a message, mirror a hold/resume offer's direction on our
last SDP, and keep the o= version right across answers (RFC 3264 8).
"""

from __future__ import annotations

from dataclasses import replace

from sip.body import read_body
from sip.message import Request, Response
from sip.sdp_offer_answer import (
    SUPPORTED_CODECS,
    AnswerResult,
    CodecPrefs,
    LocalSdpState,
    MediaInfo,
    SrtpRefused,
    answer_offer,
    build_offer,
    crypto_lines,
    process_answer,
)
from sip.sdp_wire import (
    DIRECTIONS,
    Attribute,
    Connection,
    MediaDescription,
    NoCommonCodec,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    mirror_direction,
    parse_sdp,
)

__all__ = [
    "DIRECTIONS",
    "SUPPORTED_CODECS",
    "AnswerResult",
    "Attribute",
    "CodecPrefs",
    "Connection",
    "LocalSdpState",
    "MediaDescription",
    "MediaInfo",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "SrtpRefused",
    "answer_offer",
    "build_offer",
    "crypto_lines",
    "first_audio",
    "mirror_direction",
    "mirror_offer_direction",
    "parse_sdp",
    "parse_sdp_or_none",
    "process_answer",
    "sdp_body",
    "versioned_sdp",
]


def sdp_body(msg: Request | Response) -> bytes | None:
    """The SDP of a message: its body, or the SDP part of a multipart body (SIP-I trunks)."""
    return read_body(msg.headers.get("Content-Type"), msg.body).sdp


def parse_sdp_or_none(body: bytes | None) -> SessionDescription | None:
    """Parsed offer, or None when there is none or it does not parse (the app decides: 488)."""
    if not body:
        return None
    try:
        return parse_sdp(body)
    except SdpError:
        return None


def first_audio(sdp: SessionDescription) -> MediaDescription | None:
    """The first audio stream that is not declined (port 0)."""
    for media in sdp.media:
        if media.media == "audio" and media.port != 0:
            return media
    return None


def mirror_offer_direction(local_sdp: bytes, offer_sdp: bytes) -> bytes | None:
    """Our last SDP with the audio direction mirrored against a new offer (hold/resume), for
    when the application gives no answer of its own. None if either SDP does not parse."""
    try:
        local = parse_sdp(local_sdp)
        offer = parse_sdp(offer_sdp)
    except SdpError:
        return None
    offered = first_audio(offer)
    ours = first_audio(local)
    if offered is None or ours is None:
        return None
    direction = offer.media_direction(offered)
    connection = offer.media_connection(offered)
    if connection is not None and connection.address in ("0.0.0.0", "::"):
        direction = "sendonly"  # RFC 2543 hold: the peer does not want to receive
    wanted = mirror_direction(direction)
    local.attributes = [a for a in local.attributes if a.name not in DIRECTIONS]
    ours.attributes = [a for a in ours.attributes if a.name not in DIRECTIONS]
    ours.attributes.append(Attribute(wanted))
    return local.to_bytes()


def _sdp_version(sdp: bytes) -> int | None:
    try:
        version = parse_sdp(sdp).origin.session_version
    except (SdpError, AttributeError):
        return None
    return int(version) if str(version).isdigit() else None


def _without_origin(sdp: bytes) -> bytes:
    return b"\r\n".join(ln for ln in sdp.splitlines() if not ln.startswith(b"o=")).strip()


def versioned_sdp(previous: bytes | None, new: bytes) -> bytes:
    """RFC 3264 8: same o= version as `previous` when nothing else changed, previous+1 when the
    body changed (whatever version the application wrote)."""
    if previous is None:
        return new
    old_version = _sdp_version(previous)
    try:
        parsed = parse_sdp(new)
    except SdpError:
        return new
    if old_version is None:
        return new
    same = _without_origin(previous) == _without_origin(new)
    parsed.origin = replace(
        parsed.origin, session_version=str(old_version if same else old_version + 1)
    )
    return parsed.to_bytes()
