"""The simulator's server VAD: an energy detector on 10 ms frames of *audio time* (bytes / rate),
not wall time, so a test that appends audio faster than real time sees the same turns.

What the session does with the verdicts (speech_started, speech_stopped, idle timeout) lives in
input_audio.py; this module only says how loud each frame is and what counts as speech.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gateway.sim_shared.audio import G711_CODEC, to_pcm16

FRAME_MS = 10
# semantic_vad has no threshold on the wire; its eagerness picks the silence that ends a turn.
SEMANTIC_SILENCE_MS = {"high": 300, "medium": 500, "auto": 500, "low": 800}


def vad_settings(
    turn_detection: dict[str, Any] | None, db_at_half: float
) -> tuple[float, int, int]:
    """(speech threshold in dBFS, prefix_padding_ms, silence_duration_ms) of a session's
    turn_detection; `db_at_half` is the level that is speech at threshold 0.5."""
    td = turn_detection or {}
    if td.get("type") == "semantic_vad":
        return db_at_half, 300, SEMANTIC_SILENCE_MS[td.get("eagerness", "auto")]
    threshold = float(td.get("threshold", 0.5))
    # Higher threshold needs louder speech: 0.5 -> db_at_half, each 0.1 is 4 dB.
    db = db_at_half + (threshold - 0.5) * 40
    return db, int(td.get("prefix_padding_ms", 300)), int(td.get("silence_duration_ms", 500))


def frame_levels_db(audio: bytes, fmt: str, frame_bytes: int) -> np.ndarray:
    """RMS level in dBFS of each `frame_bytes` frame of `audio` (a whole number of frames)."""
    samples = to_pcm16(audio, fmt).astype(np.float64)
    frames = samples.reshape(len(audio) // frame_bytes, -1)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return 20 * np.log10(rms / 32768.0 + 1e-12)


# Load mode: every SAMPLE_STEP-th sample of a frame (16 of the 80 in 10 ms of G.711). 5 is
# prime to the 8 kHz rate's usual tone divisors, so a steady tone is not sampled at its zeros.
SAMPLE_STEP = 5
_SQUARES = {
    fmt: tuple(float(s) * s for s in to_pcm16(bytes(range(256)), fmt).tolist())
    for fmt in G711_CODEC
}


def sampled_frame_levels_db(audio: bytes, fmt: str, frame_bytes: int) -> list[float]:
    """`frame_levels_db` estimated on every SAMPLE_STEP-th sample, in plain Python: for speech
    the verdict is the same (tests/realtime/test_simulator_load.py) at a fraction of the cost
    of numpy's fixed overhead per 20 ms append. audio/pcm input falls back to the full one."""
    squares = _SQUARES.get(fmt)
    if squares is None:
        return frame_levels_db(audio, fmt, frame_bytes).tolist()
    lookup = squares.__getitem__
    count = len(range(0, frame_bytes, SAMPLE_STEP))
    levels = []
    for start in range(0, len(audio), frame_bytes):
        mean_square = sum(map(lookup, audio[start : start + frame_bytes : SAMPLE_STEP])) / count
        levels.append(20 * math.log10(math.sqrt(mean_square) / 32768.0 + 1e-12))
    return levels


STARTED = "started"
STOPPED = "stopped"


class SpeechEdges:
    """Where speech starts and stops, from the VAD's per-frame verdicts: at the first voiced
    frame, and after `silence_ms` of unvoiced frames (server_vad's rule). Both simulators run
    it: the Realtime one for speech_started/stopped, the GPT-Live one for caller utterances."""

    __slots__ = ("last_voiced_end_ms", "speaking")

    def __init__(self) -> None:
        self.speaking = False
        self.last_voiced_end_ms = 0

    def frame(self, voiced: bool, end_ms: int, silence_ms: int) -> str | None:
        """STARTED, STOPPED or None for the frame that ends at `end_ms` (audio time)."""
        if voiced:
            self.last_voiced_end_ms = end_ms
            if not self.speaking:
                self.speaking = True
                return STARTED
            return None
        if self.speaking and end_ms - self.last_voiced_end_ms >= silence_ms:
            self.speaking = False
            return STOPPED
        return None

    def reset(self) -> None:
        self.speaking = False
