"""Audio of a GPT-Live session's format (`audio.format`, one object for input and output,
gpt-live-protocol.md section 2): bytes per ms, the silence sample, tones for scripted speech,
and fixture clips (always 24 kHz PCM16, section 9) brought to the session format.

G.711 goes through the simulators' shared helpers (gateway/sim_shared/audio.py, which use
gateway/media/g711.py). Echo replies need no conversion: they are the caller's own bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.sim_shared.audio import convert, resample_pcm16
from gateway.sim_shared.audio import tone as g711_tone

FIXTURE_MAX_S = 30
FIXTURE_RATE = 24000
SILENCE = {"audio/pcmu": b"\xff", "audio/pcma": b"\xd5", "audio/pcm": b"\x00"}


def bytes_per_ms(audio_format: dict[str, Any]) -> int:
    if audio_format["type"] == "audio/pcm":
        return int(audio_format["rate"]) * 2 // 1000
    return int(audio_format["rate"]) // 1000  # G.711: one byte per sample


def silence_byte(audio_format: dict[str, Any]) -> bytes:
    return SILENCE[audio_format["type"]]


def tone(ms: int, audio_format: dict[str, Any], hz: float = 440.0, level: float = 0.3) -> bytes:
    kind = audio_format["type"]
    if kind != "audio/pcm":
        return g711_tone(ms, kind, hz, level)
    rate = int(audio_format["rate"])
    n = rate * ms // 1000
    samples = np.sin(2 * np.pi * hz * np.arange(n) / rate) * level * 32767
    return samples.astype("<i2").tobytes()


def fixture_to_session(clip: bytes, audio_format: dict[str, Any]) -> bytes:
    """A 24 kHz PCM16 fixture in the session's format."""
    kind = audio_format["type"]
    if kind == "audio/pcm":
        return resample_pcm16(clip, FIXTURE_RATE, int(audio_format["rate"]))
    return convert(clip, "audio/pcm", kind)
