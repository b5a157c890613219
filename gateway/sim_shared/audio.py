"""Audio helpers of the simulator: bytes per ms of each GA format, decoding to PCM samples,
conversion between the three GA formats (only for the echo reply) and the reply tone.

G.711 goes through gateway/media/g711.py (bit-exact with audioop: tests/media/test_g711.py and
tests/realtime/test_simulator_audio.py), the one import of the simulators into media. Only the
8 <-> 24 kHz rate conversion of audio/pcm still uses audioop.ratecv.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from typing import Any

import numpy as np

from gateway.media import g711

with warnings.catch_warnings():
    # audioop is deprecated in 3.11/3.12 and comes from audioop-lts on >= 3.13 (pyproject).
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

BYTES_PER_MS = {"audio/pcmu": 8, "audio/pcma": 8, "audio/pcm": 48}
G711_CODEC = {"audio/pcmu": g711.PCMU, "audio/pcma": g711.PCMA}


def decode_audio(value: Any) -> bytes | None:
    """A client event's base64 `audio`, strictly decoded; None when it is not base64 (both
    services answer that with an error event, each in its own words)."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def to_pcm16(audio: bytes, fmt: str) -> np.ndarray:
    """int16 samples of raw input audio (8 kHz for G.711, 24 kHz for audio/pcm)."""
    codec = G711_CODEC.get(fmt)
    if codec is not None:
        return g711.decode_samples(codec, audio)
    return np.frombuffer(audio[: len(audio) - len(audio) % 2], dtype="<i2")


def convert(audio: bytes, src: str, dst: str) -> bytes:
    """Re-encode audio between the three GA formats (only for the echo reply)."""
    if src == dst:
        return bytes(audio)
    if src in G711_CODEC and dst in G711_CODEC:
        audio = bytes(audio)  # translate() keeps a bytearray a bytearray
        return g711.ulaw_to_alaw(audio) if src == "audio/pcmu" else g711.alaw_to_ulaw(audio)
    linear = to_pcm16(audio, src).tobytes()
    if src == "audio/pcm":
        linear, _ = audioop.ratecv(linear, 2, 1, 24000, 8000, None)
    if dst == "audio/pcm":
        linear, _ = audioop.ratecv(linear, 2, 1, 8000, 24000, None)
        return linear
    return g711.encode(G711_CODEC[dst], linear)


def tone(ms: int, fmt: str, hz: float = 440.0, level: float = 0.3) -> bytes:
    rate = 24000 if fmt == "audio/pcm" else 8000
    n = rate * ms // 1000
    samples = (np.sin(2 * np.pi * hz * np.arange(n) / rate) * level * 32767).astype("<i2").tobytes()
    if fmt == "audio/pcm":
        return samples
    return g711.encode(G711_CODEC[fmt], samples)


def resample_pcm16(audio: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Mono PCM16LE from one rate to another (the GPT-Live fixture: 24 kHz into the session's
    16 kHz PCM)."""
    if src_rate == dst_rate:
        return bytes(audio)
    converted, _ = audioop.ratecv(bytes(audio), 2, 1, src_rate, dst_rate, None)
    return converted
