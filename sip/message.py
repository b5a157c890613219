"""SIP requests and responses: parsing and serialisation (RFC 3261 7, 8, 18, 20).

Sans-I/O: `parse_message(bytes)` gives a `Request` or `Response`, `msg.to_bytes()` gives bytes
back. Nothing here touches a socket. Header fields, Via and CSeq live in sip.headers, stream
framing in sip.framing; the names most code needs are importable from here too.

Parsing is liberal where RFC 3261 and RFC 4475 ask us to be (LF-only line ends, leading CRLF
keepalives, folded headers, compact names, any header-name case, odd whitespace around ':' and
'/') and strict where a wrong guess would corrupt a call (Content-Length, CSeq, mandatory
headers). The only exception `parse_message` raises is `SipParseError`; when enough of a request
was read to answer it (Via, From, To, Call-ID and CSeq present and the top Via usable),
`err.request` is set and the user agent replies `err.status err.reason` (RFC 3261 8.2.2, 21.4);
otherwise the datagram is dropped and counted.

Header values are text. Bytes that are not UTF-8 are decoded with `surrogateescape`, so they
never crash the parser and `to_bytes()` writes the very same bytes back.
"""

from __future__ import annotations

from collections.abc import Iterable

from sip.framing import MAX_MESSAGE_SIZE, FramingError, StreamFramer, find_header_end, is_keepalive
from sip.headers import (
    BRANCH_MAGIC,
    CANONICAL_HEADER_NAMES,
    MULTI_VALUE_HEADERS,
    TOKEN_CHARS,
    HeaderError,
    Headers,
    Via,
    decimal_value,
    generate_branch,
    generate_call_id,
    generate_tag,
    parse_cseq,
    parse_via,
    response_destination,
    split_header_list,
    strip_brackets,
)
from sip.uri import (
    SCHEMES,
    NameAddr,
    SipUri,
    UriError,
    is_valid_scheme,
    parse_name_addr,
    parse_uri,
)

# Re-exported: the core types and the helpers the user agent and transport import from here.
__all__ = [
    "BRANCH_MAGIC",
    "MAX_MESSAGE_SIZE",
    "MULTI_VALUE_HEADERS",
    "REASON_PHRASES",
    "FramingError",
    "HeaderError",
    "Headers",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Via",
    "apply_received_rport",
    "decimal_value",
    "generate_branch",
    "generate_call_id",
    "generate_tag",
    "is_keepalive",
    "parse_cseq",
    "parse_message",
    "parse_via",
    "response_destination",
]

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class SipParseError(Exception):
    """A message could not be parsed.

    `reason` names the problem (fit for a reason phrase); `request` is set when the request is
    answerable, in which case the UA replies `status` (400, 416 or 505) with `reason`.
    """

    def __init__(self, reason: str, request: Request | None = None, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.request = request
        self.status = status


def apply_received_rport(request: Request, source_host: str, source_port: int) -> bool:
    """Stamp `received`/`rport` on the top Via of an inbound request (RFC 3261 18.2.1, RFC 3581).

    `received` is added when sent-by differs from the packet's source address, or always when
    the client asked for `rport` (RFC 3581 4). Returns True when the Via was changed.
    """
    via = request.top_via
    if via is None:
        return False
    source_host = strip_brackets(source_host)
    if via.has_rport:
        via.params["rport"] = str(source_port)
        via.params["received"] = source_host
    elif strip_brackets(via.host) != source_host:
        via.params["received"] = source_host
    else:
        return False
    request.headers.replace_first_value("Via", str(via))
    return True


# --------------------------------------------------------------------------------------------
# Messages


def _same_fields(a: Headers, b: Headers) -> bool:
    """Header equality for messages: Content-Length is left out because to_bytes() always
    derives it from the body, so it carries no information of its own."""
    return [(k, v) for k, _, v in a._items if k != "content-length"] == [
        (k, v) for k, _, v in b._items if k != "content-length"
    ]


class _Message:
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        value = self.headers.get("CSeq")
        if value is None:
            raise HeaderError("no CSeq header")
        return parse_cseq(value)

    def _tag(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is None:
            return None
        gt = value.rfind(">")
        if gt >= 0 and '"' not in value[gt:]:
            # Fast path (the UA reads tags on every message): header params follow the '>'.
            for part in value[gt + 1 :].split(";"):
                key, _, tag = part.partition("=")
                if key.strip().lower() == "tag":
                    return tag.strip() or None
            return None
        try:
            return parse_name_addr(value).params.get("tag")
        except UriError:
            return None

    @property
    def from_tag(self) -> str | None:
        return self._tag("From")

    @property
    def to_tag(self) -> str | None:
        return self._tag("To")

    @property
    def from_addr(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to_addr(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def top_via(self) -> Via | None:
        value = self.headers.get("Via")
        if value is None:
            return None
        try:
            return parse_via(value)
        except HeaderError:
            return None

    @property
    def branch(self) -> str | None:
        via = self.top_via
        return via.branch if via is not None else None

    @property
    def content_type(self) -> str | None:
        """Media type without parameters, lower-cased (`application/sdp`), or None."""
        value = self.headers.get("Content-Type")
        if not value:
            return None
        return value.split(";", 1)[0].strip().lower()

    def _serialise(self, start_line: str) -> bytes:
        body = self.body
        lines = [start_line]
        wrote_length = False
        for lower, canon, value in self.headers._items:
            if lower == "content-length":
                # Content-Length is always derived from the body (one spelling, never stale).
                if wrote_length:
                    continue
                value = str(len(body))
                wrote_length = True
            lines.append(f"{canon}: {value}")
        if not wrote_length:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


class Request(_Message):
    """A SIP request. `uri` may be given as text; it is parsed (UriError if invalid)."""

    __slots__ = ("body", "headers", "method", "uri")

    def __init__(
        self,
        method: str,
        uri: str | SipUri,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ):
        self.method = method
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)

    def to_bytes(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} SIP/2.0")

    def copy(self) -> Request:
        """An independent copy (headers and URI may then be changed freely)."""
        return Request(self.method, self.uri.copy(), self.headers.copy(), self.body)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.method, self.uri, self.body) == (
            other.method,
            other.uri,
            other.body,
        ) and _same_fields(self.headers, other.headers)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call_id={self.call_id!r}>"

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Build a response per RFC 3261 8.2.6: Via (all, in order), From, Call-ID, CSeq copied,
        To copied with `to_tag` added when it has none; Record-Route copied for 1xx/2xx to
        dialog-creating requests (12.1.1); Timestamp echoed in 100 (8.2.6.1)."""
        out = Headers()
        src = self.headers
        for lower, canon, value in src._items:
            if lower == "via":
                out._items.append((lower, canon, value))
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = src.get(name)
            if value is None:
                continue
            if name == "To" and to_tag:
                value = _with_tag(value, to_tag)
            out.add(name, value)
        if 100 < status < 300 and self.method in ("INVITE", "SUBSCRIBE", "REFER"):
            for lower, canon, value in src._items:
                if lower == "record-route":
                    out._items.append((lower, canon, value))
        if status == 100 and "Timestamp" in src:
            out.add("Timestamp", src.get("Timestamp") or "")
        if headers is not None:
            for name, value in headers:
                out.add(name, value)
        return Response(status, reason, out, body)


def _with_tag(to_value: str, tag: str) -> str:
    """Add `;tag=` to a To value unless it already has one (8.2.6.2), keeping its spelling."""
    try:
        addr = parse_name_addr(to_value)
    except UriError:
        return f"{to_value};tag={tag}"
    if addr.params.get("tag"):
        return to_value
    if to_value.rstrip().endswith(">") or "<" in to_value:
        return f"{to_value};tag={tag}"
    # addr-spec form: re-serialise as name-addr so the tag cannot be mistaken for a URI param
    addr.params["tag"] = tag
    return str(addr)


class Response(_Message):
    """A SIP response; `reason` defaults to the RFC 3261 21 phrase for the status."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ):
        self.status = int(status)
        self.reason = reason if reason is not None else REASON_PHRASES.get(self.status, "")
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)

    def to_bytes(self) -> bytes:
        return self._serialise(f"SIP/2.0 {self.status} {self.reason}")

    def copy(self) -> Response:
        return Response(self.status, self.reason, self.headers.copy(), self.body)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.status, self.reason, self.body) == (
            other.status,
            other.reason,
            other.body,
        ) and _same_fields(self.headers, other.headers)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call_id={self.call_id!r}>"


# --------------------------------------------------------------------------------------------
# Parsing


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape")


def parse_message(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> Request | Response:
    """Parse one datagram (or one framed stream message). Raises only SipParseError."""
    try:
        return _parse(data, max_size)
    except SipParseError:
        raise
    except Exception as exc:  # pragma: no cover - a bug; still never crash the transport
        raise SipParseError(f"unparsable message ({type(exc).__name__})") from exc


def _parse(data: bytes, max_size: int) -> Request | Response:
    if not isinstance(data, bytes):
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        else:
            raise SipParseError("message is not bytes")
    size = len(data)
    if size > max_size:
        raise SipParseError(f"message too large ({size} > {max_size} bytes)", status=513)
    start = 0
    while start < size and data[start] in (13, 10):
        start += 1
    if start == size:
        raise SipParseError("empty message")
    head_end, body_start = find_header_end(data, start)
    if head_end < 0:
        # RFC 3261 requires the empty line; a datagram that simply ends is tolerated as
        # "headers only", which is how several embedded stacks send bodiless requests.
        head_end, body_start = size, size
    lines = _decode(data[start:head_end]).split("\n")
    raw_body = data[body_start:]

    errors: list[tuple[str, int]] = []  # first one wins; later checks still run

    # ---- start line
    first = lines[0]
    if first.endswith("\r"):
        first = first[:-1]
    if "\r" in first:
        first = first.replace("\r", " ")
    is_response = first[:4].upper() == "SIP/"
    method = ""
    uri: SipUri | None = None
    status = 0
    reason = ""
    if is_response:
        parts = first.split(" ", 2)
        if parts[0].upper() != "SIP/2.0":
            raise SipParseError(f"unsupported SIP version {parts[0][:20]!r}")
        code = parts[1] if len(parts) > 1 else ""
        if (
            len(code) != 3
            or not code.isascii()
            or not code.isdigit()
            or not 100 <= int(code) <= 699
        ):
            raise SipParseError(f"bad status code {code[:20]!r}")
        status = int(code)
        reason = parts[2].strip() if len(parts) > 2 else ""
    else:
        parts = first.split()
        if len(parts) > 3 and parts[-1].upper() == "SIP/2.0" and TOKEN_CHARS.issuperset(parts[0]):
            # Whitespace inside the Request-URI (RFC 4475 3.1.2.6): the method and version
            # are clear, so the request is still answerable with a 400.
            errors.append(("Request-URI contains whitespace", 400))
            parts = [parts[0], "sip:invalid", parts[-1]]
        if len(parts) != 3:
            raise SipParseError("malformed request line")
        method, uri_text, version = parts
        if not TOKEN_CHARS.issuperset(method):
            raise SipParseError("malformed request line: invalid method")
        if not version.upper().startswith("SIP/"):
            raise SipParseError("malformed request line: no SIP version")
        if version.upper() != "SIP/2.0":
            errors.append(("Version Not Supported", 505))
        try:
            uri = parse_uri(uri_text)
        except UriError as exc:
            scheme = uri_text.partition(":")[0].lower()
            if ":" in uri_text and is_valid_scheme(scheme) and scheme not in SCHEMES:
                # A well-formed absoluteURI of a scheme we do not serve (8.2.2.1, 25.1).
                errors.append((f"Unsupported URI Scheme {scheme[:20]!r}", 416))
            else:
                errors.append((f"Bad Request-URI: {exc}"[:120], 400))
            uri = SipUri("sip", None, None, "invalid", None)

    # ---- header fields
    headers = Headers()
    items = headers._items
    canon_map = CANONICAL_HEADER_NAMES
    for line in lines[1:]:
        if line and line[-1] == "\r":
            line = line[:-1]
        if not line:
            continue
        if "\r" in line:
            # A bare CR is no line end (7.3.1) and may not appear in a value; blank it so that
            # copying this header into our 400 cannot emit a broken line.
            errors.append(("bare CR in header line", 400))
            line = line.replace("\r", " ")
        if line[0] in " \t":
            # RFC 3261 7.3.1: a continuation line folds into the previous field as one SP.
            if not items:
                errors.append(("continuation line before first header", 400))
                continue
            k, c, v = items[-1]
            items[-1] = (k, c, f"{v} {line.strip()}" if v else line.strip())
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not TOKEN_CHARS.issuperset(name):
            errors.append((f"malformed header line {line[:40]!r}", 400))
            continue
        lower = name.lower()
        hit = canon_map.get(lower)
        if hit is None:
            items.append((lower, name, value.strip()))
        else:
            items.append((hit[0], hit[1], value.strip()))

    # ---- mandatory headers (RFC 3261 8.1.1)
    found: dict[str, str] = {}
    lengths: list[str] = []
    for lower, _, value in items:
        if lower == "content-length":
            lengths.append(value)
        elif lower in _MANDATORY:
            if lower not in found:
                found[lower] = value
            elif lower != "via" and found[lower] != value:
                # RFC 4475 3.1.2.19: two different values in a single-valued header.
                errors.append((f"Multiple {_MANDATORY[lower]} headers", 400))
    missing = [_MANDATORY[k] for k in _MANDATORY if k not in found]
    answerable = not is_response and not missing
    if missing:
        errors.append((f"Missing {missing[0]} header", 400))

    via_text = found.get("via")
    if via_text is not None:
        try:
            parse_via(split_header_list(via_text)[0] if "," in via_text else via_text)
        except (HeaderError, IndexError) as exc:
            answerable = False  # nowhere to send a 400
            errors.append((f"Bad Via header: {exc}"[:120], 400))

    cseq_text = found.get("cseq")
    if cseq_text is not None:
        try:
            _, cseq_method = parse_cseq(cseq_text)
        except HeaderError as exc:
            errors.append((str(exc), 400))
        else:
            if not is_response and cseq_method != method:
                errors.append(("CSeq method does not match request method", 400))
    call_id = found.get("call-id")
    if call_id is not None and (not call_id or " " in call_id):
        errors.append(("Bad Call-ID header", 400))
    max_forwards = headers.get("Max-Forwards")
    hops = decimal_value(max_forwards, 3) if max_forwards is not None else None
    if max_forwards is not None and (hops is None or hops > 255):
        # 8.2.2 / 20.22: 0-255; a proxy-style loop guard we cannot evaluate otherwise.
        errors.append(("Bad Max-Forwards header", 400))
    for name in ("from", "to"):
        value = found.get(name)
        if value is not None:
            try:
                parse_name_addr(value)
            except UriError as exc:
                errors.append((f"Bad {_MANDATORY[name]} header: {exc}"[:120], 400))

    # ---- body (RFC 3261 18.3, 20.14)
    body = raw_body
    if lengths:
        distinct = set(lengths)
        if len(distinct) > 1:
            errors.append(("Conflicting Content-Length headers", 400))
        else:
            text = lengths[0]
            declared = decimal_value(text, 9)
            if declared is None:
                errors.append((f"Bad Content-Length {text[:20]!r}", 400))
            else:
                length = declared
                if length > len(raw_body):
                    errors.append(("Content-Length larger than body", 400))
                else:
                    # UDP: bytes past Content-Length are discarded (18.3).
                    body = raw_body[:length]

    if is_response:
        if errors:
            raise SipParseError(errors[0][0])
        return Response(status, reason, headers, body)
    request = Request.__new__(Request)
    request.method = method
    request.uri = uri  # type: ignore[assignment]
    request.headers = headers
    request.body = body
    if errors:
        reason_text, code = errors[0]
        raise SipParseError(reason_text, request if answerable else None, code)
    return request


_MANDATORY = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}
