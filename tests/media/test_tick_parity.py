"""The compiled outbound tick (gateway/media/_tick.c) against the pure one (pacer.py
PyCallOutput.tick), issue 14: the same queue operations, digits and clock frames in; identical
sender calls (or exception types), CallOutput counters and state, and queue state out, after
every step.

Three pairings, each against pure queue + pure tick:
- the product's: compiled queue + compiled tick, with recording Python senders (any subset of
  send_event / send_comfort_noise / advance missing, any sender raising on its next call);
- compiled tick over the pure queue (the tick's Python-queue path);
- compiled queue + tick + outbound path through whole RtpStreams (the tick's C calls into
  _outbound.c): identical datagrams, StreamStats and media timestamps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media import stream as stream_module
from gateway.media.playout import IdlePolicy
from gateway.media.stream import RtpStream, StreamConfig
from tests.media.jitter_impls import (
    outbound_implementation,
    outcome,
    output_implementation,
    playout_implementation,
)
from tests.media.test_playout_parity import observe as observe_queue

ITEMS = ["item_a", "item_b", "item_c"]
PEER = ("192.0.2.10", 40000)


class Boom(Exception):
    pass


class Wire:
    """Recording senders; `fail_with` makes the next call of any of them raise."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.fail_with: type[BaseException] | None = None

    def _record(self, *call: Any) -> None:
        self.log.append(call)
        error, self.fail_with = self.fail_with, None
        if error is not None:
            raise error("scripted")

    def send_frame(self, payload: bytes, marker: bool) -> None:
        self._record("frame", bytes(payload), marker)

    def send_event(self, payload: bytes, marker: bool, offset: int) -> None:
        self._record("event", bytes(payload), marker, offset)

    def send_cn(self, payload: bytes) -> None:
        self._record("cn", bytes(payload))

    def advance(self, samples: int) -> None:
        self._record("advance", samples)


class Side:
    def __init__(self, queue_impl: str, tick_impl: str, config: dict[str, Any]) -> None:
        self.queue = playout_implementation(queue_impl)(
            idle_policy=config["policy"], start_delay_frames=config["delay"], cn_refresh_frames=3
        )
        self.wire = Wire()
        w = self.wire
        self.output = output_implementation(tick_impl)(
            self.queue,
            w.send_frame,
            send_event=w.send_event if config["events"] else None,
            send_comfort_noise=w.send_cn if config["cn"] else None,
            advance=w.advance if config["advance"] else None,
        )
        self.frame = 0

    def observe(self) -> dict[str, Any]:
        out = self.output
        return {
            "log": list(self.wire.log),
            "stats": dataclasses.astuple(out.stats),
            "force_marker": out._force_marker,
            "dtmf_busy": out._dtmf_busy,
            "last_frame": out._last_frame,
            "dtmf_active": out.dtmf.active,
            "queue": observe_queue(self.queue),
        }


def apply(side: Side, op: tuple[Any, ...]) -> Any:
    kind, queue = op[0], side.queue
    if kind == "enqueue":
        return queue.enqueue(op[1], bytes([op[2] & 0xFF]) * op[2])
    if kind == "end_item":
        return queue.end_of_item(op[1])
    if kind == "end_response":
        return queue.end_of_response()
    if kind == "flush":
        return queue.flush()
    if kind == "digits":
        return side.output.send_digits(op[1])
    if kind == "fail":
        side.wire.fail_with = op[1]
        return None
    if kind == "ticks":
        _, count, step = op
        for _ in range(count):
            side.frame += step
            side.output.tick(side.frame, 0.0)
        return None
    raise AssertionError(op)


def run(side: Any, op: tuple[Any, ...]) -> Any:
    return outcome(lambda: apply(side, op))


operations = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from(ITEMS), st.integers(0, 500)),
    st.tuples(st.just("end_item"), st.sampled_from(ITEMS)),
    st.tuples(st.just("end_response")),
    st.tuples(st.just("flush")),
    st.tuples(st.just("digits"), st.sampled_from(["1", "#5", "A", "x"])),
    st.tuples(st.just("fail"), st.sampled_from([Boom, ValueError, OSError])),
    st.tuples(st.just("ticks"), st.integers(1, 15), st.sampled_from([1, 1, 1, 2, 4, 0, -3])),
)
configs = st.fixed_dictionaries(
    {
        "policy": st.sampled_from(list(IdlePolicy)),
        "delay": st.integers(0, 2),
        "events": st.booleans(),
        "cn": st.booleans(),
        "advance": st.booleans(),
    }
)


def check(queue_impl: str, config: dict[str, Any], ops: list[Any]) -> None:
    pure = Side("python", "python", config)
    compiled = Side(queue_impl, "c", config)
    assert compiled.observe() == pure.observe()
    for op in ops:
        expected = run(pure, op)
        assert run(compiled, op) == expected, op
        assert compiled.observe() == pure.observe(), op


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, ops=st.lists(operations, max_size=40))
def test_the_compiled_tick_matches_the_pure_one(config: dict[str, Any], ops: list[Any]) -> None:
    check("c", config, ops)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, ops=st.lists(operations, max_size=40))
def test_the_compiled_tick_over_the_pure_queue(config: dict[str, Any], ops: list[Any]) -> None:
    check("python", config, ops)


# -- through whole streams: the tick's C calls into the compiled outbound path ------------------


class Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((bytes(data), addr))


class StreamSide:
    def __init__(self, name: str, policy: IdlePolicy) -> None:
        saved = stream_module.OutboundPath
        stream_module.OutboundPath = outbound_implementation(name)
        try:
            self.stream = RtpStream(StreamConfig(telephone_event_pt=101))
        finally:
            stream_module.OutboundPath = saved
        out = self.stream._outbound
        out.ssrc, out.seq, out.ts = 0x01020304, 65533, 0xFFFFFE00
        self.transport = Transport()
        self.stream._rtp_transport = self.transport  # type: ignore[assignment]
        self.stream.set_remote(PEER)
        self.queue = playout_implementation(name)(idle_policy=policy)
        stream = self.stream
        self.output = output_implementation(name)(
            self.queue,
            stream.send_frame,
            send_event=stream.send_event,
            send_comfort_noise=stream.send_comfort_noise,
            advance=stream.advance,
        )
        self.frame = 0

    def observe(self) -> dict[str, Any]:
        return {
            "sent": list(self.transport.sent),
            "stats": dataclasses.astuple(self.stream.stats),
            "ts": self.stream._outbound.ts,
            "seq": self.stream._outbound.seq,
            "output": dataclasses.astuple(self.output.stats),
            "queue": observe_queue(self.queue),
        }


stream_operations = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from(ITEMS), st.integers(0, 500)),
    st.tuples(st.just("end_response")),
    st.tuples(st.just("flush")),
    st.tuples(st.just("digits"), st.sampled_from(["1", "*9"])),
    st.tuples(st.just("ticks"), st.integers(1, 15), st.sampled_from([1, 1, 3])),
    st.tuples(st.just("may_send"), st.booleans()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=st.sampled_from(list(IdlePolicy)), ops=st.lists(stream_operations, max_size=30))
def test_the_compiled_tick_sends_through_the_compiled_path_identically(
    policy: IdlePolicy, ops: list[Any]
) -> None:
    sides = [StreamSide("python", policy), StreamSide("c", policy)]
    assert sides[1].output._send_frame.__self__ is sides[1].stream._outbound
    for op in ops:
        results = []
        for side in sides:
            if op[0] == "may_send":
                side.stream._outbound.may_send = op[1]
                results.append(None)
            else:
                results.append(run(side, op))  # type: ignore[arg-type]
        assert results[0] == results[1], op
        assert sides[1].observe() == sides[0].observe(), op
