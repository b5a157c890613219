"""The test softphone's audio: WAV files in and out, the received audio on the call's
timeline, and how much of it was voice (gateway/softphone.py `call`)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from gateway.media import g711
from gateway.media.jitter import Frame
from gateway.media.playout import FRAME_SAMPLES

SAMPLE_RATE = 8000
# A 20 ms frame louder than this counts as "non-silent". The gateway's idle audio is digital
# silence (u-law 0xFF decodes to 0, A-law 0xD5 to +-8); line noise from a PBX sits near -60 dBFS
# and speech well above -30 dBFS, so -45 dBFS separates them with margin on both sides.
VOICE_THRESHOLD_DBFS = -45.0
# The jitter buffer does not fill gaps over 1 s (a stall, hold, silence suppression); the
# recorder pads them from arrival time so the recording stays on the call's timeline. Gaps up
# to this much are the buffer's own delay and are left alone.
RECORD_SLACK_S = 0.25


class UsageError(Exception):
    """Bad command line or input file; the message names the option or file (exit 2)."""


def read_wav(path: str | Path) -> bytes:
    """PCM16 little-endian mono samples of an 8 kHz 16-bit mono WAV file; UsageError naming the
    file and what it needs otherwise (the softphone sends G.711, which is 8 kHz by definition)."""
    need = "8000 Hz mono 16-bit PCM WAV"
    fix = f"(convert with: sox {path} -r 8000 -c 1 -b 16 -e signed-integer out.wav)"
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            if wav.getcomptype() != "NONE":
                raise UsageError(f"{path}: compressed WAV ({wav.getcompname()}); need {need} {fix}")
            if (rate, channels, width) != (SAMPLE_RATE, 1, 2):
                raise UsageError(
                    f"{path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; need {need} {fix}"
                )
            return wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a WAV file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except (wave.Error, EOFError) as exc:
        # The wave module only reads PCM (format 1); float or A-law WAVs land here too.
        raise UsageError(f"{path}: not a usable WAV file ({exc}); need {need} {fix}") from None


def write_wav(path: str | Path, pcm16: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm16)


def voiced_seconds(pcm16: bytes, threshold_dbfs: float = VOICE_THRESHOLD_DBFS) -> float:
    """Seconds of 20 ms frames whose RMS level is above `threshold_dbfs`."""
    samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2")
    frames = len(samples) // FRAME_SAMPLES
    if frames == 0:
        return 0.0
    blocks = samples[: frames * FRAME_SAMPLES].astype(np.float64).reshape(frames, FRAME_SAMPLES)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    limit = 32768.0 * 10 ** (threshold_dbfs / 20.0)
    return float(np.count_nonzero(rms > limit)) * FRAME_SAMPLES / SAMPLE_RATE


class Recorder:
    """Received G.711 frames placed on the call's timeline (decoded at the end).

    The jitter buffer already hands on concealed frames as codec silence; what it cannot know
    is time when nothing arrived at all (before the first packet, gaps over its 1 s fill limit),
    so those are padded here from the loop clock measured from the answer."""

    def __init__(self, codec: str, started_at: float) -> None:
        self.codec = codec
        self._started_at = started_at
        self._chunks: list[bytes] = []
        self._samples = 0
        self.padded_samples = 0

    def add(self, frames: list[Frame], now: float) -> None:
        incoming = sum(len(f.payload) for f in frames)
        # Everything released now ends at about `now`; the buffer delay is within the slack.
        expected_start = int((now - self._started_at) * SAMPLE_RATE) - incoming
        gap = expected_start - self._samples
        if gap > RECORD_SLACK_S * SAMPLE_RATE:
            gap -= gap % FRAME_SAMPLES
            self._chunks.append(g711.silence(self.codec, gap))
            self._samples += gap
            self.padded_samples += gap
        for frame in frames:
            self._chunks.append(frame.payload)
        self._samples += incoming

    def pcm16(self) -> bytes:
        return g711.decode(self.codec, b"".join(self._chunks))

    @property
    def seconds(self) -> float:
        return self._samples / SAMPLE_RATE


__all__ = [
    "RECORD_SLACK_S",
    "VOICE_THRESHOLD_DBFS",
    "Recorder",
    "UsageError",
    "read_wav",
    "voiced_seconds",
    "write_wav",
]
