"""Cutting a TCP byte stream into SIP messages (RFC 3261 18.3) and recognising keepalives
(RFC 5626 3.5.1, 4.4.1). Sans-I/O: bytes in, whole messages out; sip.transport moves the bytes.
"""

from __future__ import annotations

from sip.headers import decimal_value

__all__ = ["MAX_MESSAGE_SIZE", "FramingError", "StreamFramer", "find_header_end", "is_keepalive"]

MAX_MESSAGE_SIZE = 65535  # largest UDP payload; also our cap on a TCP message


class FramingError(Exception):
    """A stream (TCP) cannot be framed any more; the transport must close the connection."""


_KEEPALIVE_BYTES = frozenset(b"\r\n\t \x00")


def is_keepalive(data: bytes) -> bool:
    """True for CRLF pings (RFC 5626 4.4.1) and other all-whitespace/NUL keepalive datagrams."""
    return _KEEPALIVE_BYTES.issuperset(data)


def find_header_end(data: bytes | bytearray, start: int) -> tuple[int, int]:
    """(end of header block, start of body); (-1, -1) when there is no blank line yet."""
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    # "\n\n" cannot occur inside a CRLF blank line, so whichever comes first is the real end
    # (LF-only senders, or a mixed "\r\n\n").
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 4
    return -1, -1


class StreamFramer:
    """Cut a TCP byte stream into whole SIP messages by Content-Length (RFC 3261 18.3).

    CRLF keepalives between messages (RFC 5626 3.5.1) are skipped and counted in
    `keepalives_received`; a double-CRLF ping deserves a single CRLF pong, which the transport
    sends when that counter moves; a lone CRLF (the pong to our own ping) counts in
    `pongs_received`. Any framing problem raises FramingError: the stream has lost
    sync and the only safe move is to close the connection.

    Incremental: the search for the blank line resumes where the previous one stopped (less a
    3-byte overlap for a CRLFCRLF split across reads), and once the header block is found its
    Content-Length is read once, so a peer trickling bytes costs O(bytes), not O(bytes^2).
    The header block and the body have their own caps (`max_header`, `max_body`, both at most
    `max_size`): a huge Content-Length is refused as soon as the header block ends, before any
    of the body is read.
    """

    def __init__(
        self,
        max_size: int = MAX_MESSAGE_SIZE,
        *,
        max_header: int | None = None,
        max_body: int | None = None,
    ):
        self.max_size = max_size
        self.max_header = min(max_header or max_size, max_size)
        self.max_body = min(max_body if max_body is not None else max_size, max_size)
        self._buffer = bytearray()
        self.keepalives_received = 0
        self.pongs_received = 0
        self._scanned = 0  # bytes of the current header block searched without a blank line
        self._total = -1  # length of the current message once its header block is known

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        buf = self._buffer
        out: list[bytes] = []
        while buf:
            if self._total < 0:
                if self._scanned == 0:
                    skip = 0
                    n = len(buf)
                    while skip < n and buf[skip] in (13, 10):
                        skip += 1
                    if skip:
                        if buf.count(b"\n", 0, skip) >= 2 or skip >= 4:
                            self.keepalives_received += 1
                        else:
                            self.pongs_received += 1  # a single CRLF: the answer to our ping
                        del buf[:skip]
                        continue
                head_end, body_start = find_header_end(buf, max(0, self._scanned - 3))
                if head_end < 0:
                    self._scanned = len(buf)
                    if len(buf) > self.max_header:
                        raise FramingError(
                            f"header block exceeds maximum of {self.max_header} bytes"
                        )
                    break
                if head_end > self.max_header:
                    raise FramingError(f"header block exceeds maximum of {self.max_header} bytes")
                length = _stream_content_length(bytes(buf[:head_end]))
                if length > self.max_body:
                    raise FramingError(
                        f"Content-Length {length} exceeds maximum body of {self.max_body} bytes"
                    )
                total = body_start + length
                if total > self.max_size:
                    raise FramingError(f"message of {total} bytes exceeds maximum {self.max_size}")
                self._total = total
            if len(buf) < self._total:
                break
            out.append(bytes(buf[: self._total]))
            del buf[: self._total]
            self._total = -1
            self._scanned = 0
        return out

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def in_message(self) -> bool:
        """True while part of a message (not only keepalive CRLFs) is buffered."""
        return self._total >= 0 or self._scanned > 0


def _stream_content_length(head: bytes) -> int:
    found: set[int] = set()
    for line in head.split(b"\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        lowered = name.strip().lower()
        if lowered in (b"content-length", b"l"):
            text = value.strip()
            declared = decimal_value(text.decode("ascii", "replace"), 9)
            if declared is None:
                raise FramingError(f"bad Content-Length {text[:20]!r} on stream")
            found.add(declared)
    if not found:
        raise FramingError("Content-Length is required on stream transports (RFC 3261 18.3)")
    if len(found) > 1:
        raise FramingError("conflicting Content-Length headers on stream")
    return found.pop()
