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
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = [
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
    "SdpError",
    "SessionDescription",
    "answer_offer",
    "build_offer",
    "parse_sdp",
    "process_answer",
]


class SdpError(ValueError):
    """Malformed SDP, or an SDP that does not fit the offer/answer exchange; names the problem."""


class NoCommonCodec(SdpError):
    """The offer (or answer) has no audio stream we can use: the UA replies 488.

    `warning`: a Warning header value for that 488 (RFC 3261 20.43, e.g. `301 host "..."`
    when the offer's address family is not one we have media for)."""

    def __init__(self, message: str, warning: str | None = None) -> None:
        super().__init__(message)
        self.warning = warning


# --- wire structures -----------------------------------------------------------------------


@dataclass
class Origin:
    """o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>."""

    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class Connection:
    """c=<nettype> <addrtype> <connection-address> (address may carry /ttl for multicast)."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def is_hold_address(self) -> bool:
        # RFC 2543 hold: c=0.0.0.0 (RFC 3264 8.4 says still to accept it); "::" is the IPv6 twin.
        return self.host in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @classmethod
    def for_host(cls, host: str) -> Connection:
        return cls("IN", "IP6" if ":" in host else "IP4", host)


@dataclass
class Attribute:
    """a=<name>[:<value>]; unknown attributes are kept verbatim (RFC 8866 5.13)."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


def mirror_direction(direction: str) -> str:
    """The direction an answerer states for an offered one (RFC 3264 6.1)."""
    return _MIRROR[direction]


def _intersect_direction(a: str, b: str) -> str:
    send = a in ("sendrecv", "sendonly") and b in ("sendrecv", "sendonly")
    recv = a in ("sendrecv", "recvonly") and b in ("sendrecv", "recvonly")
    if send and recv:
        return "sendrecv"
    if send:
        return "sendonly"
    if recv:
        return "recvonly"
    return "inactive"


def _attr_value(attributes: Iterable[Attribute], name: str) -> str | None:
    for attribute in attributes:
        if attribute.name == name:
            return attribute.value if attribute.value is not None else ""
    return None


def _direction_of(attributes: Iterable[Attribute]) -> str | None:
    for attribute in attributes:
        if attribute.name in DIRECTIONS and attribute.value is None:
            return attribute.name
    return None


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


# RFC 3551 table 4: static audio payload types, usable without a=rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    4: RtpMap(4, "G723", 8000),
    5: RtpMap(5, "DVI4", 8000),
    6: RtpMap(6, "DVI4", 16000),
    7: RtpMap(7, "LPC", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),
    10: RtpMap(10, "L16", 44100, 2),
    11: RtpMap(11, "L16", 44100),
    12: RtpMap(12, "QCELP", 8000),
    13: RtpMap(13, "CN", 8000),
    14: RtpMap(14, "MPA", 90000),
    15: RtpMap(15, "G728", 8000),
    16: RtpMap(16, "DVI4", 11025),
    17: RtpMap(17, "DVI4", 22050),
    18: RtpMap(18, "G729", 8000),
}


@dataclass
class MediaDescription:
    """One m= section: m=<media> <port>[/<count>] <proto> <fmt> ... plus its i/c/b/k/a lines."""

    media: str
    port: int
    proto: str
    fmts: list[str] = field(default_factory=list)
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)  # unknown <type>=<value> lines, verbatim

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={' '.join([self.media, port, self.proto, *self.fmts])}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        out.extend(self.other_lines)
        return out

    def attribute(self, name: str) -> str | None:
        """Value of the first a=<name> ('' for a flag attribute), None when absent."""
        return _attr_value(self.attributes, name)

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, None when absent (session level then applies)."""
        return _direction_of(self.attributes)

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> encoding, from a=rtpmap lines (malformed ones are ignored)."""
        maps: dict[int, RtpMap] = {}
        for attribute in self.attributes:
            if attribute.name != "rtpmap" or attribute.value is None:
                continue
            parsed = _parse_rtpmap(attribute.value)
            if parsed is not None and parsed.payload_type not in maps:
                maps[parsed.payload_type] = parsed
        return maps

    def codec(self, fmt: str) -> RtpMap | None:
        """What a payload type in the m= line means: rtpmap first, else the RFC 3551 table."""
        if not _is_pt(fmt):
            return None
        pt = int(fmt)
        mapped = self.rtpmaps().get(pt)
        if mapped is not None:
            return mapped
        return STATIC_PAYLOAD_TYPES.get(pt)

    def fmtp(self, payload_type: int) -> str | None:
        for attribute in self.attributes:
            if attribute.name == "fmtp" and attribute.value is not None:
                pt, _, params = attribute.value.partition(" ")
                if pt.strip() == str(payload_type):
                    return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        try:
            ptime = int(float(value)) if value else None
        except (ValueError, OverflowError):  # "a=ptime:inf" overflows int()
            return None
        return ptime if ptime is not None and 0 < ptime <= 1000 else None

    @property
    def rtcp_port(self) -> int | None:
        """Port from a=rtcp:<port> [IN IP4 addr] (RFC 3605), None when absent or malformed."""
        value = self.attribute("rtcp")
        if not value:
            return None
        try:
            port = int(value.split()[0])
        except (ValueError, IndexError):
            return None
        return port if 0 < port < 65536 else None


def _is_pt(fmt: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts characters such as superscripts.
    return 0 < len(fmt) <= 3 and fmt.isascii() and fmt.isdigit()


def _parse_rtpmap(value: str) -> RtpMap | None:
    # "<pt> <encoding>/<clock rate>[/<channels>]" (RFC 8866 6.6)
    pt_text, _, rest = value.strip().partition(" ")
    parts = rest.strip().split("/")
    try:
        pt = int(pt_text)
        rate = int(parts[1])
        channels = int(parts[2]) if len(parts) > 2 and parts[2] else 1
    except (ValueError, IndexError):
        return None
    if not parts[0]:
        return None
    return RtpMap(pt, parts[0], rate, channels)


@dataclass
class SessionDescription:
    """A whole SDP body. Lines are emitted in the RFC 8866 order, CRLF terminated."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=lambda: ["0 0"])  # t= values
    repeats: list[str] = field(default_factory=list)  # r= values
    zone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        out.extend(f"t={t}" for t in self.times)
        out.extend(f"r={r}" for r in self.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a}" for a in self.attributes)
        out.extend(self.other_lines)
        for media in self.media:
            out.extend(media.lines())
        return out

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.lines())

    def to_bytes(self) -> bytes:
        # surrogateescape mirrors parse_sdp, so non-UTF-8 bytes (a=charset peers) round-trip.
        return str(self).encode("utf-8", "surrogateescape")

    @property
    def direction(self) -> str | None:
        return _direction_of(self.attributes)

    def media_direction(self, media: MediaDescription) -> str:
        """Effective direction of a stream: media level, else session level, else sendrecv."""
        return media.direction or self.direction or "sendrecv"

    def media_connection(self, media: MediaDescription) -> Connection | None:
        """c= at media level overrides session level (RFC 8866 5.7)."""
        return media.connection or self.connection


# --- parsing -------------------------------------------------------------------------------

_MAX_SDP_BYTES = 65536
_MAX_LINES = 2000


def _parse_connection(value: str, lineno: int) -> Connection:
    fields = value.split()
    if len(fields) != 3:
        raise SdpError(f"line {lineno}: c= needs '<nettype> <addrtype> <address>', got {value!r}")
    return Connection(*fields)


def _parse_origin(value: str, lineno: int) -> Origin:
    fields = value.split()
    if len(fields) != 6:
        raise SdpError(f"line {lineno}: o= needs 6 fields, got {len(fields)}: {value!r}")
    return Origin(*fields)


def _parse_media_line(value: str, lineno: int) -> MediaDescription:
    fields = value.split()
    if len(fields) < 3:
        raise SdpError(f"line {lineno}: m= needs '<media> <port> <proto> <fmt>...': {value!r}")
    port_text, _, count_text = fields[1].partition("/")
    try:
        port = int(port_text)
        count = int(count_text) if count_text else None
    except ValueError:
        raise SdpError(f"line {lineno}: m= port is not a number: {fields[1]!r}") from None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= port <= 65535:
        raise SdpError(f"line {lineno}: m= port out of range: {fields[1]!r}")
    if count is not None and (count < 1 or not (count_text.isascii() and count_text.isdigit())):
        raise SdpError(f"line {lineno}: m= port count invalid: {fields[1]!r}")
    return MediaDescription(
        media=fields[0], port=port, port_count=count, proto=fields[2], fmts=fields[3:]
    )


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return Attribute(name, rest if sep else None)


def parse_sdp(data: str | bytes) -> SessionDescription:
    """Parse an SDP body. Tolerates LF-only line ends, trailing spaces, blank lines and unknown
    line types or attributes; raises SdpError naming the problem for anything structural
    (missing v=/o=, bad m= or c= lines)."""
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > _MAX_SDP_BYTES:
            raise SdpError(f"SDP too large ({len(data)} bytes)")
        text = bytes(data).decode("utf-8", "surrogateescape")
    elif isinstance(data, str):
        text = data
        if len(text) > _MAX_SDP_BYTES:
            raise SdpError(f"SDP too large ({len(text)} characters)")
        try:
            text.encode("utf-8", "surrogateescape")  # so to_bytes() cannot fail later
        except UnicodeEncodeError:
            raise SdpError("SDP text contains characters that cannot be encoded") from None
    else:
        raise SdpError(f"SDP must be str or bytes, not {type(data).__name__}")

    raw_lines = [line.strip(" \t\r") for line in text.split("\n")]
    numbered = [(n, line) for n, line in enumerate(raw_lines, start=1) if line]
    if not numbered:
        raise SdpError("empty SDP")
    if len(numbered) > _MAX_LINES:
        raise SdpError(f"SDP has too many lines ({len(numbered)})")

    sdp = SessionDescription(times=[])
    seen_origin = False
    seen_name = False
    current: MediaDescription | None = None
    for index, (lineno, line) in enumerate(numbered):
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"line {lineno}: expected '<type>=<value>', got {line[:40]!r}")
        kind, value = line[0], line[2:]
        if index == 0:
            if kind != "v":
                raise SdpError("SDP must start with v= (RFC 8866 5.1)")
            if value.strip() != "0":
                raise SdpError(f"unsupported SDP version v={value!r}")
            continue
        if kind == "v":
            raise SdpError(f"line {lineno}: repeated v= line")
        if kind == "m":
            if not seen_origin:
                raise SdpError("SDP has no o= line before the first m= line")
            current = _parse_media_line(value, lineno)
            sdp.media.append(current)
            continue
        if current is not None:
            if kind == "i":
                current.information = value
            elif kind == "c":
                if current.connection is None:
                    current.connection = _parse_connection(value, lineno)
                else:  # several c= lines are a multicast feature; keep the first for unicast use
                    current.other_lines.append(line)
            elif kind == "b":
                current.bandwidths.append(value)
            elif kind == "k":
                current.key = value
            elif kind == "a":
                current.attributes.append(_parse_attribute(value))
            else:
                current.other_lines.append(line)
            continue
        if kind == "o":
            if seen_origin:
                raise SdpError(f"line {lineno}: repeated o= line")
            sdp.origin = _parse_origin(value, lineno)
            seen_origin = True
        elif kind == "s":
            sdp.session_name = value
            seen_name = True
        elif kind == "i":
            sdp.information = value
        elif kind == "u":
            sdp.uri = value
        elif kind == "e":
            sdp.emails.append(value)
        elif kind == "p":
            sdp.phones.append(value)
        elif kind == "c":
            if sdp.connection is None:
                sdp.connection = _parse_connection(value, lineno)
            else:
                sdp.other_lines.append(line)
        elif kind == "b":
            sdp.bandwidths.append(value)
        elif kind == "t":
            sdp.times.append(value)
        elif kind == "r":
            sdp.repeats.append(value)
        elif kind == "z":
            sdp.zone = value
        elif kind == "k":
            sdp.key = value
        elif kind == "a":
            sdp.attributes.append(_parse_attribute(value))
        else:
            sdp.other_lines.append(line)
    if not seen_origin:
        raise SdpError("SDP has no o= line")
    if not seen_name:
        sdp.session_name = "-"  # some peers omit s=; RFC 8866 5.3 suggests "-" for none
    if not sdp.times:
        sdp.times = ["0 0"]
    return sdp


# --- offer/answer --------------------------------------------------------------------------

SUPPORTED_CODECS: dict[str, int] = {"PCMU": 0, "PCMA": 8}  # name -> static payload type
_CLOCK_RATE = 8000
_USABLE_PROTOS = ("RTP/AVP", "RTP/AVPF")  # AVPF is AVP plus feedback we need not send


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
        mapped = media.rtpmaps().get(int(fmt)) if _is_pt(fmt) else None
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


def _stream_problem(media: MediaDescription) -> str | None:
    if media.media.lower() != "audio":
        return f"{media.media} stream not supported"
    if media.port == 0:
        return "stream disabled (port 0)"
    if media.proto.upper() not in _USABLE_PROTOS:
        # RTP/SAVP, UDP/TLS/RTP/SAVPF: we have no SRTP, so the stream is declined (RFC 3264 6).
        return f"transport {media.proto} not supported"
    return None


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
) -> AnswerResult:
    """Answer an offer (RFC 3264 6): one G.711 codec plus telephone-event on the first usable
    audio stream, every other m= line declined with port 0, same count and order.

    `state` keeps our o= line across the dialog (pass the same one for re-INVITEs); `current`
    is the stream negotiated so far, whose codec is kept when still offered (Asterisk expects a
    call to stay on one codec); `direction` is what we want (e.g. "sendonly" for our own hold).
    Raises NoCommonCodec (-> 488) naming why nothing was usable, SdpError for a bad local setup.
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
    info: MediaInfo | None = None
    for index, offered in enumerate(offer.media):
        if chosen is not None:
            media_lines.append(_rejected(offered))
            continue
        problem = _stream_problem(offered)
        candidates: list[tuple[str, int]] = []
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
        our_direction = _intersect_direction(mirror_direction(offered_direction), direction)
        if hold_address:
            # Nowhere to send to: RFC 2543 style hold, the peer may still send to us.
            our_direction = _intersect_direction(our_direction, "recvonly")
        on_hold = hold_address or offered_direction in ("sendonly", "inactive")

        fmts = [str(payload_type)]
        attributes = [Attribute("rtpmap", f"{payload_type} {codec}/{_CLOCK_RATE}")]
        if te is not None:
            fmts.append(str(te[0]))
            attributes.append(Attribute("rtpmap", f"{te[0]} telephone-event/{_CLOCK_RATE}"))
            attributes.append(Attribute("fmtp", f"{te[0]} {te[1]}"))
        attributes.append(Attribute("ptime", str(prefs.ptime)))
        attributes.append(Attribute(our_direction))
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
        )
        chosen = index

    if chosen is None or info is None:
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
) -> SessionDescription:
    """Our offer: every configured G.711 codec in preference order, telephone-event, ptime.

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
    offer = SessionDescription(
        session_name=session_name,
        connection=Connection.for_host(local_ip),
        media=[
            MediaDescription(
                media="audio",
                port=local_rtp_port,
                proto="RTP/AVP",
                fmts=fmts,
                attributes=attributes,
            )
        ],
    )
    return state.stamp(offer, local_ip)


def process_answer(offer: SessionDescription, answer: SessionDescription) -> MediaInfo:
    """Check an answer against our offer and extract the stream to use (RFC 3264 5, 6).

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
        if _stream_problem(ours) is not None:
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
        codec, payload_type = candidates[0]
        te = _telephone_event(theirs) if _telephone_event(ours) is not None else None
        answered_direction = answer.media_direction(theirs)
        our_direction = _intersect_direction(
            mirror_direction(answered_direction), offer.media_direction(ours)
        )
        if connection.is_hold_address:
            our_direction = _intersect_direction(our_direction, "recvonly")
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
        )
    raise NoCommonCodec("; ".join(problems) or "offer had no audio stream we could use")
