"""SIP header fields: names, compact forms, list values, Via, CSeq (RFC 3261 7.3, 8.1.1, 18, 20).

`Headers` keeps fields in order under their canonical names (compact forms and any case map to
one spelling) and splits list headers (RFC 3261 7.3.1) on commas outside quotes and <...>. `Via`
and `parse_via` read a Via value, `response_destination` says where a response goes (RFC 3261
18.2.2, RFC 3581), `parse_cseq` and `decimal_value` read the numeric fields strictly. The
`generate_*` helpers make the random identifiers (branch, tag, Call-ID) that go into them.
Sans-I/O and independent of Request/Response (sip.message), which build on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sip.uri import Params, UriError, _split_unquoted, format_host, parse_host_port, parse_params

__all__ = [
    "BRANCH_MAGIC",
    "CANONICAL_HEADER_NAMES",
    "MAX_CSEQ",
    "MULTI_VALUE_HEADERS",
    "TOKEN_CHARS",
    "HeaderError",
    "Headers",
    "Via",
    "decimal_value",
    "generate_branch",
    "generate_call_id",
    "generate_tag",
    "parse_cseq",
    "parse_via",
    "response_destination",
    "split_header_list",
    "strip_brackets",
]

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5: the sequence number MUST be less than 2**31

# RFC 3261 7.3.3 and the compact forms registered since (RFC 3265, 3515, 3892, 4028, 3841).
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "f": "From",
    "t": "To",
    "v": "Via",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "b": "Referred-By",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
}

_KNOWN = (
    "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events "
    "Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
    "Content-Encoding Content-Language Content-Length Content-Type CSeq Date Error-Info Event "
    "Expires From In-Reply-To Max-Forwards Min-Expires Min-SE MIME-Version Organization "
    "P-Asserted-Identity P-Preferred-Identity Path Priority Privacy Proxy-Authenticate "
    "Proxy-Authorization Proxy-Require RAck Reason Record-Route Refer-To Referred-By "
    "Reject-Contact Reply-To Request-Disposition Require Retry-After Route RSeq Server "
    "Service-Route Session-Expires Subject Subscription-State Supported Timestamp To "
    "Unsupported User-Agent Via Warning WWW-Authenticate Replaces Diversion Remote-Party-ID"
).split()

# lower-case spelling (full or compact) -> (lower-case canonical name, canonical name)
CANONICAL_HEADER_NAMES: dict[str, tuple[str, str]] = {n.lower(): (n.lower(), n) for n in _KNOWN}
CANONICAL_HEADER_NAMES.update({c: (n.lower(), n) for c, n in _COMPACT.items()})

# Headers whose value is a comma-separated list (RFC 3261 7.3.1); get_all() splits them.
MULTI_VALUE_HEADERS = frozenset(
    h.lower()
    for h in (
        "Via Route Record-Route Contact Allow Supported Require Proxy-Require Unsupported "
        "Accept Accept-Encoding Accept-Language Allow-Events Content-Encoding In-Reply-To "
        "Warning Path Service-Route Content-Language P-Asserted-Identity Reason Error-Info "
        "Alert-Info Call-Info"
    ).split()
)

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


class HeaderError(ValueError):
    """A header value (Via, CSeq...) is malformed."""


def generate_branch() -> str:
    """A fresh RFC 3261 branch: magic cookie + 96 random bits."""
    return BRANCH_MAGIC + secrets.token_hex(12)


def generate_tag() -> str:
    """A From/To tag with 64 random bits (RFC 3261 19.3 asks for at least 32)."""
    return secrets.token_hex(8)


def generate_call_id(host: str = "") -> str:
    """A globally unique Call-ID (RFC 3261 8.1.1.4); `host` is only decoration."""
    token = secrets.token_hex(16)
    return f"{token}@{host}" if host else token


# --------------------------------------------------------------------------------------------
# Headers


def _checked(value: object) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        # A CR/LF from application data would inject header lines into the message.
        raise ValueError(f"header value contains CR/LF: {text[:40]!r}")
    return text


def _canonical(name: str) -> tuple[str, str]:
    lower = name.lower()
    hit = CANONICAL_HEADER_NAMES.get(lower)
    return hit if hit is not None else (lower, name)


class Headers:
    """Ordered header fields; names case-insensitive, compact forms stored under full names."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | None = None):
        # (lower-case canonical name, canonical name as written, value)
        self._items: list[tuple[str, str, str]] = []
        if items is not None:
            for name, value in items:
                self.add(name, value)

    def add(self, name: str, value: str) -> None:
        lower, canon = _canonical(name)
        self._items.append((lower, canon, _checked(value)))

    def prepend(self, name: str, value: str) -> None:
        """Insert before every other header (used to push a Via or Route on top)."""
        lower, canon = _canonical(name)
        self._items.insert(0, (lower, canon, _checked(value)))

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name with one field, kept at the first one's position."""
        lower, canon = _canonical(name)
        value = _checked(value)
        out: list[tuple[str, str, str]] = []
        done = False
        for item in self._items:
            if item[0] == lower:
                if not done:
                    out.append((lower, canon, str(value)))
                    done = True
            else:
                out.append(item)
        if not done:
            out.append((lower, canon, str(value)))
        self._items = out

    def remove(self, name: str) -> int:
        """Remove every field of this name; return how many were removed."""
        lower = _canonical(name)[0]
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != lower]
        return before - len(self._items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value; for a list header (Via, Contact...) the first list element."""
        lower = _canonical(name)[0]
        for key, _, value in self._items:
            if key == lower:
                if lower in MULTI_VALUE_HEADERS and "," in value:
                    return split_header_list(value)[0]
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value in order; list headers are split on commas outside quotes and <...>."""
        lower = _canonical(name)[0]
        out: list[str] = []
        split = lower in MULTI_VALUE_HEADERS
        for key, _, value in self._items:
            if key == lower:
                if split and "," in value:
                    out.extend(split_header_list(value))
                else:
                    out.append(value)
        return out

    def replace_first_value(self, name: str, value: str) -> None:
        """Replace the first list element of the first field of `name` (e.g. the top Via)."""
        lower = _canonical(name)[0]
        value = _checked(value)
        for i, (key, canon, old) in enumerate(self._items):
            if key == lower:
                if lower in MULTI_VALUE_HEADERS and "," in old:
                    rest = split_header_list(old)[1:]
                    value = ", ".join([value, *rest])
                self._items[i] = (key, canon, value)
                return
        self.add(name, value)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        lower = _canonical(name)[0]
        return any(item[0] == lower for item in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(canon, value) for _, canon, value in self._items])

    def items(self) -> list[tuple[str, str]]:
        return [(canon, value) for _, canon, value in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def split_header_list(value: str) -> list[str]:
    return [part.strip() for part in _split_unquoted(value, ",") if part.strip()]


# --------------------------------------------------------------------------------------------
# Via


@dataclass(eq=True)
class Via:
    """One Via value: `SIP/2.0/UDP host:port;branch=...;rport;received=...` (RFC 3261 20.42)."""

    transport: str = "UDP"
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        return parse_via(text)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {format_host(self.host, self.port)}{self.params}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return int(value) if value and value.isdigit() and len(value) <= 3 else None

    @property
    def has_rport(self) -> bool:
        """RFC 3581: the client asked for symmetric response routing (`;rport`)."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server, None when absent or a bare flag."""
        value = self.params.get("rport")
        if not value or not value.isascii() or not value.isdigit() or len(value) > 5:
            return None
        port = int(value)
        return port if port <= 65535 else None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def copy(self) -> Via:
        return Via(self.transport, self.host, self.port, self.params.copy(), self.protocol)


def parse_via(text: str) -> Via:
    """Parse one Via value. RFC 4475 allows LWS around '/' and ':'; we accept it."""
    head, semi, param_text = text.partition(";")
    pieces = head.split("/", 2)
    if len(pieces) != 3:
        raise HeaderError(f"malformed Via sent-protocol in {text!r}")
    name, version = pieces[0].strip().upper(), pieces[1].strip()
    if name != "SIP" or version != "2.0":
        raise HeaderError(f"unsupported Via protocol {name}/{version}")
    words = pieces[2].split(None, 1)
    if len(words) != 2:
        raise HeaderError(f"missing sent-by in Via {text!r}")
    transport = words[0].upper()
    if not TOKEN_CHARS.issuperset(transport):
        raise HeaderError(f"invalid Via transport {transport!r}")
    sent_by = "".join(words[1].split())
    try:
        host, port = parse_host_port(sent_by, what="Via sent-by")
        params = parse_params(semi + param_text, what="Via parameter") if semi else Params()
    except UriError as exc:
        raise HeaderError(str(exc)) from None
    return Via(transport, host, port, params)


def strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def response_destination(via: Via, transport: str | None = None) -> tuple[str, int]:
    """Where to send a response for a request whose top Via is `via` (RFC 3261 18.2.2, RFC 3581).

    On a reliable transport the UA should first reuse the connection the request arrived on;
    this gives the address to use otherwise. The host comes back without IPv6 brackets.
    """
    proto = (transport or via.transport).upper()
    default_port = 5061 if proto in ("TLS", "WSS") else 5060
    maddr = via.params.get("maddr")
    if maddr:
        return strip_brackets(maddr), via.port or default_port
    received = via.params.get("received")
    host = received or via.host
    rport = via.rport
    # RFC 3581 4: with a filled-in rport the response goes to the source port of the request.
    port = rport if rport is not None else (via.port or default_port)
    return strip_brackets(host), port


def decimal_value(text: str, max_digits: int) -> int | None:
    """An RFC 3261 `1*DIGIT` field (CSeq, Max-Forwards, Content-Length, Expires...): ASCII
    digits only, leading zeros allowed (`0005` is 5, RFC 4475 3.1.1.x), at most `max_digits`
    significant digits (so a megabyte of digits is refused before int() sees it)."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > max_digits:
        return None
    return int(significant) if significant else 0


def parse_cseq(value: str) -> tuple[int, str]:
    """`"314159 INVITE"` -> (314159, "INVITE"). Raises HeaderError."""
    parts = value.split()
    if len(parts) != 2:
        raise HeaderError(f"malformed CSeq {value!r}")
    number, method = parts
    if not number.isascii() or not number.isdigit():
        raise HeaderError(f"non-numeric CSeq number {number!r}")
    sequence = decimal_value(number, 10)
    if sequence is None or sequence > MAX_CSEQ:
        raise HeaderError("CSeq number out of range")
    if not TOKEN_CHARS.issuperset(method):
        raise HeaderError(f"invalid CSeq method {method!r}")
    return sequence, method
