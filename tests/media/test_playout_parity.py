"""The compiled playout queue (gateway/media/_playout.c) against the pure one (playout.py
PyPlayoutQueue): the same calls in; identical results (or exception types), statistics and
every query out, after every step (issue 14).

The steps: enqueue (chunk sizes from empty to several frames, across a small bound, bytes and
other buffers, empty and bad item ids), end_of_item, end_of_response, flush, drop_oldest
(negative, zero, partial, beyond the queue), forget (queued and idle items), pause/resume,
next_frame ticks under every idle policy, start_delay_frames and idle_policy changed
mid-call; both codecs, CN refresh periods and levels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media.playout import IdlePolicy
from tests.media.jitter_impls import outcome, playout_implementation

ITEMS = ["item_a", "item_b", "item_c", "item_d"]
POLICIES = list(IdlePolicy)


def observe(queue: Any) -> dict[str, Any]:
    return {
        "stats": dataclasses.astuple(queue.stats),
        "queued": queue.queued_bytes,
        "paused": queue.paused,
        "completed": queue.completed_items,
        "pending": queue.pending_items(),
        "played": [queue.played_bytes(i) for i in ITEMS],
        "complete": [queue.is_complete(i) for i in ITEMS],
        "silence": queue.silence_frame,
        "delay": queue.start_delay_frames,
        "policy": queue.idle_policy,
        "settings": (queue.codec, queue.cn_refresh_frames, queue.cn_level, queue.max_queued_bytes),
    }


def apply(queue: Any, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "enqueue":
        _, item, size, seed, wrap = op
        chunk = bytes((seed + k) & 0xFF for k in range(size))
        return queue.enqueue(item, bytearray(chunk) if wrap else chunk)
    if kind == "end_item":
        return queue.end_of_item(op[1])
    if kind == "end_response":
        return queue.end_of_response()
    if kind == "flush":
        return queue.flush()
    if kind == "drop":
        return queue.drop_oldest(op[1])
    if kind == "forget":
        return queue.forget(op[1])
    if kind == "pause":
        return queue.pause_for_dtmf()
    if kind == "resume":
        return queue.resume_after_dtmf()
    if kind == "ticks":
        return [queue.next_frame() for _ in range(op[1])]
    if kind == "delay":
        queue.start_delay_frames = op[1]
        return None
    if kind == "policy":
        queue.idle_policy = op[1]
        return None
    raise AssertionError(op)


def run(queue: Any, op: tuple[Any, ...]) -> Any:
    return outcome(lambda: apply(queue, op))


item_ids = st.sampled_from([*ITEMS, ""])
enqueues = st.tuples(
    st.just("enqueue"),
    st.sampled_from(ITEMS),
    st.one_of(st.integers(0, 480), st.sampled_from([0, 1, 159, 160, 161, 320, 800])),
    st.integers(0, 255),
    st.booleans(),
)
ticks = st.tuples(st.just("ticks"), st.integers(1, 12))
# Enqueues and ticks weigh three times the rest: what a call mostly does.
operations = st.one_of(
    enqueues,
    enqueues,
    enqueues,
    ticks,
    ticks,
    ticks,
    st.tuples(st.just("enqueue"), st.just(""), st.just(10), st.just(0), st.just(False)),
    st.tuples(st.just("end_item"), st.sampled_from(ITEMS)),
    st.tuples(st.just("end_response")),
    st.tuples(st.just("flush")),
    st.tuples(st.just("drop"), st.integers(-5, 700)),
    st.tuples(st.just("forget"), item_ids),
    st.tuples(st.just("pause")),
    st.tuples(st.just("resume")),
    st.tuples(st.just("delay"), st.integers(-1, 4)),
    st.tuples(st.just("policy"), st.sampled_from(POLICIES)),
)
configs = st.fixed_dictionaries(
    {
        "codec": st.sampled_from(["PCMU", "PCMA"]),
        "idle_policy": st.sampled_from(POLICIES),
        "cn_refresh_frames": st.integers(1, 6),
        "cn_level": st.integers(0, 127),
        "max_queued_bytes": st.sampled_from([160, 500, 1200, 120 * 8000]),
        "start_delay_frames": st.integers(0, 3),
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, ops=st.lists(operations, min_size=1, max_size=60))
def test_the_compiled_queue_matches_the_pure_one(config: dict[str, Any], ops: list[Any]) -> None:
    pure = playout_implementation("python")(**config)
    compiled = playout_implementation("c")(**config)
    assert observe(compiled) == observe(pure)
    for op in ops:
        expected = run(pure, op)
        assert run(compiled, op) == expected, op
        assert observe(compiled) == observe(pure), op


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=30),
    policy=st.sampled_from(POLICIES),
)
def test_a_streamed_reply_plays_out_identically(sizes: list[int], policy: IdlePolicy) -> None:
    """A response as the model streams it: deltas of any size, the end, then ticks to empty
    (the long-run shape the random sequences above rarely reach)."""
    queues = [playout_implementation(n)(idle_policy=policy) for n in ("python", "c")]
    outputs: list[list[Any]] = [[], []]
    for out, queue in zip(outputs, queues, strict=True):
        for n, size in enumerate(sizes):
            queue.enqueue(ITEMS[n % 2], bytes([n & 0xFF]) * size)
            out.append(queue.next_frame())
        queue.end_of_item(ITEMS[0])
        out.append(queue.pending_items())
        queue.end_of_response()
        while queue.queued_bytes:
            out.append(queue.next_frame())
        out.append(queue.next_frame())
        out.append(observe(queue))
    assert outputs[0] == outputs[1]


def test_constructor_errors_match() -> None:
    for kwargs in (
        {"cn_refresh_frames": 0},
        {"cn_level": 128},
        {"cn_level": -1},
        {"max_queued_bytes": 159},
        {"codec": "G722"},
    ):
        results = []
        for name in ("python", "c"):
            try:
                playout_implementation(name)(**kwargs)
                results.append(None)
            except Exception as error:
                results.append((type(error), str(error)))
        assert results[0] == results[1], kwargs
