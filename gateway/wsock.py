"""The WebSocket machinery both voice backends share (Realtime GA, gateway/realtime/client.py;
GPT-Live, gateway/live/client.py): one socket, one ordered outbound queue with a synchronous
fast path, server messages handled in the socket's read callback. Nothing here knows a wire
format: a subclass parses messages (`_parse`) and names its errors and its lost-connection
event (`_error`, `_lost_event`).

Reading and writing are apart (one task doing both would let a large inbound frame block
outbound audio, reference section 8.8): server messages are handled by the socket's read
callback, frames go out synchronously or through a writer task. Outbound frames go through one
ordered queue so that control events keep their order relative to audio. When the queue is
full only audio appends are dropped (and counted); control events are never dropped.

Fast path (per-call CPU, docs/benchmarks.md): when nothing is queued and the TCP write buffer is
below its high-water mark, a frame is framed here and written to the connection's transport
synchronously, by the caller (the 20 ms clock tick that released the audio). That is what
`ws.send` ends up doing too, minus a writer-task wakeup, an async context manager, a `drain()`
and one `getrandom()` syscall per frame for the mask. Order is kept: the fast path is only taken
when the queue is empty and the writer holds no frame; otherwise the frame queues and the writer
task sends it with `ws.send` (flow control: it waits for `drain()`). Only unfragmented text
frames on an OPEN connection without extensions go this way (compression is off, and websockets'
sans-I/O protocol keeps no per-frame state for outgoing data frames besides fragmentation).

Inbound (same reason): a complete server message is parsed and handed on from the socket's read
callback (`_CallbackConnection.process_event`), not queued for a reader task's `recv()`. That
saves a task wakeup, a future and websockets' message assembler per event, and the wait for the
reader task's turn on a busy loop, which was most of the delta -> playout and speech_started ->
flush latency at 100 calls (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import itertools
import logging
import os
import re
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

try:  # the C helper websockets itself uses to mask frames; its pure-Python twin otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (websockets built without its C extension)
    from websockets.utils import apply_mask

__all__ = [
    "ClientStats",
    "Endpoint",
    "WebSocketLink",
    "azure_host",
    "masked_b64_text_frame",
    "masked_text_frame",
]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_FRAMES = 250  # 5 s of 20 ms appends
DEFAULT_WRITE_HIGH = 32 * 1024  # websockets' default write_limit, when the transport cannot tell

_USERINFO_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")
_CREDENTIAL_QUERY = re.compile(r"(?i)([?&][^=&#]*(?:key|token|secret|sig|pass|auth)[^=&#]*=)[^&#]*")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect and which headers to send (the headers carry the secrets)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never printed

    @classmethod
    def custom(cls, url: str, headers: dict[str, str] | None = None) -> Any:
        return cls(url, dict(headers or {}))

    def redacted(self) -> str:
        """URL for logs: headers carry the secrets and are never logged; a password in the
        userinfo or a key/token query parameter (Azure accepts `?api-key=`) is masked too."""
        url = _USERINFO_PASSWORD.sub(r"\1***@", self.url)
        return _CREDENTIAL_QUERY.sub(r"\1***", url)


def azure_host(resource_or_host: str) -> str:
    """`myres`, `myres.openai.azure.com` or `https://myres.openai.azure.com/...` -> the host."""
    host = resource_or_host
    if "://" in host:
        host = urlsplit(host).netloc
    if "." not in host:
        host = f"{host}.openai.azure.com"
    return host


_MASK_POOL_BYTES = 4096
# One C call cuts a pool into its 4-byte keys (~14 ns a key; slicing in Python was ~75 ns).
_SPLIT_MASK_POOL = struct.Struct("4s" * (_MASK_POOL_BYTES // 4))
_HEAD_SHORT_MASKED = struct.Struct("!BB4s")
_HEAD16_MASKED = struct.Struct("!BBH4s")
_HEAD64_MASKED = struct.Struct("!BBQ4s")


class _MaskKeys:
    """Client masking keys (RFC 6455 5.3: unpredictable, from a strong entropy source).

    websockets draws each key with `secrets.token_bytes(4)`, one getrandom() syscall per frame
    (6 % of the gateway's CPU at 100 calls, docs/benchmarks.md). The same source (os.urandom)
    read 4 KiB at a time gives 1024 keys per syscall, each used once. The pool is split into
    its keys in one C call and handed out by an iterator (issue 14: ~40 ns a key instead of
    ~140 ns for slicing per draw, bench/wsock_ab.py). The refill is part of the iterator too
    (`repeat` -> `os.urandom` -> the split -> `chain`, all C): `next` is the chain's own
    `__next__`, so a draw runs no Python frame (one less per audio frame: bench/append_cost.py,
    docs/benchmarks.md)."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        pools = map(os.urandom, itertools.repeat(_MASK_POOL_BYTES))
        keys = itertools.chain.from_iterable(map(_SPLIT_MASK_POOL.unpack, pools))
        self.next: Callable[[], bytes] = keys.__next__


_mask_keys = _MaskKeys()


def py_masked_text_frame(payload: bytes, mask: bytes) -> bytes:
    """One client-to-server text frame, FIN set, no extension (RFC 6455 5.2): the bytes
    websockets' `Frame(TEXT, payload).serialize(mask=True)` produces with that mask."""
    if type(mask) is not bytes:
        raise TypeError(f"mask must be bytes, not {type(mask).__name__}")
    if len(mask) != 4:
        raise ValueError(f"mask must be 4 bytes, got {len(mask)}")
    length = len(payload)
    # Header and key in one pack, then one concatenation (no tuple, no join).
    if length < 126:
        head = _HEAD_SHORT_MASKED.pack(0x81, 0x80 | length, mask)
    elif length < 65536:
        head = _HEAD16_MASKED.pack(0x81, 0x80 | 126, length, mask)
    else:
        head = _HEAD64_MASKED.pack(0x81, 0x80 | 127, length, mask)
    return head + apply_mask(payload, mask)


def py_masked_b64_text_frame(prefix: bytes, data: bytes, suffix: bytes, mask: bytes) -> bytes:
    """The masked text frame of `prefix + base64(data) + suffix` (the voice backends' audio
    append: the JSON around the base64 audio)."""
    return py_masked_text_frame(
        b"".join((prefix, binascii.b2a_base64(data, newline=False), suffix)), mask
    )


# The compiled twins (gateway/_wsframe.c: one allocation per frame, the base64 text never a
# Python object; issue 14), used when built unless SRG_PURE_PYTHON is set, like the jitter
# buffer (gateway/media/jitter.py). tests/test_wsframe_parity.py holds both to the same bytes.
masked_text_frame = py_masked_text_frame
masked_b64_text_frame = py_masked_b64_text_frame
FRAME_IMPLEMENTATION = "python"  # what `run` logs and `check` reports: "c" or "python"
FRAME_IMPLEMENTATION_REASON = "the extension gateway._wsframe is not built"
if os.environ.get("SRG_PURE_PYTHON", "") not in ("", "0"):  # as gateway/media/jitter.py reads it
    FRAME_IMPLEMENTATION_REASON = "SRG_PURE_PYTHON is set"
else:
    try:
        from gateway import _wsframe
    except ImportError:  # not built (no compiler where it was installed): the pure twins
        pass
    else:
        masked_text_frame = _wsframe.masked_text_frame
        masked_b64_text_frame = _wsframe.masked_b64_text_frame
        FRAME_IMPLEMENTATION = "c"
        FRAME_IMPLEMENTATION_REASON = "compiled extension gateway._wsframe"


# -- the read side: complete server text frames without websockets' frame parser -----------

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
NO_LIMIT = sys.maxsize  # `read_text_messages`' max_size when the connection sets none


def py_read_text_messages(data: bytes, max_size: int) -> tuple[list[bytes], int]:
    """The payloads of the complete server text frames at the start of `data` that need
    nothing from websockets' parser, and the offset of the first byte not taken.

    Taken: FIN set, RSV bits clear, opcode text (first byte 0x81), no mask (RFC 6455 5.1: a
    server never masks), a payload of at most `max_size` bytes, wholly in `data`. The scan
    stops at the first frame that is anything else (a control frame, a fragment, a masked or
    oversized frame, bad RSV bits or opcode, a frame cut by the end of `data`): from there the
    bytes are websockets' to parse (and to refuse). Lengths are read as websockets reads them
    (a non-minimal 16- or 64-bit length is accepted; a 64-bit one above `max_size` stops)."""
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    messages: list[bytes] = []
    pos = 0
    with memoryview(data) as view:  # any bytes-like object, as the compiled twin takes
        end = len(view)
        while end - pos >= 2 and view[pos] == 0x81:
            length = view[pos + 1]
            if length < 126:
                start = pos + 2
            elif length == 126:
                if end - pos < 4:
                    break
                (length,) = _U16.unpack_from(view, pos + 2)
                start = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                (length,) = _U64.unpack_from(view, pos + 2)
                start = pos + 10
            else:
                break  # the mask bit: websockets refuses it (a protocol error)
            if length > max_size or end - start < length:
                break
            pos = start + length
            messages.append(bytes(view[start:pos]))
    return messages, pos


# The compiled twin (gateway/_wsframe.c), with the frame builders; tests/test_wsread.py holds
# the two to the same results.
read_text_messages = py_read_text_messages
READ_IMPLEMENTATION = "python"
if FRAME_IMPLEMENTATION == "c" and hasattr(_wsframe, "read_text_messages"):
    read_text_messages = _wsframe.read_text_messages
    READ_IMPLEMENTATION = "c"

# websockets' frame parser (Protocol.parse) waits for the next frame inside
# StreamReader.at_eof: suspended there with an empty buffer, it holds no part of a frame.
# (Its `discard`, after a close or a failure, waits in at_eof too: hence both codes.)
_AT_FRAME_START = StreamReader.at_eof.__code__
_PARSE_FRAMES = Protocol.parse.__code__


class _CallbackConnection(ClientConnection):
    """websockets' client connection, handing each complete data message to `on_message` from
    the read callback (the `recv()` queue is not used) and the close to `on_closed`.

    `process_event` is websockets' documented extension point ("overridden in subclasses");
    control frames, the handshake and the close handshake stay websockets' own. Fragmented
    messages are joined here; websockets' protocol has already enforced `max_size` on the
    whole message.

    The read fast path (`data_received`, issue 14): websockets parses each frame with a
    generator per read (header, length, payload) and an event list; for a server's common
    frame, a whole unfragmented text frame, that is ~4.5 µs of CPU a message where the path
    below takes ~0.6 µs (bench/wsread_cost.py, docs/benchmarks.md). When websockets' parser is waiting at a frame boundary (the
    connection OPEN, its buffer empty, no fragmented message under way, no extension, no
    debug logging), the complete common frames at the start of the received bytes are
    handed to `on_message` here (`read_text_messages`), in order, and the rest of the bytes,
    from the first frame that is anything else or is cut, goes to websockets as before.
    websockets thus only ever resumes at a frame start, and keeps the handshake, control
    frames, fragments, `max_size` and every error."""

    def __init__(
        self,
        *args: Any,
        on_message: Callable[[bytes], None],
        on_closed: Callable[[ConnectionClosed], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_message = on_message
        self._on_closed = on_closed
        self._fragments: list[bytes] = []
        self._read_synced = False
        # websockets' limit on a message that is not a continuation (Protocol.parse). The fast
        # path reads websockets' protocol state by the names of websockets >= 16 (pyproject.toml);
        # under any other layout it stays off and websockets parses everything, as before.
        proto = self.protocol
        names = ("max_message_size", "max_fragment_size", "current_size")
        self._read_fast = all(hasattr(proto, name) for name in names)  # tests clear it too
        limits = [getattr(proto, name, None) for name in names[:2]]
        limits = [x for x in limits if x is not None]
        self._read_limit = min(limits) if limits else NO_LIMIT

    def _at_frame_start(self) -> bool:
        """websockets' parser holds no part of a frame and would take the next one as a
        plain data frame (see the class docstring)."""
        proto = self.protocol
        if (
            proto.state is not State.OPEN
            or proto.current_size is not None
            or proto.reader.buffer
            or proto.extensions
            or proto.debug
        ):
            return False
        outer: Any = None
        parser: Any = proto.parser
        while True:  # ClientProtocol.parse -> Protocol.parse -> StreamReader.at_eof
            inner = getattr(parser, "gi_yieldfrom", None)
            if inner is None:
                return (
                    getattr(parser, "gi_code", None) is _AT_FRAME_START
                    and getattr(outer, "gi_code", None) is _PARSE_FRAMES
                )
            outer, parser = parser, inner

    def data_received(self, data: bytes) -> None:
        # `_read_synced`: the last bytes were all read here, so websockets' parser is still
        # where `_at_frame_start` found it; only the state can have moved since (a close).
        if (
            self._read_fast
            and self.protocol.state is State.OPEN
            and (self._read_synced or self._at_frame_start())
        ):
            messages, used = read_text_messages(data, self._read_limit)
            for message in messages:
                self._on_message(message)  # read per message: a handler may forget us
            if used == len(data):
                self._read_synced = True
                return
            if used:
                data = data[used:]
        self._read_synced = False
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if self.response is None or not isinstance(event, Frame):
            super().process_event(event)  # the handshake response
            return
        if event.opcode not in DATA_OPCODES:
            super().process_event(event)  # ping/pong/close: websockets' own handling
            return
        if event.opcode is not Opcode.CONT:
            self._fragments = []
        if not event.fin:
            self._fragments.append(bytes(event.data))
            return
        if self._fragments:
            self._fragments.append(bytes(event.data))
            data = b"".join(self._fragments)
            self._fragments = []
        else:
            data = bytes(event.data)
        self._on_message(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_closed(self.protocol.close_exc)
        # CPython 3.11's socket transport keeps a bound method of itself (`_read_ready_cb`)
        # until it is collected, a cycle that holds it and what it refers to until a full
        # collection; 3.12 drops it on close (python/cpython#100348). The transport never
        # reads again after connection_lost (issue 14: an ended call freed by refcount).
        transport = self.transport
        if getattr(transport, "_read_ready_cb", None) is not None:
            transport._read_ready_cb = None  # type: ignore[attr-defined]

    def forget_callbacks(self) -> None:
        """Its owner has closed: late frames and the close go nowhere (and the owner is not
        kept alive by this connection)."""
        self._on_message = _ignore_message
        self._on_closed = _ignore_closed


def _ignore_message(data: bytes) -> None:
    pass


def _ignore_closed(exc: ConnectionClosed | None) -> None:
    pass


@dataclass(slots=True)
class ClientStats:
    frames_sent: int = 0
    frames_written_sync: int = 0  # of frames_sent: framed and written at once, not via ws.send
    audio_bytes_queued: int = 0
    appends_dropped: int = 0
    audio_bytes_dropped: int = 0
    events_received: int = 0


_CLOSE_SENTINEL = object()
_OPEN = State.OPEN


class WebSocketLink:
    """One client WebSocket of a voice backend. Owner: the call session, which must `await
    close()` (the subclass's); `_close_socket()` closes the socket and cancels the writer.

    A subclass provides `_parse(bytes) -> event | None`, `_error(message) -> Exception` (the
    backend's setup/usage error) and `_lost_event(reason, code)` (its ConnectionLost value);
    `label` names the backend in error texts ("realtime", "live")."""

    label = "websocket"
    # The backend's audio append as text: PREFIX + base64(audio) + SUFFIX (its protocol
    # module's INPUT_AUDIO_APPEND_PARTS).
    audio_parts: tuple[bytes, bytes] = (b"", b"")

    def __init__(
        self,
        *,
        send_queue_frames: int = DEFAULT_QUEUE_FRAMES,
        max_size: int,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float = 10.0,
        write_through: bool = True,
    ) -> None:
        self.stats = ClientStats()
        self._queue_limit = send_queue_frames
        self._max_size = max_size
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._outbound: deque[bytes] = deque()
        self._outbound_ready = asyncio.Event()
        self._inbound: asyncio.Queue[Any] = asyncio.Queue()
        self._sink: Callable[[Any], None] | None = None  # see set_event_sink
        self._waiters: list[tuple[Any, asyncio.Future[Any]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lost: Any = None  # the subclass's ConnectionLost, once lost
        self._closing = False
        self._event_seq = 0
        self._writer_busy = False  # the writer holds a popped frame (awaiting ws.send)
        self._write_through = write_through
        self._write_high = DEFAULT_WRITE_HIGH

    # -- what a backend provides -------------------------------------------------------------

    def _parse(self, data: bytes) -> Any:
        raise NotImplementedError

    def _error(self, message: str) -> Exception:
        return ConnectionError(message)

    def _lost_event(self, reason: str, code: int | None) -> Any:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._lost is None and not self._closing

    async def _open_socket(
        self,
        url: str,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109 (every wait in the API is bounded)
        redacted_url: str,
    ) -> ClientConnection:
        factory = functools.partial(
            _CallbackConnection, on_message=self._on_message, on_closed=self._connection_lost
        )
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    url,
                    create_connection=cast(type[ClientConnection], factory),
                    additional_headers=headers,
                    compression=None,  # deflate costs 13x CPU for ~37 % on base64 audio
                    max_size=self._max_size,
                    ping_interval=self._ping_interval,
                    ping_timeout=self._ping_timeout,
                    open_timeout=self._open_timeout,
                    proxy=None,
                ),
                timeout,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            # The cause keeps its message, not its traceback: that traceback runs through
            # asyncio.wait_for's frame, which holds the failed task, which holds the cause (a
            # cycle that kept this client until a full collection: issue 14).
            raise self._error(f"cannot connect to {redacted_url}: {exc!r}") from (
                exc.with_traceback(None)
            )
        return self._ws

    def _start_writer(self) -> None:
        """Once the handshake is over: the fast path's bounds, and the writer task."""
        ws = self._ws
        assert ws is not None
        try:
            # The same bound `drain()` applies in ws.send: above it, frames wait in the queue.
            self._write_high = int(ws.transport.get_write_buffer_limits()[1])
            if ws.protocol.extensions or not isinstance(
                ws.protocol.expect_continuation_frame, bool
            ):
                self._write_through = False  # frames need an extension's encoding: ws.send
        except (AttributeError, NotImplementedError, TypeError, ValueError, IndexError):
            self._write_through = False  # not the connection we know: plain ws.send only
        self._tasks = [asyncio.create_task(self._writer(), name=f"{self.label}-writer")]

    async def _close_socket(self) -> None:
        """Close the socket and cancel the writer. Safe to call more than once."""
        if self._closing:
            return
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_waiters(self._error("client closed"))
        self._inbound.put_nowait(_CLOSE_SENTINEL)
        # The connection's callbacks are our bound methods and the sink is the consumer's
        # (the call session's): cycles that kept every ended call until a full collection
        # (issue 14). Dropped, a closed link and its consumer go by reference counting.
        self._sink = None
        self._tasks = []
        if isinstance(ws, _CallbackConnection):
            ws.forget_callbacks()

    # -- outbound ----------------------------------------------------------------------------

    def _send_text(self, prefix: bytes, suffix: bytes, audio: bytes = b"") -> bool | None:
        """Send the text message `prefix + base64(audio) + suffix` (a control event: `prefix`
        alone, no audio). True: written, or queued for the writer in order; False: an audio
        append dropped on a full queue (counted; control events are never dropped); None: the
        link is not connected, nothing sent.

        The one copy of the outbound checks, for appends and control events alike. Written at
        once, framed in one step from the parts (the per-packet case: the base64 text is never
        a Python object), only when nothing is queued, the writer holds no frame and the
        connection takes it now (`_writable`'s test, inlined here: issue 14, two Python frames
        less per packet, docs/benchmarks.md); otherwise the text queues for the writer. A
        backend binds its append parts once (`audio_appender`): the call session calls that
        with each frame of caller audio."""
        ws = self._ws
        if ws is None or self._lost is not None or self._closing:
            return None
        outbound = self._outbound
        if audio and len(outbound) >= self._queue_limit:
            stats = self.stats
            stats.appends_dropped += 1
            stats.audio_bytes_dropped += len(audio)
            return False
        if self._write_through and not outbound and not self._writer_busy:
            transport = ws.transport
            proto = ws.protocol
            if (
                proto.state is _OPEN
                and not proto.expect_continuation_frame
                and not transport.is_closing()
                and transport.get_write_buffer_size() <= self._write_high
            ):
                wire = masked_b64_text_frame(prefix, audio, suffix, _mask_keys.next())
                try:
                    transport.write(wire)
                except Exception as exc:  # a transport that refuses a write: link unusable
                    self._write_refused(transport, exc)
                else:
                    stats = self.stats
                    stats.frames_sent += 1
                    stats.frames_written_sync += 1
                if audio:
                    self.stats.audio_bytes_queued += len(audio)
                return True
        if audio:
            outbound.append(prefix + binascii.b2a_base64(audio, newline=False) + suffix)
            self.stats.audio_bytes_queued += len(audio)
        else:
            outbound.append(prefix + suffix if suffix else prefix)
        self._outbound_ready.set()
        return True

    @property
    def audio_appender(self) -> Callable[[bytes], bool | None]:
        """What the call session calls with each frame of caller audio: `_send_text` with this
        backend's parts bound (a partial: no Python frame of its own). True sent or queued,
        False dropped on a full queue (counted), None not connected (nothing sent). A new one
        per read, held by the caller only: kept by the link, it would be a reference cycle
        (the link freed only by a full collection, tests/test_call_freed.py)."""
        return functools.partial(self._send_text, *self.audio_parts)

    def append_audio(self, audio: bytes) -> bool:
        """Send G.711 bytes as the backend's audio append; False (and counted) when dropped on
        a full queue; raises the backend's error when the link is not connected."""
        prefix, suffix = self.audio_parts
        sent = self._send_text(prefix, suffix, audio)
        if sent is None:
            raise self._error(f"{self.label} session is not connected")
        return sent

    def _enqueue(self, frame: bytes) -> None:
        """A control event's text: never dropped; raises when the link is not connected."""
        if self._send_text(frame, b"") is None:
            raise self._error(f"{self.label} session is not connected")

    def _write_now(self, ws: ClientConnection, frame: bytes) -> bool:
        """Frame and write `frame` now if the socket takes it without waiting; False otherwise
        (the frame must then be queued or go through ws.send)."""
        transport = self._writable(ws)
        if transport is None:
            return False
        self._write_wire(transport, masked_text_frame(frame, _mask_keys.next()))
        return True

    def _writable(self, ws: ClientConnection) -> Any:
        """The connection's transport when a frame may be written to it now (open, not inside
        a fragmented message, below the write buffer's high-water mark), else None. The
        writer's test; `_send_text` inlines the same one (keep them in step:
        tests/call/test_caller_audio.py and tests/realtime/test_client_fastpath.py pin both)."""
        transport = ws.transport
        proto = ws.protocol
        if (
            proto.state is not _OPEN
            or proto.expect_continuation_frame
            or transport.is_closing()
            or transport.get_write_buffer_size() > self._write_high
        ):
            return None
        return transport

    def _write_wire(self, transport: Any, wire: bytes) -> None:
        """Write one framed message; a transport that refuses it loses the link."""
        try:
            transport.write(wire)
        except Exception as exc:  # a transport that refuses a write: the link is unusable
            self._write_refused(transport, exc)
            return
        stats = self.stats
        stats.frames_sent += 1
        stats.frames_written_sync += 1

    def _write_refused(self, transport: Any, exc: Exception) -> None:
        self._mark_lost(self._lost_event(f"{self.label} write failed: {exc!r}", None))
        transport.abort()

    def next_event_id(self, prefix: str = "gw") -> str:
        self._event_seq += 1
        return f"{prefix}_{self._event_seq}"

    # -- inbound -----------------------------------------------------------------------------

    def set_event_sink(self, sink: Callable[[Any], None]) -> None:
        """Deliver every server event by calling `sink(event)` from the read callback, in order,
        instead of through `events()` / `next_event()` (which then see nothing more).

        Why: no task hop per event (the consumer's own reader task), which is what the
        delta -> playout and speech_started -> flush paths wait for on a busy loop
        (docs/benchmarks.md). Events already received are handed over first, synchronously.
        The lost-connection event comes last, from a fresh loop callback (never from inside a
        send, so a consumer's handler is not re-entered). Exceptions raised by `sink` are
        logged and swallowed: a consumer bug must not take the connection down."""
        while not self._inbound.empty():
            item = self._inbound.get_nowait()
            if item is _CLOSE_SENTINEL:
                self._inbound.put_nowait(item)
                break
            self._deliver(sink, item)
        self._sink = sink

    def _deliver(self, sink: Callable[[Any], None], event: Any) -> None:
        try:
            sink(event)
        except Exception:
            log.exception("%s event handler failed on %s", self.label, type(event).__name__)

    async def events(self) -> AsyncIterator[Any]:
        """Every server event in order; ends after the lost-connection event or `close()`."""
        while True:
            if self._inbound.empty() and (self._lost is not None or self._closing):
                return  # the lost-connection event (or close) was already delivered
            item = await self._inbound.get()
            if item is _CLOSE_SENTINEL:
                return
            yield item
            if item is self._lost:
                return

    async def next_event(self, timeout: float) -> Any:  # noqa: ASYNC109 (every wait in the API is bounded)
        """One event (for tests and simple consumers); raises TimeoutError."""
        item = await asyncio.wait_for(self._inbound.get(), timeout)
        if item is _CLOSE_SENTINEL:
            self._inbound.put_nowait(item)
            raise self._error("client closed")
        return item

    async def wait_for(self, predicate: Any, timeout: float) -> Any:  # noqa: ASYNC109 (every wait in the API is bounded)
        """Wait for a server event matching `predicate` (it is still delivered by events())."""
        return await asyncio.wait_for(self._wait_for(predicate), timeout)

    def _wait_for(self, predicate: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._lost is not None:
            future.set_exception(self._error(f"connection lost: {self._lost.reason}"))
            return future
        self._waiters.append((predicate, future))
        return future

    def _fail_waiters(self, exc: Exception) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(exc)
        self._waiters.clear()

    def _on_message(self, data: bytes) -> None:
        """One complete server message, from the socket's read callback (in order)."""
        if self._lost is not None or self._closing:
            return  # late frames of a connection we have given up on
        try:
            event = self._parse(data)
            if event is None:
                return
            self.stats.events_received += 1
            if self._waiters:
                self._resolve_waiters(event)
            sink = self._sink
            if sink is None:
                self._inbound.put_nowait(event)
                return
            try:  # `_deliver`, inline: one Python call less per server event (issue 14)
                sink(event)
            except Exception:
                log.exception("%s event handler failed on %s", self.label, type(event).__name__)
        except Exception as exc:  # a bug here must not leave events() waiting forever
            self._mark_lost(self._lost_event(f"{self.label} reader failed: {exc!r}", None))
            ws = self._ws
            if ws is not None:
                task = asyncio.get_running_loop().create_task(ws.close(1011, "client error"))
                self._tasks.append(task)

    def _resolve_waiters(self, event: Any) -> None:
        remaining = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(event):
                future.set_result(event)
            else:
                remaining.append((predicate, future))
        self._waiters = remaining

    def _connection_lost(self, exc: ConnectionClosed) -> None:
        if self._lost is not None or self._closing:
            return
        frame = exc.rcvd or exc.sent
        code = frame.code if frame is not None else 1006
        reason = (frame.reason if frame is not None else "") or f"connection closed ({code})"
        self._mark_lost(self._lost_event(reason, code))

    def _mark_lost(self, lost: Any) -> None:
        if self._lost is not None or self._closing:
            return
        self._lost = lost
        self._fail_waiters(self._error(f"connection lost: {lost.reason}"))
        self._outbound.clear()
        self._outbound_ready.set()
        sink = self._sink
        if sink is not None:
            # _mark_lost may run inside a send (a failed write): deliver from a fresh callback.
            asyncio.get_running_loop().call_soon(self._deliver, sink, lost)
        else:
            self._inbound.put_nowait(lost)

    async def _writer(self) -> None:
        assert self._ws is not None
        ws = self._ws
        try:
            while True:
                await self._outbound_ready.wait()
                self._outbound_ready.clear()
                outbound = self._outbound
                while outbound:
                    frame = outbound.popleft()
                    # Everything queued goes out in this wakeup: synchronously while the
                    # socket takes it, else through ws.send, which waits for drain().
                    if self._write_through and self._write_now(ws, frame):
                        if self._lost is not None:
                            return
                        continue
                    self._writer_busy = True
                    try:
                        await ws.send(frame, text=True)
                    finally:
                        self._writer_busy = False
                    self.stats.frames_sent += 1
                if self._lost is not None:
                    return
        except ConnectionClosed as exc:
            self._connection_lost(exc)
        except Exception as exc:  # never leave the call believing audio still flows
            self._mark_lost(self._lost_event(f"{self.label} writer failed: {exc!r}", None))
            await ws.close(1011, "client error")
