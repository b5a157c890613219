"""The compiled jitter buffer (gateway/media/_jitter.c) against the pure one (PyJitterBuffer):
the same packets, arrivals and polls in, identical frames, statistics and properties out, after
every call (issue 14: "a test proves they produce identical packets, appends and statistics on
the same input").

Random streams are built by a sender model that misbehaves in every way jitter.py handles:
reordering, loss, duplicates, SSRC changes and stragglers of the old source, sequence jumps over
3000 (confirmed and not), timestamp jumps both ways, payload sizes from 0 past the maximum,
ptime changes, arrival jitter, stalls, polls at random times, codec changes mid-stream and
overflow past a small max_packets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media import jitter
from gateway.media.jitter import Frame, JitterStats, PyJitterBuffer
from gateway.media.rtp import RtpPacket
from gateway.media.stream import RtpStream, StreamConfig
from tests.media.jitter_impls import require_extension

PEER = ("192.0.2.10", 40000)

# One operation: ("push", packet, arrival) | ("pop", now) | ("codec", name).
Op = tuple[Any, ...]


def same(a: Any, b: Any) -> bool:
    """Equality where two NaNs are the same result (a NaN arrival poisons both alike)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def observe(jb: Any) -> dict[str, Any]:
    stats = jb.stats
    assert type(stats) is JitterStats
    return {
        "stats": dataclasses.astuple(stats),
        "delay_ms": jb.delay_ms,
        "target_ms": jb.target_ms,
        "next_due": jb.next_due,
        "jitter_ms": jb.jitter_ms,
        "buffered_ms": jb.buffered_ms,
        "media_time": jb.media_time,
    }


def assert_same_state(pure: Any, compiled: Any, where: str) -> None:
    left, right = observe(pure), observe(compiled)
    for key, value in left.items():
        assert same(value, right[key]), f"{where}: {key} {value!r} != {right[key]!r}"


def assert_same_frames(left: list[Frame], right: list[Frame], where: str) -> None:
    assert type(left) is list and type(right) is list
    assert left == right, where
    for a, b in zip(left, right, strict=True):
        assert type(a) is Frame and type(b) is Frame, where
        assert [type(x) for x in a] == [type(x) for x in b] == [bytes, int, bool], where


def call(action: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", action()
    except Exception as error:
        return "raised", type(error)


def run_both(kwargs: dict[str, Any], ops: list[Op]) -> tuple[Any, Any]:
    compiled_cls = require_extension()
    pure = PyJitterBuffer(**kwargs)
    compiled = compiled_cls(**kwargs)
    assert_same_state(pure, compiled, "constructed")
    for index, op in enumerate(ops):
        where = f"op {index} {op[0]}"
        if op[0] == "push":
            _, packet, arrival = op
            left = call(lambda jb=pure, p=packet, t=arrival: jb.push(p, t))
            right = call(lambda jb=compiled, p=packet, t=arrival: jb.push(p, t))
            assert left == right, where
        elif op[0] == "pop":
            now = op[1]
            left = call(lambda jb=pure, t=now: jb.pop_ready(t))
            right = call(lambda jb=compiled, t=now: jb.pop_ready(t))
            assert left[0] == right[0], where
            if left[0] == "ok":
                assert_same_frames(left[1], right[1], where)
            else:
                assert left == right, where
        else:
            pure.set_codec(op[1])
            compiled.set_codec(op[1])
        assert_same_state(pure, compiled, where)
    return pure, compiled


# -- the sender model --------------------------------------------------------------------------

KINDS = (
    ["next"] * 12
    + ["lose", "hold", "release_held", "release_held", "duplicate", "ssrc", "straggler"]
    + ["seq_jump", "seq_jump_single", "ts_jump", "ptime", "odd_size", "stall", "pop", "pop"]
    + ["codec", "wrap", "late_burst"]
)


@st.composite
def buffer_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    min_delay = draw(st.sampled_from([0.0, 5.0, 20.0, 40.0, 60.0]))
    max_delay = min_delay + draw(st.sampled_from([0.0, 10.0, 100.0, 180.0]))
    return {
        "codec": draw(st.sampled_from(["PCMU", "PCMA"])),
        "min_delay_ms": min_delay,
        "max_delay_ms": max_delay,
        "jitter_factor": draw(st.sampled_from([0.0, 1.0, 3.0, 4.0, 6.5])),
        "max_gap_ms": draw(st.sampled_from([100.0, 1000.0, 2000.0])),
        "max_packet_ms": draw(st.sampled_from([60.0, 120.0])),
        "max_packets": draw(st.sampled_from([1, 2, 3, 5, 8, 256])),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], list[Op]]:
    kwargs = draw(buffer_kwargs())
    max_packet = int(kwargs["max_packet_ms"] * 8)
    ops: list[Op] = []
    ssrc = draw(st.integers(0, 0xFFFFFFFF))
    old_ssrcs: list[int] = []
    seq = draw(st.integers(0, 0xFFFF))
    ts = draw(st.integers(0, 0xFFFFFFFF))
    ptime = draw(st.sampled_from([80, 160, 240, 480]))
    now = draw(st.floats(0.0, 1e5, allow_nan=False))
    held: list[RtpPacket] = []
    last: RtpPacket | None = None
    jitter_s = draw(st.sampled_from([0.0, 0.002, 0.015, 0.04]))

    def packet(size: int | None = None, **fields: int) -> RtpPacket:
        size = ptime if size is None else size
        s = fields.get("seq", seq)
        return RtpPacket(
            0,
            s & 0xFFFF,
            fields.get("ts", ts) & 0xFFFFFFFF,
            fields.get("ssrc", ssrc),
            bytes(((s * 7) & 0xFF,)) * size,
        )

    # The list of events shrinks; their details come from a seeded Random (a draw for each
    # would make generating the input, not running the buffers, the cost of this test).
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=30, max_size=150))
    rnd = draw(st.randoms(use_true_random=False))

    def push(p: RtpPacket) -> None:
        nonlocal last
        arrival = now + rnd.uniform(-jitter_s / 2, jitter_s)
        ops.append(("push", p, arrival))
        last = p
        if rnd.random() < 0.5:
            ops.append(("pop", arrival + 0.0005))  # release on arrival, as stream.py does

    for kind in kinds:
        if kind in ("next", "lose", "hold"):
            p = packet()
            if kind == "next":
                push(p)
            elif kind == "hold":
                held.append(p)
            seq, ts, now = seq + 1, ts + ptime, now + ptime / 8000
        elif kind == "release_held" and held:
            push(held.pop(rnd.randrange(len(held))))
        elif kind == "duplicate" and last is not None:
            push(last)
        elif kind == "ssrc":
            old_ssrcs.append(ssrc)
            ssrc = rnd.randint(0, 0xFFFFFFFF)
            seq = rnd.randint(0, 0xFFFF)
            ts = rnd.randint(0, 0xFFFFFFFF)
        elif kind == "straggler" and old_ssrcs:
            push(packet(ssrc=rnd.choice(old_ssrcs), seq=seq - 3))
        elif kind == "seq_jump":
            seq += rnd.randint(3001, 60000)  # believed once the next packet follows
        elif kind == "seq_jump_single":
            push(packet(seq=seq + rnd.randint(3001, 60000)))  # never confirmed
        elif kind == "ts_jump":
            ts += rnd.choice([rnd.randint(-(2**31), 2**31), rnd.randint(-20000, 20000), ptime // 2])
        elif kind == "ptime":
            ptime = rnd.choice([80, 160, 240, 320, 480, 7, 40])
        elif kind == "odd_size":
            size = rnd.choice([0, 1, max_packet, max_packet + 1, 5000])
            push(packet(size))
            seq, ts, now = seq + 1, ts + max(size, 1), now + ptime / 8000
        elif kind == "stall":
            now += rnd.uniform(0.05, 3.0)
        elif kind == "pop":
            ops.append(("pop", now + rnd.uniform(-0.05, 0.3)))
        elif kind == "codec":
            ops.append(("codec", rnd.choice(["PCMU", "PCMA", "pcma"])))
        elif kind == "wrap":
            seq = 0xFFFF - rnd.randint(0, 3)
            ts = 0xFFFFFFFF - rnd.randint(0, 3 * ptime)
        elif kind == "late_burst":
            for _ in range(rnd.randint(2, 6)):
                push(packet())
                seq, ts = seq + 1, ts + ptime
            now += rnd.uniform(0.0, 0.2)
    for p in held:
        push(p)
    ops.append(("pop", now + 5.0))
    return kwargs, ops


@st.composite
def jittery_links(draw: st.DrawFn) -> tuple[dict[str, Any], list[Op]]:
    """A paced sender over a link with random delay (so packets overtake each other) and loss,
    polled on a 20 ms tick and on every arrival as stream.py does: the adaptive window's
    arithmetic (A.8 jitter x factor, reorder need, decay) at work."""
    kwargs = {
        "min_delay_ms": draw(st.sampled_from([0.0, 10.0, 20.0])),
        "max_delay_ms": draw(st.sampled_from([60.0, 200.0])),
        "jitter_factor": draw(st.sampled_from([2.7, 3.0, 4.0, 6.5])),
    }
    ptime = draw(st.sampled_from([80, 160, 240]))
    spread = draw(st.floats(0.0, 0.08))
    loss = draw(st.sampled_from([0.0, 0.02, 0.2]))
    start = draw(st.floats(0.0, 1e4))
    seq0, ts0 = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFFFF))
    count = draw(st.integers(1, 150))
    delays = draw(st.lists(st.floats(0.0, 1.0), min_size=count, max_size=count))
    lost = draw(st.lists(st.floats(0.0, 1.0), min_size=count, max_size=count))
    arrivals = []
    for i in range(count):
        if lost[i] < loss:
            continue
        packet = RtpPacket(
            0, (seq0 + i) & 0xFFFF, (ts0 + i * ptime) & 0xFFFFFFFF, 7, bytes((i & 0xFF,)) * ptime
        )
        arrivals.append((start + i * ptime / 8000 + delays[i] * spread, i, packet))
    arrivals.sort()
    ops: list[Op] = []
    tick = start
    for arrival, _, packet in arrivals:
        while tick < arrival:
            ops.append(("pop", tick))
            tick += 0.02
        ops.append(("push", packet, arrival))
        ops.append(("pop", arrival + 0.0005))
    ops.append(("pop", tick + 1.0))
    return kwargs, ops


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jittery_links())
def test_jittery_reordering_links_give_identical_output(
    scenario: tuple[dict[str, Any], list[Op]],
) -> None:
    kwargs, ops = scenario
    run_both(kwargs, ops)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_streams_give_identical_output(scenario: tuple[dict[str, Any], list[Op]]) -> None:
    kwargs, ops = scenario
    run_both(kwargs, ops)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 3),
            st.integers(0, 1000),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=40,
    )
)
def test_arbitrary_numbers_and_hostile_times_give_identical_output(
    packets: list[tuple[int, int, int, int, float, float]],
) -> None:
    """Any 16/32-bit numbers, any payload size, NaN/inf/huge arrival and poll times."""
    ops: list[Op] = []
    for seq, ts, ssrc, size, arrival, now in packets:
        ops.append(("push", RtpPacket(0, seq, ts, ssrc, b"\x01" * size), arrival))
        ops.append(("pop", now))
    run_both({"max_packets": 4}, ops)


def test_defaults_match() -> None:
    compiled = require_extension()()
    pure = PyJitterBuffer()
    assert_same_state(pure, compiled, "defaults")
    assert compiled.target_ms == jitter.DEFAULT_MIN_DELAY_MS
    # Both hold max_packets and the other defaults alike: overflow after exactly 256.
    ops: list[Op] = [("push", RtpPacket(0, i, 160 * i, 9, b"\x02" * 160), 0.0) for i in range(300)]
    _, compiled_after = run_both({}, ops)
    assert compiled_after.stats.overflow == 300 - jitter.DEFAULT_MAX_PACKETS


def test_constructor_errors_match() -> None:
    compiled = require_extension()
    cases: list[dict[str, Any]] = [
        {"min_delay_ms": 300, "max_delay_ms": 200},
        {"min_delay_ms": -1},
        {"min_delay_ms": math.nan},
        {"max_packets": 0},
        {"clock_rate": 0},
        {"clock_rate": 10**7},
        {"codec": "G729"},
        {"max_gap_ms": math.nan},
        {"max_gap_ms": math.inf},
        {"max_packet_ms": math.inf},
    ]
    for kwargs in cases:
        left = call(lambda kw=kwargs: PyJitterBuffer(**kw))
        right = call(lambda kw=kwargs: compiled(**kw))
        assert left[0] == right[0] == "raised", kwargs
        assert left[1] is right[1], kwargs
    for cls in (PyJitterBuffer, compiled):
        try:
            cls(min_delay_ms=300, max_delay_ms=200)
        except ValueError as error:
            assert str(error) == (
                "jitter buffer needs 0 <= min_delay_ms <= max_delay_ms, got 300/200"
            )


# -- through RtpStream --------------------------------------------------------------------------


def _stream_with(cls: type[Any]) -> tuple[RtpStream, list[Frame]]:
    frames: list[Frame] = []
    config = StreamConfig()
    stream = RtpStream(config, on_audio=frames.extend)
    stream.jitter = cls(
        config.codec,
        min_delay_ms=config.jitter_min_ms,
        max_delay_ms=config.jitter_max_ms,
        clock_rate=config.clock_rate,
    )
    stream.set_remote(PEER)
    return stream, frames


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_rtp_stream_hands_on_identical_audio_with_either_buffer(
    scenario: tuple[dict[str, Any], list[Op]],
) -> None:
    """The same datagrams and ticks through two RtpStreams: the same frames to on_audio and the
    same counters in the snapshot."""
    _, ops = scenario
    compiled_cls = require_extension()
    streams = [_stream_with(PyJitterBuffer), _stream_with(compiled_cls)]
    clock = 0.0
    for op in ops:
        if op[0] == "push":
            packet, arrival = op[1], op[2]
            clock = max(clock, arrival)
            for stream, _ in streams:
                stream.receive_rtp(packet.encode(), PEER, clock)
        elif op[0] == "pop":
            clock = max(clock, op[1])
            for stream, _ in streams:
                stream.tick(clock)
    (pure, pure_frames), (compiled, compiled_frames) = streams
    assert_same_frames(pure_frames, compiled_frames, "on_audio")
    assert pure.snapshot() == compiled.snapshot()
