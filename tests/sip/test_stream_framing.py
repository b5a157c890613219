"""The incremental StreamFramer against the rescanning one it replaced (issue 9).

`_RescanFramer` is the framer as it was before: it searched the whole buffer for the blank line
on every read. The new one must cut every stream the same way, whatever the read boundaries,
and refuse oversize header blocks and bodies as soon as it can tell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.framing import (
    MAX_MESSAGE_SIZE,
    FramingError,
    StreamFramer,
    _stream_content_length,
    find_header_end,
)

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.sip"))


class _RescanFramer:
    """The pre-issue-9 framer, kept verbatim as the reference."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE):
        self.max_size = max_size
        self._buffer = bytearray()
        self.keepalives_received = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        buf = self._buffer
        out: list[bytes] = []
        while buf:
            skip = 0
            n = len(buf)
            while skip < n and buf[skip] in (13, 10):
                skip += 1
            if skip:
                if buf[:skip].count(b"\n") >= 2 or skip >= 4:
                    self.keepalives_received += 1
                del buf[:skip]
                continue
            head_end, body_start = find_header_end(bytes(buf[: self.max_size + 4]), 0)
            if head_end < 0:
                if len(buf) > self.max_size:
                    raise FramingError("header block exceeds maximum message size")
                break
            length = _stream_content_length(bytes(buf[:head_end]))
            total = body_start + length
            if total > self.max_size:
                raise FramingError(f"message of {total} bytes exceeds maximum {self.max_size}")
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out


def _run(framer: StreamFramer | _RescanFramer, chunks: list[bytes]) -> tuple[list[bytes], str]:
    out: list[bytes] = []
    for chunk in chunks:
        try:
            out += framer.feed(chunk)
        except FramingError:
            return out, "FramingError"
    return out, f"buffered={len(framer._buffer)}"


def _with_length(raw: bytes) -> bytes:
    """Corpus files are datagrams; give the ones without Content-Length one, so the stream
    framer has something to frame (the body length is what follows the blank line)."""
    head_end, body_start = find_header_end(raw, 0)
    if head_end < 0 or b"content-length" in raw[:head_end].lower():
        return raw
    body = raw[body_start:]
    sep = raw[head_end:body_start]
    eol = b"\r\n" if sep.startswith(b"\r\n") else b"\n"
    return raw[:head_end] + eol + b"Content-Length: " + str(len(body)).encode() + sep + body


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_same_cut_as_rescanning_framer_at_every_split(path: Path) -> None:
    raw = path.read_bytes()
    for sample in (raw, _with_length(raw)):
        stream = b"\r\n\r\n" + sample + sample
        expected = _run(_RescanFramer(), [stream])
        assert _run(StreamFramer(), [stream]) == expected
        # Every boundary; a 64 KB file would make that minutes of the O(n^2) reference, so
        # large streams are cut every 251 bytes instead.
        for cut in range(1, len(stream), 1 if len(stream) <= 8192 else 251):
            chunks = [stream[:cut], stream[cut:]]
            assert _run(StreamFramer(), chunks) == _run(_RescanFramer(), chunks), cut


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_same_cut_byte_by_byte(path: Path) -> None:
    stream = _with_length(path.read_bytes()) * 2
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert _run(StreamFramer(), chunks) == _run(_RescanFramer(), chunks)


def test_concatenated_corpus_stream_every_three_bytes() -> None:
    stream = b"".join(_with_length(p.read_bytes()) for p in CORPUS if p.stem.startswith("ok_"))
    chunks = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    new_out, new_end = _run(StreamFramer(), chunks)
    assert (new_out, new_end) == _run(_RescanFramer(), chunks)
    assert len(new_out) >= 5


def test_crlfcrlf_split_across_reads_is_found() -> None:
    msg = b"OPTIONS sip:a@h SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    for cut in range(len(msg) - 4, len(msg)):
        framer = StreamFramer()
        assert framer.feed(msg[:cut]) == []
        assert framer.in_message
        assert framer.feed(msg[cut:]) == [msg]
        assert not framer.in_message


def test_header_cap_refuses_before_the_blank_line() -> None:
    framer = StreamFramer(max_header=1024)
    framer.feed(b"OPTIONS sip:a@h SIP/2.0\r\n")
    with pytest.raises(FramingError, match="header block exceeds maximum of 1024"):
        for _ in range(100):
            framer.feed(b"X-Pad: " + b"a" * 50 + b"\r\n")
    # The framer gave up after about 1 KB, not after everything that was offered.
    assert framer.buffered < 1200


def test_body_cap_refuses_on_the_content_length_alone() -> None:
    framer = StreamFramer(max_body=4096)
    head = b"INVITE sip:a@h SIP/2.0\r\nContent-Length: 60000\r\n\r\n"
    with pytest.raises(FramingError, match="Content-Length 60000 exceeds maximum body of 4096"):
        framer.feed(head + b"v=0\r\n")


def test_huge_content_length_over_message_size() -> None:
    with pytest.raises(FramingError, match="exceeds maximum"):
        StreamFramer().feed(b"INVITE sip:a@h SIP/2.0\r\nContent-Length: 999999999\r\n\r\n")


def test_keepalives_between_messages_are_not_a_message() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []
    assert not framer.in_message
    assert framer.keepalives_received == 1
