"""PlayoutQueue: exact 20 ms frames, remainders, item ids, played_bytes, flush, markers, padding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media.g711 import PCMA, PCMU
from gateway.media.playout import (
    FRAME_BYTES,
    FrameKind,
    IdlePolicy,
    PlayoutQueue,
)


def audio(n: int, start: int = 0) -> bytes:
    """Distinct non-silence bytes so we can see where each byte went."""
    return bytes((start + i) % 200 for i in range(n))


def drain(q: PlayoutQueue, limit: int = 1000) -> list:
    frames = []
    for _ in range(limit):
        f = q.next_frame()
        if f is None or f.kind is not FrameKind.AUDIO:
            break
        frames.append(f)
    return frames


def test_cuts_exact_frames_and_carries_remainders_across_chunks() -> None:
    q = PlayoutQueue()
    data = audio(1000)
    # Odd chunk sizes, as Realtime deltas come.
    q.enqueue("item1", data[:70])
    q.enqueue("item1", data[70:401])
    q.enqueue("item1", data[401:1000])
    frames = drain(q)
    assert [len(f.payload) for f in frames] == [FRAME_BYTES] * 6  # 960 bytes
    assert b"".join(f.payload for f in frames) == data[:960]
    assert q.queued_bytes == 40  # remainder kept, not padded: the item is not complete
    assert q.played_bytes("item1") == 960
    q.enqueue("item1", data[1000:] + audio(120, 1000))
    (f,) = drain(q)
    assert f.payload == data[960:1000] + audio(120, 1000)


def test_partial_frame_waits_while_item_open_then_pads_at_end_of_item() -> None:
    q = PlayoutQueue()
    q.enqueue("a", audio(100))
    f = q.next_frame()
    assert f is not None and f.kind is FrameKind.SILENCE  # underrun: nothing padded yet
    assert q.stats.underruns == 1
    assert q.queued_bytes == 100
    q.end_of_item("a")
    f = q.next_frame()
    assert f is not None and f.kind is FrameKind.AUDIO
    assert f.payload == audio(100) + b"\xff" * 60
    assert q.played_bytes("a") == 100  # padding is not counted as played
    assert q.stats.padded_frames == 1


def test_padding_uses_alaw_silence_byte() -> None:
    q = PlayoutQueue(codec=PCMA)
    q.enqueue("a", audio(10))
    q.end_of_response()
    f = q.next_frame()
    assert f is not None and f.payload == audio(10) + b"\xd5" * 150
    idle = q.next_frame()
    assert idle is not None and idle.payload == b"\xd5" * 160


def test_frames_span_items_without_padding_in_the_middle_of_a_talkspurt() -> None:
    q = PlayoutQueue()
    q.enqueue("a", audio(250))
    q.end_of_item("a")
    q.enqueue("b", audio(150, 50))
    q.end_of_response()
    frames = drain(q)
    assert len(frames) == 3
    # a's tail (90 bytes) and b's head (70) share a frame: no pad between items.
    assert frames[1].payload == audio(250)[160:] + audio(70, 50)
    assert frames[0].item_id == "a"
    assert frames[1].item_id == "b"
    assert frames[2].payload == audio(150, 50)[70:] + b"\xff" * 80
    assert q.played_bytes("a") == 250
    assert q.played_bytes("b") == 150
    assert q.stats.padded_frames == 1
    assert q.is_complete("a") and q.is_complete("b")
    assert q.completed_items == {"a", "b"}


def test_marker_on_first_frame_of_each_talkspurt_only() -> None:
    q = PlayoutQueue()
    q.enqueue("a", audio(480))
    frames = [q.next_frame() for _ in range(3)]
    assert [f.marker for f in frames] == [True, False, False]
    idle = q.next_frame()
    assert idle is not None and idle.kind is FrameKind.SILENCE and not idle.marker
    q.enqueue("b", audio(320))
    f1, f2 = q.next_frame(), q.next_frame()
    assert (f1.marker, f2.marker) == (True, False)
    assert f1.item_id == "b"


def test_flush_reports_dropped_bytes_per_item_and_the_playing_item() -> None:
    q = PlayoutQueue()
    q.enqueue("a", audio(400))
    q.enqueue("b", audio(300))
    drain_n = [q.next_frame() for _ in range(2)]  # 320 bytes of a played
    assert all(f.item_id == "a" for f in drain_n)
    report = q.flush()
    assert report.dropped_bytes == {"a": 80, "b": 300}
    assert report.total_dropped == 380
    assert report.playing_item_id == "a"
    assert report.playing_played_bytes == 320
    assert q.queued_bytes == 0
    assert q.played_bytes("a") == 320  # still known after the flush (truncate needs it)
    f = q.next_frame()
    assert f is not None and f.kind is FrameKind.SILENCE
    q.enqueue("c", audio(160))
    f = q.next_frame()
    assert f.marker and f.item_id == "c"


def test_flush_on_empty_queue() -> None:
    report = PlayoutQueue().flush()
    assert report.dropped_bytes == {}
    assert report.playing_item_id is None
    assert report.playing_played_bytes == 0


def test_pause_for_dtmf_holds_audio() -> None:
    q = PlayoutQueue()
    q.enqueue("a", audio(320))
    assert q.next_frame().kind is FrameKind.AUDIO
    q.pause_for_dtmf()
    for _ in range(5):
        assert q.next_frame().kind is FrameKind.SILENCE
    assert q.played_bytes("a") == 160
    q.resume_after_dtmf()
    f = q.next_frame()
    assert f.kind is FrameKind.AUDIO and f.payload == audio(320)[160:]
    assert f.marker  # audio after the pause is a new talkspurt


def test_idle_policy_nothing() -> None:
    q = PlayoutQueue(idle_policy=IdlePolicy.NOTHING)
    assert q.next_frame() is None
    q.enqueue("a", audio(160))
    assert q.next_frame().kind is FrameKind.AUDIO
    assert q.next_frame() is None


def test_idle_policy_comfort_noise_at_talkspurt_end_then_every_n_frames() -> None:
    q = PlayoutQueue(idle_policy=IdlePolicy.COMFORT_NOISE, cn_refresh_frames=5, cn_level=60)
    q.enqueue("a", audio(160))
    assert q.next_frame().kind is FrameKind.AUDIO
    kinds = []
    for _ in range(11):
        f = q.next_frame()
        kinds.append(None if f is None else f.kind)
    cn = FrameKind.COMFORT_NOISE
    assert kinds == [cn, None, None, None, None, cn, None, None, None, None, cn]
    q2 = PlayoutQueue(idle_policy=IdlePolicy.COMFORT_NOISE)
    f = q2.next_frame()
    assert f is not None and f.kind is cn and f.payload == bytes([70])  # RFC 3389: level byte


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="cn_level"):
        PlayoutQueue(cn_level=200)
    with pytest.raises(ValueError, match="cn_refresh_frames"):
        PlayoutQueue(cn_refresh_frames=0)
    with pytest.raises(ValueError, match="item_id"):
        PlayoutQueue().enqueue("", b"x")


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.sampled_from(["i1", "i2", "i3"]), st.integers(min_value=0, max_value=700)),
        min_size=1,
        max_size=20,
    ),
    codec=st.sampled_from([PCMU, PCMA]),
)
def test_property_bytes_conserved_and_frames_exact(
    chunks: list[tuple[str, int]], codec: str
) -> None:
    q = PlayoutQueue(codec=codec)
    sent: dict[str, int] = {}
    stream = bytearray()
    pos = 0
    for item, n in chunks:
        data = audio(n, pos)
        pos += n
        q.enqueue(item, data)
        sent[item] = sent.get(item, 0) + n
        stream += data
    q.end_of_response()
    out = bytearray()
    frames = drain(q, limit=200)
    for i, f in enumerate(frames):
        assert len(f.payload) == FRAME_BYTES
        assert f.marker == (i == 0)
        out += f.payload
    total = len(stream)
    assert len(frames) == -(-total // FRAME_BYTES)
    assert out[:total] == stream
    # Only the last frame may carry padding.
    assert set(out[total:]) <= {0xFF if codec == PCMU else 0xD5}
    for item, n in sent.items():
        assert q.played_bytes(item) == n
    assert q.queued_bytes == 0


def test_end_of_response_marks_items_already_played_complete() -> None:
    q = PlayoutQueue()
    q.enqueue("a", audio(160))
    assert q.next_frame().item_id == "a"
    assert not q.is_complete("a")
    q.end_of_response()
    assert q.completed_items == {"a"}


def test_queue_is_bounded_and_the_overflowing_item_is_cut_not_holed() -> None:
    """The model streams faster than real time; past the bound, the rest of that item is
    dropped (counted), never queued with a hole in it; the next item plays again."""
    q = PlayoutQueue(max_queued_bytes=1600)
    assert q.enqueue("a", b"\x01" * 960)
    assert not q.enqueue("a", b"\x02" * 1000)  # over the bound
    # Room again (a frame went out), but the cut item stays cut.
    q.next_frame()
    assert not q.enqueue("a", b"\x03" * 100)
    assert q.stats.overflow_bytes == 1100 and q.stats.overflow_items == 1
    assert q.enqueue("b", b"\x04" * 160)
    payloads = []
    while (frame := q.next_frame()) is not None and frame.kind.value == "audio":
        payloads.append(frame.payload)
    assert b"\x02" not in b"".join(payloads) and b"\x03" not in b"".join(payloads)
    assert b"".join(payloads).endswith(b"\x04" * 160)


def test_default_bound_is_two_minutes_of_audio() -> None:
    q = PlayoutQueue()
    assert q.max_queued_bytes == 120 * 8000
    for _ in range(120):
        assert q.enqueue("long", b"\x01" * 8000)
    assert not q.enqueue("long", b"\x01" * 160)
    with pytest.raises(ValueError, match="max_queued_bytes"):
        PlayoutQueue(max_queued_bytes=0)


def test_drop_oldest_keeps_the_newest_audio_unplayed() -> None:
    """A real-time backend's shallow queue (GPT-Live): the oldest excess goes, unplayed."""
    q = PlayoutQueue()
    q.enqueue("a", b"\x01" * 300)
    q.enqueue("b", b"\x02" * 300)
    assert q.drop_oldest(400) == 400
    assert q.queued_bytes == 200
    assert q.played_bytes("a") == 0 and q.played_bytes("b") == 0
    assert q.stats.dropped_bytes == 400
    frame = q.next_frame()
    assert frame is not None and frame.payload == b"\x02" * 160
    assert q.drop_oldest(1000) == 40  # never more than is queued
    assert q.queued_bytes == 0


def test_start_delay_holds_a_new_talkspurt_unless_its_audio_is_complete() -> None:
    q = PlayoutQueue(start_delay_frames=2)
    speech = bytes(range(1, 161)) * 3
    q.enqueue("a", speech)
    kinds = [q.next_frame().kind for _ in range(5)]  # type: ignore[union-attr]
    assert kinds == [FrameKind.SILENCE, FrameKind.SILENCE] + [FrameKind.AUDIO] * 3
    assert q.stats.held_frames == 2
    assert q.next_frame().kind is FrameKind.SILENCE  # type: ignore[union-attr]
    # A complete item (a short reply that is all there) is not held: nothing more will come.
    q.enqueue("b", speech[:160])
    q.end_of_item("b")
    frame = q.next_frame()
    assert frame is not None and frame.kind is FrameKind.AUDIO and frame.marker


def test_an_empty_queue_restarts_the_start_delay_but_a_dtmf_pause_does_not() -> None:
    """The empty-queue fast path of next_frame (issue 14) does what the full path did: an idle
    tick restarts the hold count of the next talkspurt, an idle tick during a DTMF pause keeps
    it, and neither counts an underrun."""
    speech = bytes(range(1, 161)) * 3
    q = PlayoutQueue(start_delay_frames=2)
    q.enqueue("a", speech)
    assert q.next_frame().kind is FrameKind.SILENCE  # type: ignore[union-attr]  # held 1 of 2
    q.flush()
    assert q.next_frame().kind is FrameKind.SILENCE  # type: ignore[union-attr]  # empty: restart
    q.enqueue("b", speech)
    kinds = [q.next_frame().kind for _ in range(3)]  # type: ignore[union-attr]
    assert kinds == [FrameKind.SILENCE, FrameKind.SILENCE, FrameKind.AUDIO]  # held 2 again

    q = PlayoutQueue(start_delay_frames=2)
    q.enqueue("a", speech)
    assert q.next_frame().kind is FrameKind.SILENCE  # type: ignore[union-attr]  # held 1 of 2
    q.flush()
    q.pause_for_dtmf()
    assert q.next_frame().kind is FrameKind.SILENCE  # type: ignore[union-attr]  # paused: kept
    q.resume_after_dtmf()
    q.enqueue("b", speech)
    kinds = [q.next_frame().kind for _ in range(2)]  # type: ignore[union-attr]
    assert kinds == [FrameKind.SILENCE, FrameKind.AUDIO]  # only the second held tick is left
    assert q.stats.underruns == 0
