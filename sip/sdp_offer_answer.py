"""Audio offer/answer for the gateway (RFC 3264) over the SDP structures of sip/sdp_wire.py.

The gateway speaks G.711 only (PCMU/PCMA, RFC 3551) plus RFC 4733 telephone-event, at 20 ms, on
one audio stream; every other stream is declined with port 0. RTP/SAVP (SRTP keyed by SDES,
RFC 4568) is answered and offered under a call's `SdesTerms` (sip/sdp_crypto.py); without them
it is declined as before. Pure code, no I/O.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sip.sdp_crypto import (
    CryptoAttribute,
    CryptoChoice,
    SdesError,
    SdesTerms,
    SrtpAction,
    accept_answer_crypto,
    format_crypto,
)
from sip.sdp_wire import (
    DIRECTIONS,
    Attribute,
    Connection,
    MediaDescription,
    NoCommonCodec,
    Origin,
    SdpError,
    SessionDescription,
    intersect_direction,
    is_payload_type,
    mirror_direction,
)

SUPPORTED_CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}  # name -> static payload type
_CLOCK_RATE = 8000
_USABLE_PROTOS = ("RTP/AVP", "RTP/AVPF")  # AVPF is AVP plus feedback we need not send
_SDES_PROTOS = ("RTP/SAVP", "RTP/SAVPF")  # SRTP keyed by a=crypto (RFC 4568)
# DTLS-SRTP: with SDES terms the decision refuses it by name (not supported yet)
_DTLS_PROTOS = ("UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")


class SrtpRefused(NoCommonCodec):
    """The offer was refused for SRTP reasons (policy, crypto lines, SDES over plain
    signalling): 488, and the reason is worth a Warning header."""


@dataclass(frozen=True)
class CodecPrefs:
    """Codec policy from `[sip] codecs`.

    By default the offerer's order wins among the codecs we support (RFC 3264 6.1: the answerer
    SHOULD keep the offer's preference); `prefer_ours=True` applies our list order instead.
    """

    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    prefer_ours: bool = False
    ptime: int = 20
    telephone_event: bool = True
    telephone_events: str = "0-16"  # events we offer (RFC 4733 3.2: 0-15 DTMF, 16 flash)

    def __post_init__(self) -> None:
        names = tuple(str(c).strip().upper() for c in self.codecs)
        unknown = [c for c in names if c not in SUPPORTED_CODECS]
        if unknown:
            raise ValueError(f"unsupported codec(s) {unknown}; supported: {list(SUPPORTED_CODECS)}")
        if not names:
            raise ValueError("codec list is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"codec list has duplicates: {list(names)}")
        if not 10 <= self.ptime <= 200:
            raise ValueError(f"ptime {self.ptime} ms out of range")
        object.__setattr__(self, "codecs", names)

    def rank(self, codec: str) -> int:
        return self.codecs.index(codec)


@dataclass(frozen=True)
class MediaInfo:
    """What the media layer needs about the negotiated audio stream."""

    codec: str  # 'PCMU' | 'PCMA'
    payload_type: int  # PT we send and expect for audio
    remote_host: str
    remote_port: int
    remote_rtcp_port: int
    direction: str = "sendrecv"  # what WE may do: sendrecv/sendonly/recvonly/inactive
    telephone_event_pt: int | None = None
    telephone_events: str = ""
    clock_rate: int = _CLOCK_RATE
    ptime: int = 20  # the packetisation we send
    remote_ptime: int | None = None  # what the peer asked for (a=ptime), informational
    on_hold: bool = False  # the peer put us on hold (sendonly/inactive or c=0.0.0.0)
    # SRTP keys (RFC 4568): the peer's line (unprotects what arrives) and ours (protects what
    # we send); None for plain RTP. The repr shows no key (sip.sdp_crypto.SrtpKey).
    crypto: CryptoChoice | None = None

    @property
    def may_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def may_receive(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


@dataclass(frozen=True)
class AnswerResult:
    answer: SessionDescription
    media: MediaInfo
    media_index: int  # which m= line carries the audio we use


@dataclass
class LocalSdpState:
    """Our o= line across one dialog (RFC 3264 8: bump the version only when the SDP changes).

    A session-refresh re-INVITE whose answer is identical gets the same version; hold/resume,
    a new port or codec bumps it by one.
    """

    session_id: int = field(default_factory=lambda: secrets.randbits(62) or 1)
    session_version: int = 0
    username: str = "-"
    _last_body: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.session_version == 0:
            # RFC 8866 5.2 suggests an NTP-ish value; any start works as long as it then grows.
            self.session_version = secrets.randbits(31) or 1

    def stamp(self, sdp: SessionDescription, address: str) -> SessionDescription:
        """Return `sdp` with our o= line, the version bumped if the content changed."""
        body = "\r\n".join(line for line in sdp.lines() if not line.startswith("o="))
        if self._last_body is not None and body != self._last_body:
            self.session_version += 1
        self._last_body = body
        connection = Connection.for_host(address)
        return replace(
            sdp,
            origin=Origin(
                self.username,
                str(self.session_id),
                str(self.session_version),
                "IN",
                connection.addrtype,
                address,
            ),
        )


def _check_local(local_ip: str, local_rtp_port: int) -> str:
    """The local address as SDP writes it (IPv6 without brackets, RFC 8866 5.7)."""
    host = local_ip[1:-1] if local_ip.startswith("[") and local_ip.endswith("]") else local_ip
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SdpError(f"local address {local_ip!r} is not an IP address") from None
    if not 0 < local_rtp_port < 65536:
        raise SdpError(f"local RTP port {local_rtp_port} out of range")
    return host


def _telephone_event(media: MediaDescription) -> tuple[int, str] | None:
    """First telephone-event/8000 PT in the m= line order and its events (RFC 4733 2.4.1:
    no fmtp means 0-15). Rates other than 8000 (linphone offers 48000/16000 ones) don't fit G.711."""
    for fmt in media.fmts:
        mapped = media.rtpmaps().get(int(fmt)) if is_payload_type(fmt) else None
        if (
            mapped is not None
            and mapped.encoding.lower() == "telephone-event"
            and mapped.clock_rate == _CLOCK_RATE
        ):
            events = media.fmtp(mapped.payload_type)
            return mapped.payload_type, (events or "0-15").replace(" ", "")
    return None


def _g711_candidates(media: MediaDescription, allowed: Iterable[str]) -> list[tuple[str, int]]:
    """(codec, PT) for every G.711 format in the m= line, in the offerer's order."""
    allowed_set = set(allowed)
    found: list[tuple[str, int]] = []
    seen: set[str] = set()
    for fmt in media.fmts:
        mapped = media.codec(fmt)
        if mapped is None:
            continue
        name = mapped.encoding.upper()
        if (
            name in allowed_set
            and mapped.clock_rate == _CLOCK_RATE
            and mapped.channels == 1
            and name not in seen
        ):
            seen.add(name)
            found.append((name, mapped.payload_type))
    return found


def _stream_problem(media: MediaDescription, srtp: bool = False) -> str | None:
    if media.media.lower() != "audio":
        return f"{media.media} stream not supported"
    if media.port == 0:
        return "stream disabled (port 0)"
    proto = media.proto.upper()
    if proto not in _USABLE_PROTOS and not (srtp and proto in (*_SDES_PROTOS, *_DTLS_PROTOS)):
        # RTP/SAVP without SDES terms, UDP/TLS/RTP/SAVPF (DTLS): declined (RFC 3264 6).
        return f"transport {media.proto} not supported"
    return None


def crypto_lines(media: MediaDescription) -> list[str]:
    """The values of an m= section's `a=crypto` lines."""
    return [a.value or "" for a in media.attributes if a.name.lower() == "crypto"]


def _rejected(media: MediaDescription) -> MediaDescription:
    # RFC 3264 6: a declined stream keeps its m= line with port 0 and at least one format.
    return MediaDescription(
        media=media.media, port=0, proto=media.proto, fmts=list(media.fmts) or ["0"]
    )


def answer_offer(
    offer: SessionDescription,
    local_ip: str,
    local_rtp_port: int,
    prefs: CodecPrefs | None = None,
    *,
    state: LocalSdpState | None = None,
    current: MediaInfo | None = None,
    direction: str = "sendrecv",
    session_name: str = "-",
    srtp: SdesTerms | None = None,
) -> AnswerResult:
    """Answer an offer (RFC 3264 6): one G.711 codec plus telephone-event on the first usable
    audio stream, every other m= line declined with port 0, same count and order.

    `state` keeps our o= line across the dialog (pass the same one for re-INVITEs); `current`
    is the stream negotiated so far, whose codec is kept when still offered (Asterisk expects a
    call to stay on one codec); `direction` is what we want (e.g. "sendonly" for our own hold).
    Raises NoCommonCodec (-> 488) naming why nothing was usable, SdpError for a bad local setup.

    `srtp`: the call's SRTP terms (sip/sdp_crypto.py `decide_srtp`): an `RTP/SAVP` stream is
    answered with `a=crypto` of a fresh key of ours, a stream the policy refuses is a problem
    like any other (SrtpRefused when that is why nothing was usable). None: plain RTP only.
    """
    prefs = prefs or CodecPrefs()
    state = state or LocalSdpState()
    local_ip = _check_local(local_ip, local_rtp_port)
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")
    if not offer.media:
        raise NoCommonCodec("offer has no m= lines")

    chosen: int | None = None
    media_lines: list[MediaDescription] = []
    problems: list[str] = []
    srtp_problems = 0
    info: MediaInfo | None = None
    for index, offered in enumerate(offer.media):
        if chosen is not None:
            media_lines.append(_rejected(offered))
            continue
        problem = _stream_problem(offered, srtp is not None)
        candidates: list[tuple[str, int]] = []
        crypto: CryptoChoice | None = None
        if problem is None and srtp is not None:
            decision = srtp.decide(offered.proto, crypto_lines(offered))
            if decision.action is SrtpAction.REFUSE:
                problem = decision.reason
                srtp_problems += 1
            crypto = decision.choice
        if problem is None:
            candidates = _g711_candidates(offered, prefs.codecs)
            if not candidates:
                offered_names = [
                    (m.encoding if (m := offered.codec(f)) else f) for f in offered.fmts
                ]
                problem = f"no common codec (offered {', '.join(offered_names) or 'none'})"
        connection = offer.media_connection(offered)
        if problem is None and connection is None:
            problem = "no c= connection address"
        if problem is not None:
            problems.append(f"m={offered.media} #{index + 1}: {problem}")
            media_lines.append(_rejected(offered))
            continue
        assert connection is not None
        if prefs.prefer_ours:
            candidates.sort(key=lambda c: prefs.rank(c[0]))
        if current is not None:
            # Stickiness first: a re-offer that still carries our codec keeps it.
            candidates.sort(key=lambda c: c[0] != current.codec)
        codec, payload_type = candidates[0]
        te = _telephone_event(offered) if prefs.telephone_event else None

        offered_direction = offer.media_direction(offered)
        hold_address = connection.is_hold_address
        our_direction = intersect_direction(mirror_direction(offered_direction), direction)
        if hold_address:
            # Nowhere to send to: RFC 2543 style hold, the peer may still send to us.
            our_direction = intersect_direction(our_direction, "recvonly")
        on_hold = hold_address or offered_direction in ("sendonly", "inactive")

        fmts = [str(payload_type)]
        attributes = [Attribute("rtpmap", f"{payload_type} {codec}/{_CLOCK_RATE}")]
        if te is not None:
            fmts.append(str(te[0]))
            attributes.append(Attribute("rtpmap", f"{te[0]} telephone-event/{_CLOCK_RATE}"))
            attributes.append(Attribute("fmtp", f"{te[0]} {te[1]}"))
        attributes.append(Attribute("ptime", str(prefs.ptime)))
        attributes.append(Attribute(our_direction))
        if crypto is not None:
            attributes.append(Attribute("crypto", format_crypto(crypto.local)))
        media_lines.append(
            MediaDescription(
                media="audio",
                port=local_rtp_port,
                proto=offered.proto,
                fmts=fmts,
                attributes=attributes,
            )
        )
        remote_port = offered.port
        info = MediaInfo(
            codec=codec,
            payload_type=payload_type,
            remote_host=connection.host,
            remote_port=remote_port,
            remote_rtcp_port=offered.rtcp_port or min(remote_port + 1, 65535),
            direction=our_direction,
            telephone_event_pt=te[0] if te else None,
            telephone_events=te[1] if te else "",
            ptime=prefs.ptime,
            remote_ptime=offered.ptime,
            on_hold=on_hold,
            crypto=crypto,
        )
        chosen = index

    if chosen is None or info is None:
        if srtp_problems:
            raise SrtpRefused("; ".join(problems))
        raise NoCommonCodec("; ".join(problems) or "no usable audio stream")
    answer = SessionDescription(
        session_name=session_name,
        connection=Connection.for_host(local_ip),
        media=media_lines,
    )
    return AnswerResult(state.stamp(answer, local_ip), info, chosen)


def build_offer(
    local_ip: str,
    local_rtp_port: int,
    prefs: CodecPrefs | None = None,
    telephone_event_pt: int = 101,
    direction: str = "sendrecv",
    *,
    state: LocalSdpState | None = None,
    session_name: str = "-",
    crypto: Sequence[CryptoAttribute] = (),
) -> SessionDescription:
    """Our offer: every configured G.711 codec in preference order, telephone-event, ptime.
    With `crypto` (sip/sdp_crypto.py `offer_crypto`): an `RTP/SAVP` offer with those
    `a=crypto` lines (RFC 4568 7.1.1).

    Used for late offer (INVITE without SDP: we offer in the 200, the answer comes in the ACK),
    outbound calls and re-INVITEs we originate. Pass the dialog's `state` so an unchanged offer
    keeps its o= version.
    """
    prefs = prefs or CodecPrefs()
    state = state or LocalSdpState()
    local_ip = _check_local(local_ip, local_rtp_port)
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")
    if not 96 <= telephone_event_pt <= 127:
        raise SdpError(f"telephone-event PT {telephone_event_pt} is not dynamic (96-127)")
    fmts = [str(SUPPORTED_CODECS[c]) for c in prefs.codecs]
    attributes = [
        Attribute("rtpmap", f"{SUPPORTED_CODECS[c]} {c}/{_CLOCK_RATE}") for c in prefs.codecs
    ]
    if prefs.telephone_event:
        fmts.append(str(telephone_event_pt))
        attributes.append(Attribute("rtpmap", f"{telephone_event_pt} telephone-event/8000"))
        attributes.append(Attribute("fmtp", f"{telephone_event_pt} {prefs.telephone_events}"))
    attributes.append(Attribute("ptime", str(prefs.ptime)))
    attributes.append(Attribute(direction))
    attributes += [Attribute("crypto", format_crypto(line)) for line in crypto]
    offer = SessionDescription(
        session_name=session_name,
        connection=Connection.for_host(local_ip),
        media=[
            MediaDescription(
                media="audio",
                port=local_rtp_port,
                proto="RTP/SAVP" if crypto else "RTP/AVP",
                fmts=fmts,
                attributes=attributes,
            )
        ],
    )
    return state.stamp(offer, local_ip)


def process_answer(
    offer: SessionDescription,
    answer: SessionDescription,
    offered_crypto: Sequence[CryptoAttribute] = (),
) -> MediaInfo:
    """Check an answer against our offer and extract the stream to use (RFC 3264 5, 6).

    `offered_crypto`: the `a=crypto` lines of our RTP/SAVP offer; the answer must keep the
    profile and accept exactly one of them (MediaInfo.crypto), else NoCommonCodec.

    The answerer may list several of our codecs (baresip answers `0 8 101`): we send with the
    first one it lists. Raises NoCommonCodec when the audio stream was declined or the answer
    names no codec we offered, SdpError when the answer does not match the offer's shape.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"answer has {len(answer.media)} m= lines, offer had {len(offer.media)} (RFC 3264 6)"
        )
    problems: list[str] = []
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if _stream_problem(ours, bool(offered_crypto)) is not None:
            continue
        if theirs.port == 0:
            problems.append(f"m={ours.media} #{index + 1}: declined by the answerer (port 0)")
            continue
        if theirs.media.lower() != ours.media.lower():
            raise SdpError(
                f"m= line #{index + 1}: answer has {theirs.media}, offer had {ours.media}"
            )
        offered_codecs = {name for name, _ in _g711_candidates(ours, SUPPORTED_CODECS)}
        candidates = _g711_candidates(theirs, offered_codecs)
        if not candidates:
            answered = [(m.encoding if (m := theirs.codec(f)) else f) for f in theirs.fmts]
            problems.append(
                f"m={ours.media} #{index + 1}: answer chose {', '.join(answered) or 'nothing'},"
                f" none of which we offered"
            )
            continue
        connection = answer.media_connection(theirs)
        if connection is None:
            raise SdpError(f"m= line #{index + 1}: answer has no c= connection address")
        crypto: CryptoChoice | None = None
        if ours.proto.upper() in _SDES_PROTOS:
            if theirs.proto.upper() != ours.proto.upper():
                raise NoCommonCodec(
                    f"m={ours.media} #{index + 1}: we offered {ours.proto}, "
                    f"the answer has {theirs.proto[:30]}"
                )
            try:
                crypto = accept_answer_crypto(offered_crypto, crypto_lines(theirs))
            except SdesError as exc:
                raise NoCommonCodec(f"m={ours.media} #{index + 1}: {exc.reason}") from None
        codec, payload_type = candidates[0]
        te = _telephone_event(theirs) if _telephone_event(ours) is not None else None
        answered_direction = answer.media_direction(theirs)
        our_direction = intersect_direction(
            mirror_direction(answered_direction), offer.media_direction(ours)
        )
        if connection.is_hold_address:
            our_direction = intersect_direction(our_direction, "recvonly")
        return MediaInfo(
            codec=codec,
            payload_type=payload_type,
            remote_host=connection.host,
            remote_port=theirs.port,
            remote_rtcp_port=theirs.rtcp_port or min(theirs.port + 1, 65535),
            direction=our_direction,
            telephone_event_pt=te[0] if te else None,
            telephone_events=te[1] if te else "",
            ptime=ours.ptime or 20,
            remote_ptime=theirs.ptime,
            on_hold=connection.is_hold_address or answered_direction in ("sendonly", "inactive"),
            crypto=crypto,
        )
    raise NoCommonCodec("; ".join(problems) or "offer had no audio stream we could use")
