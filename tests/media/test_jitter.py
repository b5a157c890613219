"""Jitter/reorder buffer with a fake clock: order, concealment, late/duplicate handling, SSRC
changes, wrap-around, adaptive delay, and a lossy/jittery network simulation."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from gateway.media.jitter import Frame, JitterBuffer
from gateway.media.rtp import RtpPacket
from tests.media.jitter_impls import IMPLEMENTATIONS, implementation

TICK = 0.020


@pytest.fixture(autouse=True, params=IMPLEMENTATIONS)
def jitter_implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs against the pure class and the compiled one (issue 14)."""
    monkeypatch.setitem(globals(), "JitterBuffer", implementation(request.param))


def pkt(seq: int, ts: int, payload: bytes, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload)


def tagged(i: int, samples: int = 160) -> bytes:
    """A payload that identifies packet i and never equals the silence byte."""
    return bytes(((i >> 7) & 0x7F, i & 0x7F)) + bytes(((i % 100) + 1,)) * (samples - 2)


def drain(jb: JitterBuffer, start: float, end: float) -> list[Frame]:
    out: list[Frame] = []
    t = start
    for _ in range(int((end - start) / 0.005) + 2):
        if t > end:
            break
        out.extend(jb.pop_ready(t))
        t += 0.005
    return out


def assert_contiguous(frames: list[Frame], start: int = 0) -> None:
    expected = start
    for frame in frames:
        assert frame.media_time == expected
        expected += len(frame.payload)


def test_in_order_stream_is_released_after_the_window() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    jb.push(pkt(10, 1000, tagged(0)), 0.0)
    assert jb.pop_ready(0.039) == []
    frames = jb.pop_ready(0.040)
    assert [f.payload for f in frames] == [tagged(0)]
    assert frames[0].media_time == 0 and not frames[0].concealed
    for i in range(1, 5):
        jb.push(pkt(10 + i, 1000 + 160 * i, tagged(i)), TICK * i)
    frames = drain(jb, 0.041, 0.2)
    assert [f.payload for f in frames] == [tagged(i) for i in range(1, 5)]
    assert_contiguous(frames, 160)


def test_reordered_packets_come_out_in_order() -> None:
    jb = JitterBuffer()
    order = [0, 2, 1, 3, 5, 4]
    for n, i in enumerate(order):
        jb.push(pkt(i, 160 * i, tagged(i)), 0.001 * n)
    frames = drain(jb, 0.0, 0.5)
    assert [f.payload for f in frames] == [tagged(i) for i in range(6)]
    assert jb.stats.reordered == 2
    assert jb.stats.concealed_frames == 0


@pytest.mark.parametrize(("codec", "silence"), [("PCMU", 0xFF), ("PCMA", 0xD5)])
def test_single_loss_is_concealed_at_its_deadline(codec: str, silence: int) -> None:
    jb = JitterBuffer(codec, min_delay_ms=40)
    for i in (0, 1, 3, 4):
        jb.push(pkt(i, 160 * i, tagged(i)), TICK * i)
    # Packet 2 is due at 2 * 20 + 40 = 80 ms: concealed then, not when packet 3 plays.
    frames = jb.pop_ready(0.080)
    assert [f.concealed for f in frames] == [False, False, True]
    assert frames[2].payload == bytes((silence,)) * 160
    frames += drain(jb, 0.081, 0.3)
    assert [f.payload for f in frames] == [
        tagged(0),
        tagged(1),
        bytes((silence,)) * 160,
        tagged(3),
        tagged(4),
    ]
    assert_contiguous(frames)
    assert jb.stats.concealed_frames == 1


def test_late_packet_is_dropped_counted_and_widens_the_window() -> None:
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=200)
    for i in (0, 1, 3):
        jb.push(pkt(i, 160 * i, tagged(i)), TICK * i)
    frames = drain(jb, 0.0, 0.085)
    assert frames[-1].concealed  # slot of packet 2 concealed at 80 ms
    jb.push(pkt(2, 320, tagged(2)), 0.100)  # 60 ms after its nominal time, 20 ms too late
    assert jb.stats.late == 1
    assert jb.delay_ms == pytest.approx(60.0, abs=0.5)
    frames += drain(jb, 0.086, 0.3)
    assert tagged(2) not in [f.payload for f in frames]
    assert_contiguous(frames)


def test_duplicates_are_dropped_before_and_after_release() -> None:
    jb = JitterBuffer()
    jb.push(pkt(0, 0, tagged(0)), 0.0)
    jb.push(pkt(0, 0, tagged(0)), 0.001)  # while buffered
    frames = drain(jb, 0.0, 0.1)
    jb.push(pkt(0, 0, tagged(0)), 0.2)  # after release: a duplicate, not "late"
    assert jb.stats.duplicates == 2
    jb.push(pkt(1, 0, tagged(0)), 0.2)  # same timestamp under a new seq, after release: late
    assert (jb.stats.duplicates, jb.stats.late) == (2, 1)
    jb.push(pkt(2, 160, tagged(1)), 0.21)
    jb.push(pkt(3, 160, tagged(1)), 0.21)  # same timestamp under a new seq, still buffered
    assert jb.stats.duplicates == 3
    frames += drain(jb, 0.2, 0.5)
    assert [f.payload for f in frames] == [tagged(0), tagged(1)]


def test_any_ptime_from_10_to_60_ms_is_accepted() -> None:
    jb = JitterBuffer(max_delay_ms=200)
    sizes = [80, 240, 480, 160, 80, 480, 240]  # 10, 30, 60, 20, 10, 60, 30 ms
    ts = 5000
    t = 0.0
    for i, size in enumerate(sizes):
        jb.push(pkt(i, ts, tagged(i, size)), t)
        ts += size
        t += size / 8000
    frames = drain(jb, 0.0, 1.0)
    assert [f.payload for f in frames] == [tagged(i, s) for i, s in enumerate(sizes)]
    assert_contiguous(frames)
    assert jb.stats.concealed_frames == 0


def test_invalid_payload_sizes_are_rejected() -> None:
    jb = JitterBuffer(max_packet_ms=120)
    jb.push(pkt(0, 0, b""), 0.0)
    jb.push(pkt(1, 0, b"\x01" * 961), 0.0)
    assert jb.stats.invalid == 2
    assert drain(jb, 0.0, 0.5) == []


def test_underrun_then_burst_loses_nothing() -> None:
    # A 200 ms network stall: the buffer runs dry, nothing is invented, and when the stalled
    # packets arrive in a burst they are played (re-anchored), not dropped as late.
    jb = JitterBuffer(min_delay_ms=40)
    frames: list[Frame] = []
    for i in range(5):
        jb.push(pkt(i, 160 * i, tagged(i)), TICK * i)
        frames += jb.pop_ready(TICK * i)
    frames += drain(jb, 0.1, 0.3)
    assert len(frames) == 5 and jb.stats.underruns == 1
    for i in range(5, 15):
        jb.push(pkt(i, 160 * i, tagged(i)), 0.300 + 0.0001 * i)
    # The burst drains within one (stall-widened) window of its arrival instead of at real-time
    # pace, which would keep the stall as permanent extra latency.
    window = jb.delay_ms / 1000
    assert window < 0.2
    frames += drain(jb, 0.3, 0.3015 + window + 0.006)  # drain steps by 5 ms
    assert [f.payload for f in frames] == [tagged(i) for i in range(15)]
    assert jb.stats.late == 0 and jb.stats.concealed_frames == 0
    assert_contiguous(frames)


def test_silence_suppression_gap_is_filled_up_to_max_gap() -> None:
    jb = JitterBuffer(max_gap_ms=1000)
    jb.push(pkt(0, 0, tagged(0)), 0.0)
    frames = drain(jb, 0.0, 0.1)
    # DTX: 400 ms later the next talkspurt, timestamps moved on with real time.
    jb.push(pkt(1, 160 + 3200, tagged(1)), 0.420)
    frames += drain(jb, 0.1, 0.6)
    assert [f.concealed for f in frames] == [False] + [True] * 20 + [False]
    assert_contiguous(frames)


def test_timestamp_jump_beyond_max_gap_resyncs_without_fill_or_stall() -> None:
    jb = JitterBuffer(min_delay_ms=40, max_gap_ms=1000)
    jb.push(pkt(0, 0, tagged(0)), 0.0)
    frames = drain(jb, 0.0, 0.1)
    jb.push(pkt(1, 8000 * 3600, tagged(1)), 0.120)  # ts jumps an hour ahead
    frames += drain(jb, 0.1, 0.165)  # due at arrival + 40 ms, not in an hour
    assert [f.payload for f in frames] == [tagged(0), tagged(1)]
    assert jb.stats.resyncs == 1
    # And a jump backwards (sender reset its timestamps, same SSRC) is followed too.
    jb.push(pkt(2, 100, tagged(2)), 0.140)
    frames += drain(jb, 0.165, 0.3)
    assert [f.payload for f in frames] == [tagged(0), tagged(1), tagged(2)]
    assert_contiguous(frames)


def test_sequence_jump_is_believed_only_when_confirmed() -> None:
    jb = JitterBuffer()
    jb.push(pkt(100, 0, tagged(0)), 0.0)
    jb.push(pkt(9000, 160, tagged(1)), 0.02)  # stray: dropped
    assert jb.stats.invalid == 1
    jb.push(pkt(101, 160, tagged(2)), 0.02)
    jb.push(pkt(20000, 320, tagged(3)), 0.04)  # restart...
    jb.push(pkt(20001, 480, tagged(4)), 0.06)  # ...confirmed
    frames = drain(jb, 0.0, 0.5)
    assert [f.payload for f in frames] == [tagged(0), tagged(2), tagged(3), tagged(4)]
    assert jb.stats.resyncs == 1
    assert_contiguous(frames)


def test_ssrc_change_continues_media_time_and_drops_stragglers() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    for i in range(3):
        jb.push(pkt(500 + i, 7000 + 160 * i, tagged(i), ssrc=1), TICK * i)
    frames = jb.pop_ready(0.045)  # one frame out, two still buffered
    # Failover: a new SSRC with unrelated seq/ts. What the old source left is released at once.
    jb.push(pkt(9, 123456, tagged(10), ssrc=2), 0.050)
    frames += jb.pop_ready(0.050)
    assert [f.payload for f in frames] == [tagged(0), tagged(1), tagged(2)]
    jb.push(pkt(4, 7000 + 160 * 4, tagged(4), ssrc=1), 0.055)  # old source straggler
    jb.push(pkt(10, 123456 + 160, tagged(11), ssrc=2), 0.070)
    frames += drain(jb, 0.05, 0.3)
    assert [f.payload for f in frames] == [tagged(i) for i in (0, 1, 2, 10, 11)]
    assert jb.stats.ssrc_changes == 1 and jb.stats.late == 1
    assert_contiguous(frames)
    # No stall: the new source's first frame was due at its arrival + the window.
    jb2 = JitterBuffer(min_delay_ms=40)
    jb2.push(pkt(0, 0, tagged(0), ssrc=1), 0.0)
    jb2.pop_ready(0.04)
    jb2.push(pkt(77, 999, tagged(1), ssrc=2), 0.06)
    assert [f.payload for f in jb2.pop_ready(0.100)] == [tagged(1)]


def test_sequence_and_timestamp_wrap() -> None:
    jb = JitterBuffer()
    seq0, ts0 = 65530, 0xFFFFFFFF - 160 * 5
    order = list(range(12))
    order[5], order[6] = order[6], order[5]  # reorder right across the wrap
    for n, i in enumerate(order):
        if i == 8:
            continue  # lost just after the wrap
        jb.push(pkt(seq0 + i, ts0 + 160 * i, tagged(i)), TICK * n)
    frames = drain(jb, 0.0, 0.6)
    expected = [tagged(i) if i != 8 else b"\xff" * 160 for i in range(12)]
    assert [f.payload for f in frames] == expected
    assert jb.stats.concealed_frames == 1 and jb.stats.late == 0
    assert_contiguous(frames)


def test_window_adapts_to_jitter_within_bounds() -> None:
    rng = random.Random(7)
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=120)
    assert jb.delay_ms == 40
    t = 0.0
    for i in range(300):  # 0-100 ms of jitter
        jb.push(pkt(i, 160 * i, tagged(i)), TICK * i + rng.uniform(0, 0.1))
        jb.pop_ready(TICK * i)
        t = TICK * i
    high = jb.delay_ms
    assert 60 < high <= 120
    for i in range(300, 900):  # a clean network again: the window decays back to the minimum
        jb.push(pkt(i, 160 * i, tagged(i)), TICK * i + 0.2)
        jb.pop_ready(TICK * i + 0.2)
        t = TICK * i
    assert jb.delay_ms < high
    assert jb.delay_ms == pytest.approx(40.0, abs=1.0)
    assert t > 0


def test_constructor_validates_bounds() -> None:
    with pytest.raises(ValueError, match="min_delay_ms"):
        JitterBuffer(min_delay_ms=300, max_delay_ms=200)
    with pytest.raises(ValueError, match=r"G\.711"):
        JitterBuffer("G729")


# -- network simulation ----------------------------------------------------------------------


@dataclass
class Sent:
    index: int  # position in the audio timeline (across both sources)
    packet: RtpPacket
    send_time: float


def _simulate(
    seed: int, min_delay_ms: float, max_delay_ms: float = 200
) -> tuple[JitterBuffer, list[Frame], set[int], int]:
    rng = random.Random(seed)
    n_first, n_second = 700, 700
    sent: list[Sent] = []
    # Source 1 starts just below both wraps; source 2 (after an SBC failover and a 100 ms gap)
    # has an unrelated SSRC, sequence and timestamp.
    for i in range(n_first):
        packet = pkt(65536 - 300 + i, 0xFFFFFFFF - 160 * 400 + 160 * i, tagged(i), ssrc=0xAAAA)
        sent.append(Sent(i, packet, TICK * i))
    for j in range(n_second):
        i = n_first + j
        packet = pkt(1234 + j, 777 + 160 * j, tagged(i), ssrc=0xBBBB)
        sent.append(Sent(i, packet, TICK * i + 0.100))
    edges = {0, n_first - 1, n_first, n_first + n_second - 1}
    lost = {s.index for s in sent if s.index not in edges and rng.random() < 0.05}
    arrivals: list[tuple[float, int, RtpPacket]] = []
    duplicates = 0
    for s in sent:
        if s.index in lost:
            continue
        delay = 0.005 + rng.uniform(0, 0.030)  # 30 ms of jitter
        if rng.random() < 0.10 and s.index not in edges:
            # Reordered: arrives after its successor. Not a source's first packet: audio from
            # before the first released frame can only be dropped, there is no slot for it.
            delay += 0.025
        arrivals.append((s.send_time + delay, s.index, s.packet))
        if rng.random() < 0.02:
            duplicates += 1
            arrivals.append((s.send_time + delay + rng.uniform(0, 0.06), s.index, s.packet))
    arrivals.sort(key=lambda a: a[0])
    jb = JitterBuffer(min_delay_ms=min_delay_ms, max_delay_ms=max_delay_ms)
    frames: list[Frame] = []
    tick = 0.0
    for arrival, _, packet in arrivals:
        while tick <= arrival:  # the 20 ms release tick runs between arrivals
            frames += jb.pop_ready(tick)
            tick += TICK
        jb.push(packet, arrival)
    end = arrivals[-1][0] + 0.5
    while tick <= end:
        frames += jb.pop_ready(tick)
        tick += TICK
    return jb, frames, lost, duplicates


@pytest.mark.parametrize("min_delay_ms", [40, 60])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_network_output_is_continuous_and_concealment_matches_loss(
    seed: int, min_delay_ms: float
) -> None:
    # 5% loss, 10% reorder, 2% duplication, 30 ms jitter, an SSRC change and both wraps. The
    # default 40 ms window (adapting to ~3 x 10-15 ms of measured jitter) and a 60 ms one, which
    # covers the worst arrival outright (30 ms jitter + 25 ms reorder): no packet is late and
    # every concealed frame is a lost packet.
    jb, frames, lost, duplicates = _simulate(seed, min_delay_ms=min_delay_ms)
    assert lost and duplicates
    expected = [b"\xff" * 160 if i in lost else tagged(i) for i in range(1400)]
    assert [f.payload for f in frames] == expected
    assert [f.concealed for f in frames] == [i in lost for i in range(1400)]
    assert_contiguous(frames)
    stats = jb.stats
    assert stats.concealed_frames == len(lost)
    assert stats.late == 0
    assert stats.duplicates == duplicates
    assert stats.reordered > 50
    assert stats.ssrc_changes == 1


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_simulated_network_with_too_small_window_accounts_for_every_slot(seed: int) -> None:
    # No window at all (0 ms, no adaptation): reordered packets miss their
    # slot, are counted late and their slot is concealed, so concealed == lost + late and the
    # audio handed on still covers every slot exactly once, in order.
    jb, frames, lost, _ = _simulate(seed, min_delay_ms=0, max_delay_ms=0)
    assert jb.stats.late > 0
    assert_contiguous(frames)
    assert len(frames) == 1400
    assert jb.stats.concealed_frames == len(lost) + jb.stats.late
    played = [f.payload for f in frames if not f.concealed]
    assert played == sorted(played, key=lambda p: (p[0] << 7) | p[1])


def test_buffer_is_bounded() -> None:
    """Packets that are not yet due pile up only to `max_packets`; the rest are counted."""
    jb = JitterBuffer(max_packets=8, max_delay_ms=200)
    for seq in range(20):  # reordered far into the future: nothing is due yet
        jb.push(RtpPacket(0, 100 + seq, 10 * 160 + 160 * seq, 1, b"\x01" * 160), 0.0)
    assert jb.stats.overflow == 12
    assert jb.buffered_ms == 8 * 20
    with pytest.raises(ValueError, match="max_packets"):
        JitterBuffer(max_packets=0)


def test_nothing_due_returns_a_fresh_list_and_still_marks_the_underrun() -> None:
    """The nothing-due fast path of pop_ready (issue 14) hands out a list the caller owns (a
    later flush must not land in it) and does not skip the underrun mark once time passes."""
    jb = JitterBuffer(min_delay_ms=20)
    jb.push(pkt(1, 0, tagged(1)), 1.000)
    first = jb.pop_ready(1.005)  # due at 1.020: nothing yet
    assert first == []
    released = jb.pop_ready(1.020)
    assert [f.payload for f in released] == [tagged(1)]
    early = jb.pop_ready(1.030)  # next slot (1.040) not due: fast path, no underrun yet
    assert early == [] and early is not first and jb.stats.underruns == 0
    jb.push(pkt(2, 160, tagged(2), ssrc=2), 1.031)  # SSRC change flushes into the ready list
    assert early == [] and first == []
    jb.pop_ready(1.040)  # whatever it releases, the lists handed out before stay empty
    assert early == [] and first == []
    jb2 = JitterBuffer(min_delay_ms=20)
    jb2.push(pkt(1, 0, tagged(1)), 1.000)
    assert len(jb2.pop_ready(1.020)) == 1
    assert jb2.pop_ready(1.035) == [] and jb2.stats.underruns == 0
    assert jb2.pop_ready(1.040) == [] and jb2.stats.underruns == 1  # ran dry at its slot


def test_a_packet_with_a_far_off_timestamp_cannot_make_hours_of_silence() -> None:
    """An older sequence number with a timestamp 2**31 ahead (or behind) is dropped as invalid:
    buffered, it moved the schedule back by days and pop_ready concealed the distance (13
    million frames from one datagram). A forward step in sequence with it re-anchors."""
    for far in (2**31 - 1, -(2**31) + 1, 9000, -9000):
        jb = JitterBuffer()
        jb.push(pkt(100, 1000, tagged(0)), 0.0)
        jb.push(pkt(99, 1000 + far, tagged(1)), 0.001)
        assert jb.stats.invalid == 1
        frames = jb.pop_ready(1e12)
        assert [f.payload for f in frames] == [tagged(0)]
    jb = JitterBuffer()
    jb.push(pkt(100, 1000, tagged(0)), 0.0)
    jb.push(pkt(101, 1000 - 9000, tagged(1)), 0.001)  # forward in sequence, timestamps reset
    assert jb.stats.resyncs == 1 and jb.stats.invalid == 0
    frames = jb.pop_ready(1e12)
    assert [f.payload for f in frames] == [tagged(0), tagged(1)]
    assert sum(f.samples for f in frames) == 320
