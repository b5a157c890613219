"""The model's output as GPT-Live streams it: one continuous real-time track, silence included
(gpt-live-protocol.md section 4 "Output"), with no turn, done or interruption events.

`OutputTrack` is pure (no I/O, no clock): the session's pacer asks it for the next delta's bytes
every `delta_ms` and sends them. Speech is queued as utterances (`say`), each with its output
transcript split into fragments released as the audio under them is played; `cut()` is the model
falling silent (barge-in, moderation): queued speech and its unsent fragments are dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Transcript fragments cover this much audio each (the 200 ms grid of section 12).
FRAGMENT_MS = 200


@dataclass(slots=True)
class Fragment:
    """Output transcript text released once the track has played `until_byte`."""

    until_byte: int
    text: str
    audio_ms: int


@dataclass(slots=True)
class Chunk:
    """One delta's bytes, and what of it was speech."""

    audio: bytes
    speech_bytes: int  # leading bytes of `audio` that came from queued speech
    voiced_end: int  # bytes up to the last non-silent byte (0: all silent)
    fragments: list[Fragment]
    finished: list[str]  # labels of utterances whose last byte is in this chunk


class OutputTrack:
    def __init__(self, silence: bytes, bytes_per_ms: int) -> None:
        self.silence = silence  # one sample of silence in the session format
        self.bytes_per_ms = bytes_per_ms
        self._speech = bytearray()
        self._fragments: deque[Fragment] = deque()
        self._ends: deque[tuple[int, str]] = deque()  # (end byte, label) of queued utterances
        self._played = 0  # bytes of speech taken from the queue so far
        self._queued = 0  # bytes of speech ever queued
        self.played_bytes = 0  # every byte of the track sent, silence included
        self.cut_speech_bytes = 0  # speech dropped by cut(), kept in the model's context

    @property
    def speaking(self) -> bool:
        return bool(self._speech)

    @property
    def queued_ms(self) -> int:
        return len(self._speech) // self.bytes_per_ms

    def say(self, audio: bytes, transcript: str, label: str = "") -> None:
        """Queue an utterance; its transcript is released in fragments of about 200 ms."""
        if not audio:
            return
        start = self._queued
        self._speech += audio
        self._queued += len(audio)
        self._ends.append((self._queued, label))
        words = transcript.split(" ") if transcript else []
        if not words:
            return
        slots = max(1, len(audio) // (self.bytes_per_ms * FRAGMENT_MS))
        per_slot = -(-len(words) // slots)  # ceil: every word lands in some slot
        groups = [words[i : i + per_slot] for i in range(0, len(words), per_slot)]
        step = len(audio) / len(groups)
        for index, group in enumerate(groups):
            # Fragments carry their own spaces (section 3b): concatenated they give the text.
            text = " ".join(group) + (" " if index < len(groups) - 1 else "")
            until = start + round(step * (index + 1))
            self._fragments.append(Fragment(until, text, round(step / self.bytes_per_ms)))

    def next_chunk(self, size: int) -> Chunk:
        """The next `size` bytes of the track: queued speech, then silence."""
        take = min(size, len(self._speech))
        speech = bytes(self._speech[:take])
        del self._speech[:take]
        self._played += take
        voiced_end = len(speech.rstrip(self.silence)) if take else 0
        audio = speech + self.silence * (size - take) if take < size else speech
        fragments = []
        while self._fragments and self._fragments[0].until_byte <= self._played:
            fragments.append(self._fragments.popleft())
        finished = []
        while self._ends and self._ends[0][0] <= self._played:
            finished.append(self._ends.popleft()[1])
        self.played_bytes += size
        return Chunk(audio, take, voiced_end, fragments, finished)

    @property
    def queued_total(self) -> int:
        """Bytes of speech ever queued: a position for `cut(up_to=...)`."""
        return self._queued

    def cut(self, up_to: int | None = None) -> int:
        """The model stops talking: drop the queued speech queued before position `up_to`
        (default: all of it) with its fragments; speech queued later stays. Bytes dropped."""
        limit = self._queued if up_to is None else up_to
        dropped = max(0, min(len(self._speech), limit - self._played))
        del self._speech[:dropped]
        self._played += dropped  # dropped speech counts as gone, never as sent
        self.cut_speech_bytes += dropped
        while self._fragments and self._fragments[0].until_byte <= self._played:
            self._fragments.popleft()
        while self._ends and self._ends[0][0] <= self._played:
            self._ends.popleft()
        return dropped
