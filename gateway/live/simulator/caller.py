"""The caller's side of a simulated GPT-Live session: utterances found in the input audio by the
simulators' shared energy VAD and speech edges (gateway/sim_shared/vad.py, `SpeechEdges`, on
audio time, the same rule as the Realtime simulator's server VAD), with the utterance's own bytes kept so the reply can echo them byte for
byte.

`CallerSpeech` is pure: `feed(audio)` returns what happened in that audio, positions in ms of
the session clock (input audio time). An utterance starts `prefix_ms` before its first voiced
10 ms frame and ends after `silence_ms` of unvoiced frames, like server_vad's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sim_shared.vad import (
    FRAME_MS,
    STARTED,
    STOPPED,
    SpeechEdges,
    frame_levels_db,
    sampled_frame_levels_db,
)

# An utterance longer than this is ended where it stands (bounded memory per session).
MAX_UTTERANCE_MS = 60_000


def _full_levels(audio: bytes, fmt: str, frame_bytes: int) -> list[float]:
    return frame_levels_db(audio, fmt, frame_bytes).tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    start_ms: int


@dataclass(frozen=True, slots=True)
class Utterance:
    index: int  # 1-based
    start_ms: int
    end_ms: int
    audio: bytes  # the input bytes of [start_ms, end_ms), exactly as appended


class CallerSpeech:
    def __init__(
        self,
        audio_format: str,
        bytes_per_ms: int,
        threshold_db: float,
        prefix_ms: int = 300,
        silence_ms: int = 500,
        sampled: bool = False,
    ) -> None:
        self.format = audio_format
        self.bytes_per_ms = bytes_per_ms
        self.threshold_db = threshold_db
        self.prefix_ms = prefix_ms
        self.silence_ms = silence_ms
        self.frame_bytes = bytes_per_ms * FRAME_MS
        # Load mode: levels from a few samples per frame (same verdict on speech, cheaper).
        self._levels = sampled_frame_levels_db if sampled else _full_levels
        self.total_bytes = 0  # input audio so far: the session clock
        self._edges = SpeechEdges()
        self.utterances = 0
        self._residual = b""
        # Recent audio: the last prefix_ms while quiet, the whole utterance while speaking.
        self._recent = bytearray()
        self._recent_start = 0  # byte position of _recent[0]
        self._speech_start_byte = 0

    @property
    def now_ms(self) -> int:
        return self.total_bytes // self.bytes_per_ms

    def feed(self, audio: bytes) -> list[SpeechStarted | Utterance]:
        first_byte = self.total_bytes - len(self._residual)
        self.total_bytes += len(audio)
        self._recent += audio
        data = self._residual + audio
        usable = len(data) - len(data) % self.frame_bytes
        self._residual = data[usable:]
        found: list[SpeechStarted | Utterance] = []
        if usable:
            levels = self._levels(data[:usable], self.format, self.frame_bytes)
            edges = self._edges
            bpms = self.bytes_per_ms
            for index, level in enumerate(levels):
                start = first_byte + index * self.frame_bytes
                end = start + self.frame_bytes
                edge = edges.frame(level > self.threshold_db, end // bpms, self.silence_ms)
                if edge is STARTED:
                    self._speech_start_byte = max(self._recent_start, start - self.prefix_ms * bpms)
                    found.append(SpeechStarted(self._speech_start_byte // bpms))
                elif edge is STOPPED:
                    found.append(self._end_utterance(end))
                elif edges.speaking and end - self._speech_start_byte >= MAX_UTTERANCE_MS * bpms:
                    edges.reset()
                    found.append(self._end_utterance(end))
        if not self.speaking:
            keep = self.prefix_ms * self.bytes_per_ms + self.frame_bytes
            if len(self._recent) > keep:
                drop = len(self._recent) - keep
                del self._recent[:drop]
                self._recent_start += drop
        return found

    @property
    def speaking(self) -> bool:
        return self._edges.speaking

    def _end_utterance(self, end_byte: int) -> Utterance:
        self.utterances += 1
        start = self._speech_start_byte - self._recent_start
        audio = bytes(self._recent[start : end_byte - self._recent_start])
        del self._recent[: end_byte - self._recent_start]
        self._recent_start = end_byte
        return Utterance(
            self.utterances,
            self._speech_start_byte // self.bytes_per_ms,
            end_byte // self.bytes_per_ms,
            audio,
        )
