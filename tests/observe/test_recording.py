"""Stereo recording: which channel has sound when, alignment across gaps, durations, memory."""

from __future__ import annotations

import logging
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.media import g711
from gateway.observe.recording import StereoRecorder

FRAME = 160  # 20 ms at 8 kHz


def _tone(codec: str, samples: int, start: int = 0, freq: float = 440.0) -> bytes:
    t = np.arange(start, start + samples) / 8000
    pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
    return g711.encode(codec, pcm)


def _read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2 and w.getframerate() == 8000
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, dtype="<i2").reshape(-1, 2), w.getnframes()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def _feed(
    rec_fn: Callable[[int, bytes], None],
    codec: str,
    t0: int,
    seconds: float,
    skip: frozenset[int] = frozenset(),
) -> None:
    for i in range(int(seconds * 8000) // FRAME):
        if i not in skip:
            rec_fn(t0 + i * FRAME, _tone(codec, FRAME, i * FRAME))


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_caller_left_then_bot_right(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "call.wav"
    base = 123_456  # media clock does not start at zero
    with StereoRecorder(path, codec, start_time=base) as rec:
        _feed(rec.caller, codec, base, 1.0)  # caller speaks 0-1 s
        _feed(rec.bot, codec, base + 8000, 1.0)  # bot answers 1-2 s
    audio, frames = _read(path)
    assert frames == 16000  # 2.0 s
    left, right = audio[:, 0], audio[:, 1]
    assert _rms(left[:8000]) > 3000 and _rms(right[:8000]) < 50
    assert _rms(left[8000:]) < 50 and _rms(right[8000:]) > 3000
    # Decoded exactly: the recorder adds no gain or offset.
    first = np.frombuffer(g711.decode(codec, _tone(codec, FRAME)), dtype="<i2")
    assert np.array_equal(left[:FRAME], first)


def test_gaps_become_silence_and_keep_alignment(tmp_path: Path) -> None:
    path = tmp_path / "gap.wav"
    rec = StereoRecorder(path, "PCMU")
    _feed(rec.caller, "PCMU", 0, 1.0, skip=frozenset({10, 11}))  # 40 ms lost at 200-240 ms
    _feed(rec.bot, "PCMU", 4000, 0.5)  # bot starts at 0.5 s, overlapping (barge-in)
    rec.close()
    audio, frames = _read(path)
    assert frames == 8000
    left, right = audio[:, 0], audio[:, 1]
    assert _rms(left[1600:1920]) == 0  # the lost packets: digital silence, same place
    assert _rms(left[1920:2240]) > 3000  # audio after the gap did not slide back
    assert _rms(right[:4000]) == 0 and _rms(right[4000:]) > 3000
    assert _rms(left[4000:]) > 3000  # both talk at once after 0.5 s


def test_bot_only_call_and_late_start(tmp_path: Path) -> None:
    path = tmp_path / "late.wav"
    rec = StereoRecorder(path, "PCMU", start_time=0)
    _feed(rec.bot, "PCMU", 16000, 0.5)  # greeting starts 2 s in
    rec.close()
    audio, frames = _read(path)
    assert frames == 20000
    assert _rms(audio[:16000]) == 0
    assert _rms(audio[16000:, 1]) > 3000 and _rms(audio[16000:, 0]) == 0
    assert rec.duration_s == 2.5


def test_memory_bounded_and_late_packets_dropped(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "long.wav", "PCMU", max_lag_samples=800)
    for i in range(500):  # 10 s of caller audio, the bot silent throughout
        rec.caller(i * FRAME, _tone("PCMU", FRAME, i * FRAME))
        assert rec._held <= 2 * 800  # the buffer never grows
    assert rec.frames_written >= 80000 - 2 * 800
    rec.bot(0, _tone("PCMU", FRAME))  # 10 s late: its place is already on disk
    assert rec.dropped_samples == FRAME
    rec.close()
    audio, frames = _read(tmp_path / "long.wav")
    assert frames == 80000
    assert _rms(audio[:, 1]) == 0


def test_big_clock_jump_writes_silence_in_chunks(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "jump.wav", "PCMU", start_time=0)
    rec.caller(0, _tone("PCMU", FRAME))
    rec.caller(8000 * 60, _tone("PCMU", FRAME))  # one minute later (hold)
    assert rec._held <= 2 * rec.max_lag_samples
    assert rec.frames_written >= 8000 * 60 + FRAME - rec.max_lag_samples
    rec.close()
    _, frames = _read(tmp_path / "jump.wav")
    assert frames == 8000 * 60 + FRAME


def test_close_is_idempotent_and_ignores_input_after(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "c.wav", "PCMA")
    rec.caller(0, _tone("PCMA", FRAME))
    rec.close()
    rec.close()
    rec.bot(0, _tone("PCMA", FRAME))
    assert _read(tmp_path / "c.wav")[1] == FRAME


def test_bad_codec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"G\.711"):
        StereoRecorder(tmp_path / "x.wav", "opus")


def test_disk_error_logs_and_stops(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = StereoRecorder(tmp_path / "e.wav", "PCMU", max_lag_samples=160)

    def broken(_data: bytes) -> None:
        raise OSError(28, "No space left on device")

    rec._wav.writeframesraw = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR):
        for i in range(5):
            rec.caller(i * FRAME, _tone("PCMU", FRAME))
        rec.close()
    assert any(getattr(r, "event", "") == "call.recording_failed" for r in caplog.records)
    assert rec.failed


def test_unwritable_path_logs_and_ignores_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.ERROR):
        rec = StereoRecorder(blocker / "sub" / "x.wav", "PCMU", call_id="c1")
    assert rec.failed
    rec.caller(0, _tone("PCMU", FRAME))  # no exception: the call goes on without a recording
    rec.close()
    failed = [r for r in caplog.records if getattr(r, "event", "") == "call.recording_failed"]
    assert failed and "stopped" in failed[0].getMessage()


def test_long_bot_delta_is_placed_whole(tmp_path: Path) -> None:
    # Realtime audio deltas can hold seconds of audio: longer than the lag window.
    rec = StereoRecorder(tmp_path / "delta.wav", "PCMU", start_time=0, max_lag_samples=800)
    rec.caller(0, _tone("PCMU", FRAME))
    rec.bot(800, _tone("PCMU", 16000))  # 2 s in one call, starting at 100 ms
    rec.close()
    audio, frames = _read(tmp_path / "delta.wav")
    assert frames == 16800
    assert rec.dropped_samples == 0
    assert _rms(audio[:800, 1]) == 0 and _rms(audio[800:, 1]) > 3000
    assert _rms(audio[:FRAME, 0]) > 3000 and _rms(audio[FRAME:, 0]) == 0


def test_files_are_private_and_the_header_is_kept_current(tmp_path: Path) -> None:
    import os
    import stat

    from gateway.observe import recording

    path = tmp_path / "rec" / "live.wav"
    rec = StereoRecorder(path, "PCMU", start_time=0, max_lag_samples=800)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    _, frames = _read(path)  # the header is on disk from the start: a crash now still opens
    assert frames == 0
    recording.HEADER_UPDATE_S = 0.0  # every flush updates it (default: at most once a second)
    try:
        _feed(rec.caller, "PCMU", 0, 1.0)
    finally:
        recording.HEADER_UPDATE_S = 1.0
    # Not closed (as after SIGKILL): what went to disk is already described by the header.
    _, frames = _read(path)
    assert frames == rec.frames_written > 0
    rec.close()


def test_repair_fixes_sizes_of_a_recording_cut_off_mid_write(tmp_path: Path) -> None:
    from gateway.observe.recording import repair_recordings, repair_wav

    path = tmp_path / "cut.wav"
    rec = StereoRecorder(path, "PCMU", start_time=0)
    _feed(rec.caller, "PCMU", 0, 1.0)
    rec.close()
    _, frames = _read(path)
    with open(path, "r+b") as f:  # a crash after more audio went out, before the header
        f.seek(0, 2)
        f.write(bytes(4 * 800 + 3))  # 800 frames and a partial one
        f.seek(40)
        f.write(b"\0\0\0\0")
    (tmp_path / "not-a-wav.wav").write_bytes(b"garbage")
    assert repair_recordings(tmp_path) == [path]
    _, repaired = _read(path)
    assert repaired == frames + 800
    assert not repair_wav(path)  # idempotent
