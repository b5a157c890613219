"""The compiled slot wakeup (gateway/media/_clock.c: run_slot, StreamTickCore, TickWatch)
against the pure one (pacer.py _py_run_slot, PyTickWatch; stream.py PyStreamTick), issue 14.

Hypothesis drives one MediaClock on a fake loop through sequences of: streams registered
(each with its output riding it and a session-like hook behind a tick watch) and plain tick
functions registered; members cancelled (also from inside another member's callback) and the
clock closed (also from a callback); time advancing by whole and partial periods and stalls
(catch-up and skipped frames, gaps); RTP in and out of order (frames released at the tick),
RFC 4733 events left open (the end deadline passes at a tick), inactivity, RTCP due, bot audio
queued and drained, hold fill, callbacks that raise. Every run records, in order, each
datagram sent, each callback and each hook decision; the two implementations must produce the
same record, the same clock statistics, the same per-stream and per-output statistics and the
same watch state.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media import pacer
from gateway.media.pacer import MediaClock
from gateway.media.rtp import RtpPacket
from gateway.media.stream import StreamConfig
from tests.media.jitter_impls import (
    output_implementation,
    playout_implementation,
    run_slot_implementation,
    stream_class,
    use_stream_implementation,
    watch_implementation,
)
from tests.media.test_pacer import FakeLoop

PEER = ("192.0.2.10", 40000)
PERIOD = 0.020


class Boom(Exception):
    pass


class Transport:
    def __init__(self, log: list[Any], tag: str) -> None:
        self.log = log
        self.tag = tag

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.log.append((self.tag, bytes(data), addr))

    def close(self) -> None:
        self.log.append((self.tag, "closed"))


class Member:
    """One stream member: RtpStream + PlayoutQueue + CallOutput + a hook behind a TickWatch
    that does what CallSession.on_output_tick does (drain, hold fill) and records it."""

    def __init__(self, world: World, index: int, timeout: float, rtcp_s: float) -> None:
        self.world = world
        self.index = index
        log = world.log
        config = StreamConfig(
            telephone_event_pt=101, inactivity_timeout_s=timeout, rtcp_interval_s=rtcp_s
        )
        stream = world.stream_cls(
            config,
            on_audio=self.on_audio,
            on_dtmf=lambda digit: log.append(("dtmf", index, digit.digit)),
            on_timeout=self.on_timeout,
            wallclock=lambda: 1.7e9,
        )
        stream._loop = world.loop
        stream._rtp_transport = Transport(log, f"rtp{index}")
        stream._rtcp_transport = Transport(log, f"rtcp{index}")
        stream._outbound.clock = world.loop.time
        stream._activity_since = world.loop.now
        stream._schedule_rtcp(world.loop.now)
        stream.set_remote(PEER)
        self.stream = stream
        self.queue = world.queue_cls()
        self.output = world.output_cls(
            self.queue,
            stream.send_frame,
            send_event=stream.send_event,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        self.watch = world.watch_cls(
            self.queue, fill_after_s=0.25, sample_rate=8000, frame_bytes=160
        )
        self.output.ride(stream, after=self.hook, watch=self.watch)
        self.seq = 1000
        self.ts = 5000
        self.raise_in: set[str] = set()
        self.close_in: set[str] = set()  # callbacks that close their own stream
        self.cancel_on_hook: list[Any] = []
        self.close_clock_on_hook = False

    def _maybe_raise(self, where: str) -> None:
        if where in self.close_in:
            self.close_in.discard(where)
            self.stream.close("closed from its own " + where)
        if where in self.raise_in:
            self.raise_in.discard(where)
            raise Boom(where)

    def on_audio(self, frames: list[Any]) -> None:
        self.world.log.append(
            ("audio", self.index, [(f.media_time, f.concealed, len(f.payload)) for f in frames])
        )
        self._maybe_raise("audio")

    def on_timeout(self) -> None:
        self.world.log.append(("timeout", self.index))
        self._maybe_raise("timeout")

    def hook(self) -> None:
        world = self.world
        watch = self.watch
        world.log.append(("hook", self.index))
        if watch.playout_nonempty and self.queue.queued_bytes == 0:
            watch.playout_nonempty = False
            world.log.append(("drained", self.index))
        t0 = watch.audio_t0
        if t0 is not None:
            behind = (world.loop.time() - t0 - 0.25) * 8000 - watch.audio_samples
            if behind >= 160:
                frames = min(int(behind // 160), 50)
                watch.audio_samples += frames * 160
                world.log.append(("fill", self.index, frames))
        for victim in self.cancel_on_hook:
            victim()
        self.cancel_on_hook.clear()
        if self.close_clock_on_hook:
            self.close_clock_on_hook = False
            world.clock.close()
        self._maybe_raise("hook")

    def rtp(self, seq_step: int, count: int) -> None:
        """`count` packets, the first `seq_step` ahead (a gap, or out of order when negative)."""
        for i in range(count):
            seq = self.seq + (seq_step if i == 0 else 1)
            self.ts += 160 * (seq - self.seq)
            self.seq = seq
            packet = RtpPacket(
                0, seq & 0xFFFF, self.ts & 0xFFFFFFFF, 0x1234, bytes([seq & 0xFF]) * 160
            )
            self.stream.receive_rtp(packet.encode(), PEER, self.world.loop.now)

    def dtmf_open(self) -> None:
        """An RFC 4733 event with no end packet: it ends at the receiver's deadline."""
        self.seq += 1
        payload = struct.pack("!BBH", 5, 10, 400)
        packet = RtpPacket(101, self.seq & 0xFFFF, self.ts, 0x1234, payload, marker=True)
        self.stream.receive_rtp(packet.encode(), PEER, self.world.loop.now)


class World:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log: list[Any] = []
        self.loop = FakeLoop()
        self.stream_cls = stream_class(name)
        self.queue_cls = playout_implementation(name)
        self.output_cls = output_implementation(name)
        self.watch_cls = watch_implementation(name)
        self.clock = MediaClock(self.loop, slots=4)  # type: ignore[arg-type]
        self.members: list[Member] = []
        self.regs: list[Any] = []  # every registration, in order (stream or plain)
        self.plain_raise: set[int] = set()

    def plain(self, index: int) -> Any:
        def tick(frame: int, deadline: float) -> None:
            self.log.append(("plain", index, frame, round(deadline - self.loop.now, 9)))
            if index in self.plain_raise:
                self.plain_raise.discard(index)
                raise Boom("plain")

        return tick


def run(name: str, steps: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        use_stream_implementation(patch, name)
        patch.setattr(pacer, "run_slot", run_slot_implementation(name))
        random.seed(14)
        world = World(name)
        loop, log = world.loop, world.log
        for step in steps:
            kind = step[0]
            members = world.members
            member = None
            if members and kind not in ("stream", "advance", "stall"):
                member = members[step[1] % len(members)] if len(step) > 1 else None
            if kind == "stream":
                if world.clock._closed:
                    continue
                new = Member(world, len(members), step[1], step[2])
                members.append(new)
                new.stream.start(world.clock)
                world.regs.append(new.stream._registration)
            elif kind == "plain":
                if world.clock._closed:
                    continue
                world.regs.append(world.clock.register(world.plain(len(world.regs))))
            elif kind == "advance":
                loop.run_until(loop.now + step[1] * PERIOD / 4)
            elif kind == "stall":
                loop.stall(step[1] * PERIOD)
            elif kind == "close_clock":
                world.clock.close()
            elif kind == "cancel" and world.regs:
                world.regs[step[1] % len(world.regs)].cancel()
            elif member is None:
                continue
            elif kind == "close":
                member.stream.close("test")
            elif kind == "rtp":
                member.rtp(step[2], step[3])
            elif kind == "dtmf":
                member.dtmf_open()
            elif kind == "enqueue":
                member.queue.enqueue("item", bytes(range(step[2])) * 2)
                member.watch.playout_nonempty = True
            elif kind == "end":
                member.queue.end_of_item("item")
            elif kind == "flush":
                member.queue.flush()
                member.watch.playout_nonempty = False
            elif kind == "t0":
                member.watch.audio_t0 = loop.now
            elif kind == "raise":
                member.raise_in.add(step[2])
            elif kind == "close_on":
                member.close_in.add(step[2])
            elif kind == "plain_raise":
                world.plain_raise.add(step[1] % max(len(world.regs), 1))
            elif kind == "cancel_other" and world.regs:
                member.cancel_on_hook.append(world.regs[step[2] % len(world.regs)].cancel)
            elif kind == "close_other":
                other = members[step[2] % len(members)].stream
                member.cancel_on_hook.append(lambda other=other: other.close("by hook"))
            elif kind == "close_clock_on_hook":
                member.close_clock_on_hook = True
        return {
            "log": log,
            "clock": dataclasses.asdict(world.clock.stats),
            "registrations": world.clock.registrations,
            "errors_logged": [reg.error_logged for reg in world.regs],
            "outputs": [dataclasses.asdict(m.output.stats) for m in world.members],
            "streams": [dataclasses.asdict(m.stream.snapshot()) for m in world.members],
            "ticks": [
                (
                    m.stream._timed_out,
                    m.stream._closed,
                    m.stream._next_rtcp,
                    m.stream._dtmf_deadline,
                    m.stream._activity_since,
                )
                for m in world.members
            ],
            "watches": [
                (m.watch.playout_nonempty, m.watch.audio_t0, m.watch.audio_samples)
                for m in world.members
            ],
        }


member_step = st.integers(0, 7)
STEPS = st.one_of(
    st.tuples(
        st.just("stream"), st.sampled_from([0.0, 0.05, 0.3, 30.0]), st.sampled_from([0.04, 0.3])
    ),
    st.tuples(st.just("plain")),
    st.tuples(st.just("advance"), st.integers(1, 30)),
    st.tuples(st.just("stall"), st.sampled_from([1, 2, 3, 4, 7])),
    st.tuples(st.just("cancel"), member_step),
    st.tuples(st.just("close"), member_step),
    st.tuples(
        st.just("rtp"), member_step, st.sampled_from([1, 1, 2, 3, -1, 30]), st.integers(1, 4)
    ),
    st.tuples(st.just("dtmf"), member_step),
    st.tuples(st.just("enqueue"), member_step, st.sampled_from([80, 128, 250])),
    st.tuples(st.just("end"), member_step),
    st.tuples(st.just("flush"), member_step),
    st.tuples(st.just("t0"), member_step),
    st.tuples(st.just("raise"), member_step, st.sampled_from(["audio", "timeout", "hook"])),
    st.tuples(st.just("close_on"), member_step, st.sampled_from(["audio", "timeout", "hook"])),
    st.tuples(st.just("plain_raise"), member_step),
    st.tuples(st.just("cancel_other"), member_step, member_step),
    st.tuples(st.just("close_other"), member_step, member_step),
    st.tuples(st.just("close_clock_on_hook"), member_step),
    st.tuples(st.just("close_clock")),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(STEPS, min_size=1, max_size=40).map(
        lambda steps: [("stream", 0.3, 0.04), ("plain",), *steps, ("advance", 40)]
    )
)
def test_compiled_slot_wakeup_matches_the_pure_one(
    steps: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    pure = run("python", steps, monkeypatch)
    compiled = run("c", steps, monkeypatch)
    assert compiled["log"] == pure["log"]
    assert compiled == pure


def test_a_scripted_run_exercises_every_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """One fixed run that reaches each kind of Python work, so the property test above cannot
    pass by never getting there: released frames, a DTMF end at its deadline, inactivity,
    RTCP, drain, hold fill, a raising callback counted, a skipped frame."""
    steps: list[tuple[Any, ...]] = [
        ("stream", 0.3, 0.04),
        ("plain",),
        ("advance", 8),
        ("rtp", 0, 1, 1),
        ("rtp", 0, 2, 1),  # a gap: the buffer holds the next packet
        ("advance", 8),
        ("rtp", 0, -1, 1),  # the missing one, late: released at arrival or at the tick
        ("advance", 30),
        ("dtmf", 0),
        ("advance", 60),
        ("enqueue", 0, 250),
        ("end", 0),
        ("t0", 0),
        ("advance", 60),
        ("raise", 0, "hook"),
        ("plain_raise", 1),
        ("advance", 8),
        ("stall", 7),
        ("advance", 100),
    ]
    for name in ("python", "c"):
        result = run(name, steps, monkeypatch)
        kinds = {entry[0] for entry in result["log"]}
        assert {"audio", "dtmf", "timeout", "drained", "fill", "hook", "plain"} <= kinds, kinds
        assert any(entry[0] == "rtcp0" for entry in result["log"])
        clock = result["clock"]
        assert clock["tick_errors"] == 2 and clock["skipped_frames"] > 0
        assert result["outputs"][0]["gap_frames"] > 0
    assert run("c", steps, monkeypatch) == run("python", steps, monkeypatch)


class ExactLoop:
    """A loop whose time is set by the test (values exact in binary: boundaries compare equal)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.mark.parametrize("name", ["python", "c"])
def test_inactivity_and_hold_fill_boundaries_are_inclusive(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`now - activity >= timeout` times out; `behind >= frame` calls the hook (the pure
    checks, to the bit): both at exact equality."""
    use_stream_implementation(monkeypatch, name)
    loop = ExactLoop(1024.0)
    calls: list[str] = []
    stream = stream_class(name)(
        StreamConfig(inactivity_timeout_s=0.25, rtcp_interval_s=1e9),
        on_timeout=lambda: calls.append("timeout"),
    )
    stream._loop = loop
    stream._next_rtcp = 1e9
    stream._activity_since = 1023.75  # exactly 0.25 s before now
    queue = playout_implementation(name)()
    output = output_implementation(name)(queue, lambda payload, marker: None)
    watch = watch_implementation(name)(queue, fill_after_s=0.25, sample_rate=8000, frame_bytes=160)
    output.ride(stream, after=lambda: calls.append("hook"), watch=watch)
    watch.audio_t0 = 1023.25
    watch.audio_samples = 3841  # behind = (0.75 - 0.25) * 8000 - 3841 = 159: no work
    stream._on_clock(0, 1024.0)
    assert calls == ["timeout"]
    watch.audio_samples = 3840  # behind = 160 exactly: the hook has work
    stream._on_clock(1, 1024.02)
    assert calls == ["timeout", "hook"]


@pytest.mark.parametrize("name", ["python", "c"])
def test_a_stream_closed_by_its_own_callback_sends_nothing_more(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_timeout closes the stream mid-tick: no output tick, no hook (the pure `_closed`
    check before the output)."""
    use_stream_implementation(monkeypatch, name)
    loop = ExactLoop(1024.0)
    sent: list[bytes] = []
    stream = stream_class(name)(StreamConfig(inactivity_timeout_s=0.25, rtcp_interval_s=1e9))
    stream.on_timeout = lambda: stream.close("timeout")
    stream._loop = loop
    stream._next_rtcp = 1e9
    stream._activity_since = 1000.0
    queue = playout_implementation(name)()
    output = output_implementation(name)(queue, lambda payload, marker: sent.append(payload))
    hooks: list[int] = []
    output.ride(stream, after=lambda: hooks.append(1))
    stream._on_clock(0, 1024.0)
    assert stream.closed and sent == [] and hooks == []
