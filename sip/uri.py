"""SIP URIs (RFC 3261 19.1, 25.1) and name-addr values (RFC 3261 20.10, 25.1).

`parse_uri("sip:alice@example.com:5060;transport=tcp?subject=hi")` gives a `SipUri`;
`parse_name_addr('"Bob" <sip:bob@h;lr>;tag=1')` gives a `NameAddr`. Both serialise with
`str()`, and `parse(str(x)) == x` holds for every value the parsers return.

Escaped user parts (`%40`) are decoded on parse and re-escaped on output, so two spellings of
the same user compare equal (RFC 3261 19.1.4). Host names keep the case they were written in
(the parser never normalises what a peer may echo back); IPv6 references keep their brackets
in `host` because that is how they are written in URIs, Via and SDP-less contexts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

__all__ = [
    "NameAddr",
    "Params",
    "SipUri",
    "UriError",
    "format_host",
    "is_valid_scheme",
    "parse_host_port",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
]

# Schemes we accept. tel: (RFC 3966) is tolerated because trunks put it in From/To/P-Asserted-Id.
SCHEMES = frozenset({"sip", "sips", "tel"})

# RFC 3261 25.1: unreserved / user-unreserved characters may appear unescaped in the user part;
# password-unreserved likewise for the password.
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"

# Characters allowed in a host name or IPv4 address (RFC 3261 25.1 hostname / IPv4address).
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
# Characters that cannot appear unquoted in a parameter name or value: separators of the
# grammar itself. Anything else a peer sends is kept as is (we are liberal in what we accept).
_PARAM_FORBIDDEN = frozenset(' \t\r\n;,<>"@')
_URI_FORBIDDEN = frozenset(' \t\r\n<>"')
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+-.")


def is_valid_scheme(scheme: str) -> bool:
    """RFC 3261 25.1 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (any case)."""
    lower = scheme.lower()
    return (
        bool(lower) and lower.isascii() and lower[0].isalpha() and _SCHEME_CHARS.issuperset(lower)
    )


class UriError(ValueError):
    """A URI or name-addr could not be parsed; the message names the problem."""


class Params:
    """Ordered `;name=value` parameters with case-insensitive names (RFC 3261 7.3.1, 19.1.4).

    A flag parameter (`;lr`, `;rport`) has the value None. Names keep their written case for
    output; lookups ignore case.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterator[tuple[str, str | None]] | list | dict | None = None):
        self._items: list[tuple[str, str | None]] = []
        if items is None:
            return
        pairs = items.items() if isinstance(items, dict) else items
        for name, value in pairs:
            self[name] = value

    def _index(self, name: str) -> int:
        lower = name.lower()
        for i, (key, _) in enumerate(self._items):
            if key.lower() == lower:
                return i
        return -1

    def get(self, name: str, default: str | None = None) -> str | None:
        i = self._index(name)
        return default if i < 0 else self._items[i][1]

    def __getitem__(self, name: str) -> str | None:
        i = self._index(name)
        if i < 0:
            raise KeyError(name)
        return self._items[i][1]

    def __setitem__(self, name: str, value: str | None) -> None:
        i = self._index(name)
        if i < 0:
            self._items.append((name, value))
        else:
            self._items[i] = (self._items[i][0], value)

    def __delitem__(self, name: str) -> None:
        i = self._index(name)
        if i < 0:
            raise KeyError(name)
        del self._items[i]

    def pop(self, name: str, default: str | None = None) -> str | None:
        i = self._index(name)
        if i < 0:
            return default
        return self._items.pop(i)[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._index(name) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def items(self) -> list[tuple[str, str | None]]:
        return list(self._items)

    def copy(self) -> Params:
        p = Params()
        p._items = list(self._items)
        return p

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            other = Params(other)
        if not isinstance(other, Params):
            return NotImplemented
        return [(k.lower(), v) for k, v in self._items] == [(k.lower(), v) for k, v in other._items]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Params({self._items!r})"

    def __str__(self) -> str:
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self._items)


def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split on `sep` outside double quotes (backslash escapes honoured) and outside <...>."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    in_quotes = False
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_params(text: str, *, what: str = "parameter") -> Params:
    """Parse `;a=b;c;d="x;y"` (leading `;` optional) into Params. Raises UriError."""
    params = Params()
    text = text.strip()
    if not text:
        return params
    if text.startswith(";"):
        text = text[1:]
    for raw in _split_unquoted(text, ";"):
        name, eq, value = raw.partition("=")
        name = name.strip()
        if not name:
            raise UriError(f"empty {what} name in {text!r}")
        if not _PARAM_FORBIDDEN.isdisjoint(name):
            raise UriError(f"invalid {what} name {name!r}")
        if eq:
            value = value.strip()
            if not value.startswith('"') and not _PARAM_FORBIDDEN.isdisjoint(value):
                raise UriError(f"invalid {what} value {value!r}")
            params._items.append((name, value))
        else:
            params._items.append((name, None))
    return params


def parse_host_port(text: str, *, what: str = "host") -> tuple[str, int | None]:
    """Parse `host`, `host:port`, `[v6]` or `[v6]:port`. IPv6 keeps its brackets."""
    if not text:
        raise UriError(f"empty {what}")
    port_text = ""
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            raise UriError(f"unterminated IPv6 reference in {what} {text!r}")
        host = text[: end + 1]
        inner = host[1:-1]
        if not inner or ":" not in inner or not _IPV6_CHARS.issuperset(inner):
            raise UriError(f"invalid IPv6 address in {what} {text!r}")
        try:
            # RFC 5954 corrected the RFC 3261 IPv6reference ABNF: a literal is a real RFC 4291
            # address (no third colon, at most one '::'), which is what a socket can reach.
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise UriError(f"invalid IPv6 address in {what} {text!r}") from None
        rest = text[end + 1 :]
        if rest:
            if rest[0] != ":":
                raise UriError(f"junk after IPv6 reference in {what} {text!r}")
            port_text = rest[1:]
            if not port_text:
                raise UriError(f"empty port in {what} {text!r}")
    else:
        host, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise UriError(f"empty port in {what} {text!r}")
        if not host:
            raise UriError(f"empty {what} in {text!r}")
        if not _HOST_CHARS.issuperset(host):
            raise UriError(f"invalid character in {what} {host!r}")
    port: int | None = None
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
            raise UriError(f"invalid port {port_text!r} in {what}")
        port = int(port_text)
        if port > 65535:
            raise UriError(f"port {port} out of range in {what}")
    return host, port


def format_host(host: str, port: int | None) -> str:
    """`host:port`, bracketing a bare IPv6 address."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def _unescape(text: str, what: str) -> str:
    if "%" not in text:
        return text
    # Validate escapes first: unquote() silently keeps a bad "%zz", hiding a broken URI.
    i = text.find("%")
    while i >= 0:
        pair = text[i + 1 : i + 3]
        if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            raise UriError(f"bad %-escape in {what} {text!r}")
        i = text.find("%", i + 3)
    return unquote(text, errors="surrogateescape")


@dataclass(eq=True)
class SipUri:
    """A sip:, sips: or tel: URI. For tel:, the number is kept in `user` and `host` is empty."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: Params = field(default_factory=Params)

    def __str__(self) -> str:
        if self.scheme not in SCHEMES:
            return f"{self.scheme}:{self.user or ''}"  # opaque URI, kept verbatim
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(quote(self.user, safe=_USER_SAFE, errors="surrogateescape"))
            if self.password is not None:
                out.append(":")
                out.append(quote(self.password, safe=_PASSWORD_SAFE, errors="surrogateescape"))
            if self.scheme != "tel":
                out.append("@")
        if self.scheme != "tel":
            out.append(format_host(self.host, self.port))
        if self.params:
            out.append(str(self.params))
        if self.headers:
            out.append("?")
            out.append(
                "&".join(f"{k}={v}" if v is not None else k for k, v in self.headers.items())
            )
        return "".join(out)

    @property
    def host_no_brackets(self) -> str:
        """Host as a socket address string (IPv6 without brackets)."""
        h = self.host
        return h[1:-1] if h.startswith("[") and h.endswith("]") else h

    @property
    def transport(self) -> str | None:
        """The `transport=` parameter, lower-cased, if present."""
        t = self.params.get("transport")
        return t.lower() if t else None

    def copy(self) -> SipUri:
        return SipUri(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            self.params.copy(),
            self.headers.copy(),
        )


def parse_uri(text: str, *, any_scheme: bool = False) -> SipUri:
    """Parse a sip:/sips:/tel: URI. Raises UriError naming the problem.

    With `any_scheme`, other schemes (`urn:`, `http:`...) are accepted as opaque URIs: the
    text after the colon is kept verbatim in `user` and `host` is empty. name-addr parsing uses
    this because RFC 4475 3.1.1.8 expects unknown schemes in From/To to be tolerated; only the
    Request-URI scheme decides whether we can serve a request (416).
    """
    if not isinstance(text, str):
        raise UriError("URI must be a string")
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon:
        raise UriError(f"missing scheme in URI {text!r}")
    scheme = scheme.lower()
    if not rest:
        raise UriError(f"empty URI after scheme in {text!r}")
    if not _URI_FORBIDDEN.isdisjoint(rest):
        raise UriError(f"invalid character in URI {text!r}")
    if scheme not in SCHEMES:
        if not any_scheme:
            raise UriError(f"unsupported URI scheme {scheme!r}")
        if not is_valid_scheme(scheme):
            raise UriError(f"invalid URI scheme {scheme!r}")
        return SipUri(scheme, rest, None, "")

    if scheme == "tel":
        number, semi, param_text = rest.partition(";")
        if not number:
            raise UriError(f"empty telephone number in {text!r}")
        return SipUri(
            "tel",
            _unescape(number, "telephone number"),
            None,
            "",
            None,
            parse_params(semi + param_text, what="URI parameter"),
        )

    user: str | None = None
    password: str | None = None
    # '@' may not appear unescaped in host, params or headers, so the last one ends the userinfo
    # (using the last one also tolerates peers that forget to escape '@' in the user part).
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        u, pcolon, pw = userinfo.partition(":")
        if not u:
            raise UriError(f"empty user part in URI {text!r}")
        user = _unescape(u, "user part")
        if pcolon:
            password = _unescape(pw, "password")
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    try:
        host, port = parse_host_port(hostport, what="URI host")
    except UriError as exc:
        raise UriError(f"{exc} (URI {text!r})") from None
    params = parse_params(semi + param_text, what="URI parameter") if semi else Params()
    headers = Params()
    if qmark:
        for item in header_text.split("&"):
            name, eq, value = item.partition("=")
            if not name:
                raise UriError(f"empty header name in URI {text!r}")
            headers._items.append((name, value if eq else None))
    return SipUri(scheme, user, password, host, port, params, headers)


def _quote_display(name: str) -> str:
    # CR/LF cannot be escaped in a quoted-string (25.1 quoted-pair excludes them); dropping them
    # keeps an application-supplied display name from injecting header lines.
    if "\r" in name or "\n" in name:
        name = name.replace("\r", " ").replace("\n", " ")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(eq=True)
class NameAddr:
    """`"Display" <uri>;params` as in From, To, Contact, Route, Record-Route, Refer-To."""

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default_factory=Params)

    def __str__(self) -> str:
        # Always the <...> form: RFC 3261 20.10 requires it when the URI has ';', ',' or '?',
        # and it is always legal, so one spelling serves every case.
        lead = f"{_quote_display(self.display_name)} " if self.display_name is not None else ""
        return f"{lead}<{self.uri}>{self.params}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def copy(self) -> NameAddr:
        return NameAddr(self.uri.copy(), self.display_name, self.params.copy())


def _parse_quoted(text: str, start: int) -> tuple[str, int]:
    """Parse a quoted-string starting at text[start] == '"'; return (value, index after it)."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise UriError(f"unterminated quoted display name in {text!r}")


def parse_name_addr(text: str) -> NameAddr:
    """Parse name-addr or addr-spec (RFC 3261 20.10); params after the URI belong to the header.

    In the addr-spec form (`sip:b@h;tag=1`) everything after the first ';' following the host is
    a header parameter, as RFC 3261 20.10 specifies.
    """
    if not isinstance(text, str):
        raise UriError("name-addr must be a string")
    text = text.strip()
    if not text:
        raise UriError("empty name-addr")
    display: str | None = None
    if text[0] == '"':
        display, i = _parse_quoted(text, 0)
        rest = text[i:].lstrip()
        if not rest.startswith("<"):
            raise UriError(f"expected '<' after display name in {text!r}")
        lt = len(text) - len(rest)
    else:
        lt = text.find("<")
        if lt > 0:
            name = " ".join(text[:lt].split())
            display = name or None
    if lt >= 0:
        gt = text.find(">", lt + 1)
        if gt < 0:
            raise UriError(f"missing '>' in {text!r}")
        uri = parse_uri(text[lt + 1 : gt], any_scheme=True)
        param_text = text[gt + 1 :]
        if param_text.strip() and not param_text.lstrip().startswith(";"):
            raise UriError(f"junk after '>' in {text!r}")
        return NameAddr(uri, display, parse_params(param_text, what="header parameter"))
    # addr-spec: the URI cannot carry params here; split at the first ';' after the host part.
    at = text.find("@")
    semi = text.find(";", at + 1 if at >= 0 else 0)
    if semi < 0:
        return NameAddr(parse_uri(text, any_scheme=True))
    return NameAddr(
        parse_uri(text[:semi], any_scheme=True),
        None,
        parse_params(text[semi:], what="header parameter"),
    )
