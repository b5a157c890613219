"""The SDP in a SIP message body: plain `application/sdp`, or one part of a multipart body.

SIP-I and SIP-T trunks (ITU-T Q.1912.5, RFC 3204) send INVITEs whose body is
`multipart/mixed` with an `application/sdp` part and an `application/isup` part; RFC 5621
says how a UA reads such a body: it uses the parts it understands and may ignore the others,
unless a part it does not understand says `Content-Disposition: ...; handling=required`
(RFC 3204 4.3, RFC 3261 20.11), which must make it refuse the request with 415.

Sans-I/O and bounded: a body is at most one SIP message (65535 bytes), and at most
`MAX_PARTS` parts are looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

from sip.uri import UriError, parse_params

SDP = "application/sdp"
MULTIPART = ("multipart/mixed", "multipart/related", "multipart/alternative")
MAX_PARTS = 16


@dataclass(frozen=True, slots=True)
class Body:
    """What a body holds for the offer/answer: its SDP (None: none), and the media type of a
    part we must understand but do not (None: nothing required is unknown)."""

    sdp: bytes | None
    required_unknown: str | None = None
    multipart: bool = False


def _params(value: str) -> tuple[str, dict[str, str]]:
    """`type/subtype; a=b; c="d;e"` -> ("type/subtype", {"a": "b", "c": "d;e"}): the header
    parameter grammar of sip/uri.py (quoted values may hold `;`), names lower-cased. A value
    that does not parse has no parameters (a body is never a reason to raise)."""
    media, sep, rest = value.partition(";")
    try:
        params = parse_params(rest) if sep else None
    except UriError:
        params = None
    found = {
        name.lower(): (v[1:-1] if v.startswith('"') and v.endswith('"') and len(v) > 1 else v)
        for name, v in (params.items() if params is not None else [])
        if v is not None
    }
    return "".join(media.split()).lower(), found


def _part_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]] | None:
    """RFC 2046 5.1.1: the parts between `--boundary` lines; None when there are none."""
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    chunks = body.split(delimiter)
    if len(chunks) < 3:  # preamble, at least one part, and the close
        return None
    parts = []
    for chunk in chunks[1 : 1 + MAX_PARTS]:
        if chunk.startswith(b"--"):  # the close delimiter
            break
        # The line break after a delimiter and the one before the next belong to the delimiters.
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.removeprefix(b"\n")
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk.removesuffix(b"\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:  # a part without headers is text/plain (RFC 2046 5.1.1)
            head, content = b"", chunk
        parts.append((_part_headers(head), content))
    return parts


def read_body(content_type: str | None, body: bytes) -> Body:
    """The SDP of a message whose `Content-Type` header is `content_type`."""
    if not body or not content_type:
        return Body(None)
    media, params = _params(content_type)
    if media == SDP:
        return Body(body)
    if media not in MULTIPART or not params.get("boundary"):
        return Body(None)
    parts = _parts(body, params["boundary"])
    if parts is None:
        return Body(None, multipart=True)
    sdp: bytes | None = None
    required_unknown: str | None = None
    for headers, content in parts:
        part_type, _ = _params(headers.get("content-type", "text/plain"))
        if part_type == SDP and sdp is None:
            sdp = content
            continue
        if "content-disposition" not in headers:
            continue  # no disposition: ignorable, as ISUP parts without one are in practice
        # RFC 3261 20.11: a disposition without `handling` means handling=required.
        _, disposition = _params(headers["content-disposition"])
        if disposition.get("handling", "required").lower() == "required":
            required_unknown = required_unknown or part_type
    return Body(sdp, required_unknown, multipart=True)
