"""SDP wire structures (RFC 8866): the dataclasses, their serialisation, and `parse_sdp`.

Pure code, no I/O. The audio offer/answer built on these lives in sip/sdp_offer_answer.py; both
are importable from sip.sdp, the module the rest of the code uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


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


def intersect_direction(a: str, b: str) -> str:
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
        if not is_payload_type(fmt):
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


def is_payload_type(fmt: str) -> bool:
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
