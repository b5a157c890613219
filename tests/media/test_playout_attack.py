"""The playout queue and the outbound tick under hostile use (issue 14): wrong types from
in-process code are exceptions, never a crash; huge chunks are refused by the bound, empty ones
cost nothing; no reference to a chunk, an item id or a frame is leaked; a million enqueues and
ticks leave the process's memory flat; an exception from any sender reaches the clock (which
counts it) and leaves the output usable; the product selects the compiled pieces unless
SRG_PURE_PYTHON is set."""

from __future__ import annotations

import gc
import inspect
import os
import subprocess
import sys
import tracemalloc
from typing import Any

import pytest

from gateway.media import jitter, pacer, playout
from gateway.media.pacer import MediaClock
from gateway.media.playout import FRAME_BYTES, FrameKind, IdlePolicy
from gateway.media.stream import RtpStream, StreamConfig
from tests.media.jitter_impls import (
    IMPLEMENTATIONS,
    output_implementation,
    playout_implementation,
    rss_bytes,
    run_with_switch,
    use_stream_implementation,
)
from tests.tools.refcount import RefcountOnly


def _source(touch: Any) -> str:
    """The lambda's text, from its parametrize line."""
    text = inspect.getsource(touch).strip().rstrip(",")
    return text[text.index("lambda") :]


@pytest.fixture(params=IMPLEMENTATIONS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_wrong_types_are_exceptions(name: str) -> None:
    queue = playout_implementation(name)()
    for chunk in (None, 1.5, object(), "text"):
        with pytest.raises(TypeError):
            queue.enqueue("item", chunk)
    with pytest.raises(ValueError):
        queue.enqueue("", b"\x00")
    with pytest.raises(TypeError):
        queue.start_delay_frames = "3"  # the compiled queue refuses it here, the pure one ...
        queue.enqueue("item", b"\x00" * 400)
        queue.next_frame()  # ... where it compares it
    queue = playout_implementation(name)()
    assert queue.queued_bytes == 0 and queue.next_frame().kind is FrameKind.SILENCE


def test_the_compiled_queue_refuses_what_only_the_pure_one_duck_types() -> None:
    queue = playout_implementation("c")()
    for item_id in (5, None, b"item"):
        with pytest.raises(TypeError):
            queue.enqueue(item_id, b"\x00")
        with pytest.raises(TypeError):
            queue.end_of_item(item_id)
    for chunk in (5, [1, 2, 3]):
        with pytest.raises(TypeError):
            queue.enqueue("item", chunk)
    for nbytes in ("5", 1.5, None):
        with pytest.raises(TypeError):
            queue.drop_oldest(nbytes)
    with pytest.raises(TypeError):
        queue.idle_policy = "silence"
    with pytest.raises(OverflowError):
        playout_implementation("c")(max_queued_bytes=1 << 70)
    with pytest.raises(AttributeError):
        queue.codec = "PCMA"
    with pytest.raises(RuntimeError):
        queue.__init__()  # once only
    bare = playout_implementation("c").__new__(playout_implementation("c"))
    with pytest.raises(RuntimeError):
        bare.next_frame()  # __init__ never ran: an exception, not a crash
    assert queue.queued_bytes == 0 and queue.drop_oldest(1 << 80) == 0


class Sneaky(str):
    """An item id whose comparison flushes the queue being scanned."""

    queue: Any = None

    def __eq__(self, other: object) -> bool:
        if self.queue is not None:
            self.queue.flush()
        return False

    __hash__ = str.__hash__


def test_item_ids_that_run_code_cannot_change_the_queue_under_a_scan() -> None:
    queue = playout_implementation("c")()
    sneaky = Sneaky("item")
    with pytest.raises(TypeError):
        queue.enqueue(sneaky, b"\x01" * 400)  # only exact str ids are kept
    for n in range(50):
        queue.enqueue(f"item_{n}", b"\x01" * 100)
    sneaky.queue = queue
    queue.forget(sneaky)  # compared with 50 chunks: never by running its __eq__
    assert queue.played_bytes(sneaky) == 0 and not queue.is_complete(sneaky)
    assert queue.queued_bytes == 5000 and len(queue.pending_items()) == 50


class _PlainSubclass(str):
    """Equal to the str it was made from, and hashed the same."""


def test_forget_with_an_equal_str_subclass_forgets_nothing() -> None:
    """The compiled queue holds exact str ids: an id of another type names nothing, also in
    forget (it found no chunk of an equal subclass, then deleted the item's state by dict
    lookup while its audio was still queued: played_bytes fell to 0)."""
    queue = playout_implementation("c")()
    queue.enqueue("item", b"\x01" * 480)
    queue.next_frame()
    queue.next_frame()
    queue.forget(_PlainSubclass("item"))
    assert queue.played_bytes("item") == 320 and queue.queued_bytes == 160


@pytest.mark.parametrize(
    "touch",
    [
        lambda q: q.stats,
        lambda q: setattr(q, "idle_policy", IdlePolicy.SILENCE),
        lambda q: q.next_frame(),
    ],
)
def test_a_queue_never_initialised_is_an_error_not_a_crash(touch: Any) -> None:
    """Run in a child: before the fix the first two read unbound C globals (a segfault)."""
    code = (
        "import sys; from gateway.media import _jitter\n"
        "from gateway.media.playout import IdlePolicy\n"
        "q = _jitter.PlayoutQueue.__new__(_jitter.PlayoutQueue)\n"
        f"touch = {_source(touch)}\n"
        "try:\n    touch(q)\nexcept RuntimeError as exc:\n    print('refused:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: PlayoutQueue.__init__ was not called" in result.stdout


def test_a_call_output_never_initialised_is_an_error_not_a_crash() -> None:
    code = (
        "from gateway.media import _jitter\n"
        "o = _jitter.CallOutputCore.__new__(_jitter.CallOutputCore)\n"
        "try:\n    o.stats\nexcept RuntimeError as exc:\n    print('refused:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: CallOutput.__init__ was not called" in result.stdout


def test_the_ring_gives_back_what_a_burst_of_tiny_chunks_took() -> None:
    """A server sending one-byte deltas grows the compiled queue's ring to one slot per chunk;
    once they are played out (or flushed) the ring shrinks again (it kept its peak for the rest
    of the call). Measured with tracemalloc, which sees PyMem_Malloc."""
    queue = playout_implementation("c")(max_queued_bytes=1 << 20)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(200_000):
            queue.enqueue("item", b"\x01")
        peak_ring = tracemalloc.get_traced_memory()[0] - base
        queue.end_of_item("item")
        while queue.queued_bytes > 100_000:
            queue.next_frame()  # played out, partly
        queue.flush()  # the rest
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert peak_ring > 200_000 * 32, peak_ring  # the chunks and their ring were traced
    assert held < 64 << 10, f"{held} bytes still held after the queue emptied"


def test_idle_policies_of_another_copy_of_the_module_are_taken_by_value() -> None:
    """bench/playout_ab.py imports another revision's playout.py, whose IdlePolicy is another
    class (and whose import rebinds the extension to it): members are matched by value."""
    import enum

    class OtherIdlePolicy(enum.Enum):
        SILENCE = "silence"
        COMFORT_NOISE = "comfort_noise"
        NOTHING = "nothing"
        LOUD = "loud"

    cls = playout_implementation("c")
    assert cls(idle_policy=OtherIdlePolicy.NOTHING).idle_policy is IdlePolicy.NOTHING
    for bad in (OtherIdlePolicy.LOUD, "nothing", None):
        with pytest.raises(TypeError):
            cls(idle_policy=bad)


def test_huge_and_empty_chunks(name: str) -> None:
    queue = playout_implementation(name)(max_queued_bytes=8000)
    assert queue.enqueue("huge", bytes(50 << 20)) is False  # over the bound: dropped
    assert queue.enqueue("huge", b"\x01" * 160) is False  # and the rest of that item too
    assert queue.queued_bytes == 0
    for _ in range(100_000):
        assert queue.enqueue("quiet", b"") is True
    assert queue.queued_bytes == 0 and queue.pending_items() == []
    assert queue.enqueue("fits", bytes(range(256)) * 31 + bytes(64)) is True  # 8000 bytes
    frames = [queue.next_frame() for _ in range(50)]
    assert all(f.kind is FrameKind.AUDIO and len(f.payload) == FRAME_BYTES for f in frames)
    stats = queue.stats
    assert stats.overflow_items == 1 and stats.overflow_bytes == (50 << 20) + 160
    assert queue.played_bytes("fits") == 8000 and queue.played_bytes("huge") == 0


def test_no_reference_is_leaked(name: str) -> None:
    queue = playout_implementation(name)(idle_policy=IdlePolicy.COMFORT_NOISE)
    chunk = bytes(range(256)) * 2
    item = "".join(["item", "_leak"])  # not interned: its own count
    base_chunk, base_item = sys.getrefcount(chunk), sys.getrefcount(item)
    for _ in range(1000):
        queue.enqueue(item, chunk)
        queue.end_of_item(item)
        for _ in range(4):
            queue.next_frame()
        queue.pending_items()
        queue.flush()
        queue.forget(item)
    queue.enqueue("other", b"\x02" * 160)  # the last item played: kept until the next one
    queue.next_frame()
    assert sys.getrefcount(chunk) == base_chunk
    assert sys.getrefcount(item) == base_item
    queue.enqueue(item, chunk)
    assert sys.getrefcount(item) > base_item
    del queue
    assert sys.getrefcount(chunk) == base_chunk and sys.getrefcount(item) == base_item


def test_a_million_enqueues_leave_memory_flat(name: str) -> None:
    queue = playout_implementation(name)(start_delay_frames=1)
    delta = bytes(range(200))
    count = 1_000_000 if name == "c" else 200_000  # the pure class takes ~5x the time

    def run(n: int) -> None:
        for i in range(n):
            item = f"item_{i // 10}"
            queue.enqueue(item, delta)
            queue.next_frame()
            if i % 10 == 9:
                queue.end_of_item(item)
                while queue.queued_bytes:
                    queue.next_frame()
                queue.forget(item)

    run(50_000)  # warm up allocators and freelists
    gc.collect()
    before = rss_bytes()
    run(count)
    gc.collect()
    grown = rss_bytes() - before
    assert queue.stats.audio_frames > count
    assert grown < 4 << 20, f"RSS grew by {grown} bytes over {count} enqueues"


def test_a_call_output_is_freed_by_reference_counting(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's stream, queue and output, wired as MediaLeg wires them (ride) and stopped as
    it stops them, leave nothing for the cyclic collector (the compiled types traverse what
    they hold, so a cycle would show here as garbage)."""
    use_stream_implementation(monkeypatch, name)
    refcount = RefcountOnly()
    gc.disable()
    try:
        refcount.mark()
        stream = RtpStream(StreamConfig(telephone_event_pt=101))
        queue = playout_implementation(name)()
        output = output_implementation(name)(
            queue,
            stream.send_frame,
            send_event=stream.send_event,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        output.ride(stream, after=lambda: None)
        queue.enqueue("item", b"\x01" * 800)
        output.send_digits("1")
        for frame in range(20):
            stream._on_clock(frame, 0.0)
        output.stop()
        del stream, queue, output
        assert refcount.cyclic_garbage() == []
    finally:
        gc.enable()


class Wire:
    def __init__(self) -> None:
        self.frames = 0
        self.raises: BaseException | None = None

    def send_frame(self, payload: bytes, marker: bool) -> None:
        self.frames += 1
        if self.raises is not None:
            raise self.raises


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[Any] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> Any:
        self.timers.append((when, callback, args))
        return self

    def cancel(self) -> None:
        pass


def test_an_exception_from_a_sender_reaches_the_clock_and_the_output_goes_on(name: str) -> None:
    loop = FakeLoop()
    clock = MediaClock(loop, slots=1)  # type: ignore[arg-type]
    wires = [Wire(), Wire()]
    queues = [playout_implementation(name)() for _ in wires]
    outputs = [
        output_implementation(name)(q, w.send_frame) for q, w in zip(queues, wires, strict=True)
    ]
    for output in outputs:
        output.start(clock)
    wires[0].raises = OSError("boom")
    queues[0].enqueue("item", b"\x01" * 800)
    for _ in range(3):
        when, callback, args = loop.timers.pop()
        loop.now = when
        callback(*args)
    assert clock.stats.tick_errors == 3 and wires[1].frames == 3  # the other call went on
    wires[0].raises = None
    when, callback, args = loop.timers.pop()
    loop.now = when
    callback(*args)
    assert wires[0].frames == 4 and outputs[0].stats.audio_frames == 4
    assert queues[0].played_bytes("item") == 640  # each raising tick still took its frame


def test_a_method_replaced_on_one_queue_is_what_the_tick_calls(name: str) -> None:
    """Instance attributes, as on the pure dataclass (bench/latency_probe.py observes a queue by
    replacing its methods): the compiled tick then takes its frame through Python."""
    queue = playout_implementation(name)()
    wire = Wire()
    output = output_implementation(name)(queue, wire.send_frame)
    output.tick(0, 0.0)
    seen: list[Any] = []
    next_frame = queue.next_frame

    def observed() -> Any:
        frame = next_frame()
        seen.append(frame)
        return frame

    queue.next_frame = observed
    queue.enqueue("item", b"\x01" * 320)
    output.tick(1, 0.0)
    output.tick(2, 0.0)
    assert [f.kind for f in seen] == [FrameKind.AUDIO, FrameKind.AUDIO]
    assert wire.frames == 3 and output.stats.audio_frames == 2


def test_the_compiled_tick_refuses_bad_arguments() -> None:
    queue = playout_implementation("c")()
    cls = output_implementation("c")
    with pytest.raises(AttributeError):
        cls(object(), print)  # a queue without silence_frame
    output = cls(queue, Wire().send_frame)
    for index in ("1", 1.5, None):
        with pytest.raises(TypeError):
            output.tick(index, 0.0)
    with pytest.raises(OverflowError):
        output.tick(1 << 60, 0.0)
    with pytest.raises(TypeError):
        output.tick(1)
    with pytest.raises(RuntimeError):
        cls.__new__(cls).tick(0, 0.0)  # __init__ never ran
    output.tick(0, 0.0)
    assert output.stats.idle_frames == 1


def test_the_product_uses_the_compiled_tick_unless_switched_off() -> None:
    compiled_queue, compiled_output = playout_implementation("c"), output_implementation("c")
    forced = os.environ.get(jitter.PURE_PYTHON_ENV, "") not in ("", "0")
    assert playout.PlayoutQueue is (playout.PyPlayoutQueue if forced else compiled_queue)
    assert pacer.CallOutput is (pacer.PyCallOutput if forced else compiled_output)
    assert playout.IMPLEMENTATION == pacer.IMPLEMENTATION == ("python" if forced else "c")
    assert forced or issubclass(compiled_output, pacer._OutputControl)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", ["PyPlayoutQueue", "PyCallOutput"]), ("", ["PlayoutQueue", "CallOutput"])],
)
def test_pure_python_switch(value: str, expected: list[str]) -> None:
    playout_implementation("c")
    code = (
        "from gateway.media import pacer, playout; "
        "print(playout.PlayoutQueue.__name__, pacer.CallOutput.__name__)"
    )
    assert run_with_switch(code, value) == expected
