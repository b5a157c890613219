"""Audio helpers of the simulator: bytes per ms of each GA format, decoding to PCM samples,
conversion between the three GA formats (only for the echo reply) and the reply tone."""

from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():
    # audioop is deprecated in 3.11/3.12 and comes from audioop-lts on >= 3.13 (pyproject).
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

BYTES_PER_MS = {"audio/pcmu": 8, "audio/pcma": 8, "audio/pcm": 48}


def to_pcm16(audio: bytes, fmt: str) -> np.ndarray:
    """int16 samples of raw input audio (8 kHz for G.711, 24 kHz for audio/pcm)."""
    if fmt == "audio/pcmu":
        linear = audioop.ulaw2lin(audio, 2)
    elif fmt == "audio/pcma":
        linear = audioop.alaw2lin(audio, 2)
    else:
        linear = audio[: len(audio) - len(audio) % 2]
    return np.frombuffer(linear, dtype="<i2")


def convert(audio: bytes, src: str, dst: str) -> bytes:
    """Re-encode audio between the three GA formats (only for the echo reply)."""
    if src == dst:
        return bytes(audio)
    linear = to_pcm16(audio, src).tobytes()
    if src == "audio/pcm":
        linear, _ = audioop.ratecv(linear, 2, 1, 24000, 8000, None)
    if dst == "audio/pcm":
        linear, _ = audioop.ratecv(linear, 2, 1, 8000, 24000, None)
        return linear
    return audioop.lin2ulaw(linear, 2) if dst == "audio/pcmu" else audioop.lin2alaw(linear, 2)


def tone(ms: int, fmt: str, hz: float = 440.0, level: float = 0.3) -> bytes:
    rate = 24000 if fmt == "audio/pcm" else 8000
    n = rate * ms // 1000
    samples = (np.sin(2 * np.pi * hz * np.arange(n) / rate) * level * 32767).astype("<i2").tobytes()
    if fmt == "audio/pcm":
        return samples
    return audioop.lin2ulaw(samples, 2) if fmt == "audio/pcmu" else audioop.lin2alaw(samples, 2)
