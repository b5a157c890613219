"""The WebSocket read fast path (gateway/wsock.py `_CallbackConnection.data_received`,
`read_text_messages`; gateway/_wsframe.c; issue 14).

Two things are held here:
- the compiled `read_text_messages` and its pure twin give the same payloads and offset for
  any bytes, and leak nothing;
- a connection reading with the fast path and one reading with websockets' parser alone
  deliver the same messages in the same order and end in the same protocol state (pongs and
  closes written, close codes, failures) for any stream of frames of every form (text, binary,
  fragmented with control frames between the fragments, ping, pong, close, non-minimal
  lengths, and hostile ones: masked by the server, RSV bits, unknown opcodes, oversized,
  control frames too long, stray continuations) cut into chunks at any points, the
  handshake response in the first chunk.

Where the extension is not built the compiled cases skip locally and fail under CI=true
(tests/test_wsframe_parity.py does the same).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import sys
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
import websockets.frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from gateway import wsock
from tests.test_wsframe_parity import _wsframe
from tests.test_wsframe_parity import compiled as compiled_wsframe

MAX_SIZE = 300  # the connections' max_size in these tests


def compiled() -> Any:
    return compiled_wsframe("read_text_messages")


# -- raw server frames --------------------------------------------------------------------------


def raw_frame(
    first: int, payload: bytes, *, mask: bytes | None = None, length_form: str = "min"
) -> bytes:
    """A frame as a server (or a hostile one) writes it: `first` is FIN|RSV|opcode."""
    n = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if length_form == "64" or (length_form == "min" and n > 0xFFFF):
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
    elif length_form == "16" or (length_form == "min" and n > 125):
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, mask_bit | n])
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
FIN = 0x80

payloads = st.binary(max_size=160)
text_payloads = st.text(max_size=60).map(str.encode)


@st.composite
def frames(draw: Any) -> bytes:
    """One frame (or a fragmented message) of any form, valid or hostile."""
    kind = draw(
        st.sampled_from(
            (
                "text", "text", "text", "text", "binary", "nonminimal", "fragmented",
                "ping", "pong", "close", "masked", "rsv", "opcode", "oversized",
                "long_control", "stray_cont", "unfinished_control", "bad_close",
                "unfinished_data",
            )
        )
    )  # fmt: skip
    if kind == "text":
        return raw_frame(FIN | TEXT, draw(text_payloads))
    if kind == "binary":
        return raw_frame(FIN | BINARY, draw(payloads))
    if kind == "nonminimal":
        return raw_frame(
            FIN | TEXT, draw(text_payloads), length_form=draw(st.sampled_from(("16", "64")))
        )
    if kind == "fragmented":
        parts = draw(st.lists(text_payloads, min_size=2, max_size=4))
        out = raw_frame(TEXT, parts[0])
        for i, part in enumerate(parts[1:], 1):
            if draw(st.booleans()):
                out += raw_frame(FIN | PING, draw(st.binary(max_size=8)))
            out += raw_frame((FIN if i == len(parts) - 1 else 0) | CONT, part)
        return out
    if kind == "unfinished_data":
        # A data fragment without FIN, then a whole text frame where a continuation is due: a
        # protocol error websockets must see (the fast path must not take the text frame).
        opcode = draw(st.sampled_from((TEXT, BINARY)))
        return raw_frame(opcode, draw(text_payloads)) + raw_frame(FIN | TEXT, draw(text_payloads))
    if kind == "ping":
        return raw_frame(FIN | PING, draw(st.binary(max_size=125)))
    if kind == "pong":
        return raw_frame(FIN | PONG, draw(st.binary(max_size=125)))
    if kind == "close":
        return raw_frame(FIN | CLOSE, struct.pack("!H", 1000) + b"bye")
    if kind == "bad_close":
        return raw_frame(
            FIN | CLOSE, struct.pack("!H", draw(st.sampled_from((0, 999, 1004, 5000))))
        )
    if kind == "masked":
        return raw_frame(
            FIN | TEXT, draw(text_payloads), mask=draw(st.binary(min_size=4, max_size=4))
        )
    if kind == "rsv":
        return raw_frame(
            FIN | TEXT | draw(st.sampled_from((0x40, 0x20, 0x10))), draw(text_payloads)
        )
    if kind == "opcode":
        return raw_frame(FIN | draw(st.sampled_from((3, 4, 5, 6, 7, 0xB, 0xC, 0xF))), b"x")
    if kind == "oversized":
        return raw_frame(FIN | TEXT, b"o" * (MAX_SIZE + draw(st.integers(1, 40))))
    if kind == "long_control":
        return raw_frame(FIN | PING, b"p" * 126)
    if kind == "stray_cont":
        return raw_frame(FIN | CONT, draw(text_payloads))
    return raw_frame(PING, b"")  # unfinished_control: a control frame without FIN


# -- two connections on the same bytes ----------------------------------------------------------


@dataclass
class Transport:
    """What websockets' connection writes and asks of its transport."""

    written: list[bytes] = field(default_factory=list)
    closing: bool = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def write_eof(self) -> None:
        self.written.append(b"<eof>")

    def can_write_eof(self) -> bool:
        return True

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 32768)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass
class Reader:
    conn: Any
    transport: Transport
    messages: list[bytes]
    fed_to_websockets: list[bytes]


def connect(fast: bool) -> tuple[Reader, bytes]:
    """A `_CallbackConnection` whose handshake request was answered by websockets' server
    side: the reader, and the handshake response bytes (not fed yet). Needs a running loop."""
    messages: list[bytes] = []
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), max_size=MAX_SIZE)
    conn = wsock._CallbackConnection(
        protocol,
        on_message=messages.append,
        on_closed=lambda exc: None,
        ping_interval=None,
        ping_timeout=None,
    )
    conn._read_fast = fast
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    request = protocol.connect()
    protocol.send_request(request)
    server = ServerProtocol()
    server.receive_data(b"".join(protocol.data_to_send()))
    response = server.accept(server.events_received()[0])
    server.send_response(response)
    fed: list[bytes] = []
    receive = protocol.receive_data

    def counted(data: bytes) -> None:
        fed.append(bytes(data))
        receive(data)

    protocol.receive_data = counted  # type: ignore[method-assign]
    return Reader(conn, transport, messages, fed), b"".join(server.data_to_send())


def outcome(reader: Reader) -> tuple[Any, ...]:
    proto = reader.conn.protocol
    return (
        reader.messages,
        reader.transport.written,
        proto.state,
        proto.close_rcvd and (proto.close_rcvd.code, proto.close_rcvd.reason),
        proto.close_sent and (proto.close_sent.code, proto.close_sent.reason),
        type(proto.parser_exc).__name__,
    )


def feed(stream: bytes, cuts: list[int], fast: bool, handshake_alone: bool = True) -> Reader:
    """The handshake response, then `stream` cut at `cuts` (offsets into the stream, taken
    modulo its length); with `handshake_alone` False the first chunk carries the response
    and the stream's first bytes together, as a server's first write may."""

    async def run() -> Reader:
        reader, handshake = connect(fast)
        bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
        chunks = [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]
        if handshake_alone or not chunks:
            chunks.insert(0, handshake)
        else:
            chunks[0] = handshake + chunks[0]
        with mock.patch.object(websockets.frames.secrets, "token_bytes", lambda n: b"\x00" * n):
            for chunk in chunks:
                reader.conn.data_received(chunk)
        return reader

    return asyncio.run(run())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=st.lists(frames(), max_size=12).map(b"".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    handshake_alone=st.booleans(),
)
@pytest.mark.parametrize("scan", ["product", "pure"])
def test_fast_and_websockets_read_agree_on_any_stream_cut_anywhere(
    scan: str, stream: bytes, cuts: list[int], handshake_alone: bool
) -> None:
    """`product` reads with what the gateway uses (the compiled scan when built)."""
    twin = wsock.read_text_messages if scan == "product" else wsock.py_read_text_messages
    with mock.patch.object(wsock, "read_text_messages", twin):
        fast = feed(stream, cuts, fast=True, handshake_alone=handshake_alone)
    slow = feed(stream, cuts, fast=False, handshake_alone=handshake_alone)
    assert outcome(fast) == outcome(slow)


def test_common_frames_in_one_chunk_never_reach_websockets_parser() -> None:
    """The fast path is taken: after the handshake, a chunk of whole text frames is read
    here (websockets is fed nothing), in order; a ping after them goes to websockets."""
    texts = [b'{"type":"a"}', b"", b"x" * 200, b'{"type":"b"}']
    stream = b"".join(raw_frame(FIN | TEXT, t) for t in texts)

    async def run() -> Reader:
        reader, handshake = connect(fast=True)
        reader.conn.data_received(handshake)
        fed_before = len(reader.fed_to_websockets)
        reader.conn.data_received(stream)
        assert len(reader.fed_to_websockets) == fed_before  # nothing for websockets
        ping = raw_frame(FIN | PING, b"hi")
        reader.conn.data_received(stream + ping)
        assert reader.fed_to_websockets[-1] == ping  # only the ping, at a frame start
        return reader

    reader = asyncio.run(run())
    assert reader.messages == texts * 2
    assert reader.conn.protocol.state is State.OPEN
    [pong] = reader.transport.written  # websockets answered the ping
    assert pong[0] == 0x8A


def test_frames_in_the_handshake_chunk_and_after_a_cut_frame_keep_their_order() -> None:
    texts = [f"m{i}".encode() * (i + 1) for i in range(6)]
    stream = b"".join(raw_frame(FIN | TEXT, t) for t in texts)

    async def run() -> Reader:
        reader, handshake = connect(fast=True)
        data = handshake + stream
        cut = len(handshake) + 10  # inside the second frame
        reader.conn.data_received(data[:cut])
        reader.conn.data_received(data[cut : cut + 3])  # websockets is mid-frame: its bytes
        reader.conn.data_received(data[cut + 3 :])
        return reader

    assert asyncio.run(run()).messages == texts


def test_oversized_text_frame_still_fails_the_connection_with_1009() -> None:
    async def run() -> Reader:
        reader, handshake = connect(fast=True)
        reader.conn.data_received(handshake + raw_frame(FIN | TEXT, b"ok"))
        reader.conn.data_received(raw_frame(FIN | TEXT, b"o" * (MAX_SIZE + 1)))
        reader.conn.data_received(raw_frame(FIN | TEXT, b"late"))
        return reader

    reader = asyncio.run(run())
    proto = reader.conn.protocol
    assert reader.messages == [b"ok"]
    assert proto.state is not State.OPEN and proto.close_sent.code == 1009


def test_masked_server_frame_is_a_protocol_error() -> None:
    async def run() -> Reader:
        reader, handshake = connect(fast=True)
        reader.conn.data_received(
            handshake
            + raw_frame(FIN | TEXT, b"ok")
            + raw_frame(FIN | TEXT, b"masked", mask=b"abcd")
            + raw_frame(FIN | TEXT, b"late")
        )
        return reader

    reader = asyncio.run(run())
    assert reader.messages == [b"ok"]
    assert reader.conn.protocol.close_sent.code == 1002


# -- the scanner, compiled and pure -------------------------------------------------------------


def both(data: Any, max_size: int) -> tuple[list[bytes], int]:
    expected = wsock.py_read_text_messages(data, max_size)
    got = compiled().read_text_messages(data, max_size)
    assert got == expected
    assert all(type(m) is bytes for m in got[0]) and all(type(m) is bytes for m in expected[0])
    return expected


@settings(max_examples=600, deadline=None)
@given(
    stream=st.lists(frames(), max_size=8).map(b"".join),
    junk=st.binary(max_size=12),
    cut=st.integers(0, 4000),
    max_size=st.sampled_from((0, 1, 125, 126, MAX_SIZE, 65536, sys.maxsize)),
)
def test_compiled_and_pure_scans_agree(stream: bytes, junk: bytes, cut: int, max_size: int) -> None:
    data = (stream + junk)[: cut % (len(stream) + len(junk) + 1)]
    messages, used = both(data, max_size)
    assert 0 <= used <= len(data)
    # The scan stopped at a frame it cannot take, and the prefix alone reads the same.
    assert both(data[used:], max_size) == ([], 0)
    assert both(data[:used], max_size) == (messages, used)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ([], 0)),
        (b"\x81", ([], 0)),
        (b"\x81\x03ab", ([], 0)),  # cut
        (b"\x81\x02ab\x81", ([b"ab"], 4)),
        (b"\x81\x7e\x00\x02ab", ([b"ab"], 6)),  # non-minimal 16-bit length
        (b"\x81\x7f" + struct.pack("!Q", 2) + b"ab", ([b"ab"], 12)),  # non-minimal 64-bit
        (b"\x81\x7f" + struct.pack("!Q", 2**63 + 2) + b"ab", ([], 0)),  # beyond any max_size
        (b"\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xff", ([], 0)),
        (b"\x81\x82abcdxy", ([], 0)),  # masked
        (b"\x01\x02ab", ([], 0)),  # no FIN
        (b"\xc1\x02ab", ([], 0)),  # RSV1
        (b"\x82\x02ab", ([], 0)),  # binary: websockets'
        (b"\x89\x00\x81\x01a", ([], 0)),  # a ping first: everything from it is websockets'
    ],
)
def test_frame_forms(data: bytes, expected: tuple[list[bytes], int]) -> None:
    assert wsock.py_read_text_messages(data, MAX_SIZE) == expected
    if _wsframe is not None and hasattr(_wsframe, "read_text_messages"):
        assert _wsframe.read_text_messages(data, MAX_SIZE) == expected


def test_max_size_is_inclusive_and_checked_before_the_payload_arrives() -> None:
    frame = raw_frame(FIN | TEXT, b"x" * 126)
    assert both(frame, 126) == ([b"x" * 126], len(frame))
    assert both(frame, 125) == ([], 0)
    assert both(frame[:10], 125) == ([], 0)


def test_buffers_of_other_types_and_bad_arguments() -> None:
    frame = raw_frame(FIN | TEXT, b"abc")
    for data in (bytearray(frame), memoryview(frame)):
        assert both(data, 10) == ([b"abc"], 5)
    c = compiled()
    for fn in (c.read_text_messages, wsock.py_read_text_messages):
        with pytest.raises(ValueError, match="max_size"):
            fn(frame, -1)
        with pytest.raises(TypeError):
            fn(frame, None)
        with pytest.raises(TypeError):
            fn("text", 10)
    with pytest.raises(TypeError):
        c.read_text_messages(frame)


def test_compiled_scan_keeps_no_reference() -> None:
    c = compiled()
    data = b"".join(raw_frame(FIN | TEXT, bytes([i]) * i) for i in range(50)) + b"\x89"
    before = sys.getrefcount(data)
    for _ in range(200):
        messages, used = c.read_text_messages(data, MAX_SIZE)
    assert sys.getrefcount(data) == before
    assert used == len(data) - 1
    first = messages[3]
    del messages
    assert sys.getrefcount(first) == 2  # `first` and the argument: nothing else holds it


def test_the_product_reads_with_the_compiled_scan_when_built() -> None:
    if _wsframe is None or wsock.FRAME_IMPLEMENTATION != "c":
        pytest.skip("not built, or SRG_PURE_PYTHON")
    assert wsock.read_text_messages is compiled().read_text_messages
    assert wsock.READ_IMPLEMENTATION == "c"


def test_after_our_close_the_bytes_go_to_websockets_as_without_the_fast_path() -> None:
    """A chunk read wholly here leaves the next one to be read here too, unless the state
    moved meanwhile: after the client sent its close, websockets reads (and the outcome is
    the one without the fast path)."""

    async def run(fast: bool) -> Reader:
        reader, handshake = connect(fast)
        fed: list[int] = []
        reader.conn.data_received(handshake)
        reader.conn.data_received(raw_frame(FIN | TEXT, b"one"))
        fed.append(len(reader.fed_to_websockets))
        with mock.patch.object(websockets.frames.secrets, "token_bytes", lambda n: b"\x00" * n):
            reader.conn.protocol.send_close(1000, "done")
            chunk = raw_frame(FIN | TEXT, b"two") + raw_frame(FIN | CLOSE, struct.pack("!H", 1000))
            reader.conn.data_received(chunk)
        fed.append(len(reader.fed_to_websockets))
        if fast:  # the chunk after the close went to websockets, whole
            assert fed[1] == fed[0] + 1 and reader.fed_to_websockets[-1] == chunk
        return reader

    fast = asyncio.run(run(True))
    slow = asyncio.run(run(False))
    assert fast.messages == [b"one", b"two"]
    assert outcome(fast) == outcome(slow)
    assert fast.conn.protocol.close_rcvd.code == 1000  # the close handshake completed


async def test_a_websockets_without_the_names_of_16_leaves_the_fast_path_off() -> None:
    """websockets 15.x called these max_size and cur_size: the connection must not fail there
    (an AttributeError escaped the connect before), it reads through websockets alone."""
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), max_size=MAX_SIZE)
    del protocol.current_size  # as on 15.x
    conn = wsock._CallbackConnection(
        protocol, on_message=lambda m: None, on_closed=lambda exc: None, ping_interval=None
    )
    assert conn._read_fast is False
