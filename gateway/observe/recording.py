"""Optional stereo WAV recording of a call: caller on the left channel, bot on the right.

Both directions are placed by media time (samples of the shared 8 kHz media clock), not by
arrival order, so the bot's answer sits exactly where the caller heard it and a barge-in shows
as overlapping speech. Gaps (caller silent behind VAD, bot not speaking, lost packets) become
digital silence, which keeps the two channels aligned for the whole call.

Memory is bounded: a fixed buffer of 2 x `max_lag_samples` frames is allocated once per call.
When it fills, everything older than `max_lag_samples` behind the newest audio is final and goes to
disk in one write (so the per-packet cost is a slice assignment, not a copy of the window); a
packet arriving after its place was written is dropped and counted, as a jitter buffer would. The file is a 16-bit PCM WAV written with the stdlib `wave`
module, which patches the RIFF sizes on `close()`.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np

from gateway.media import g711
from gateway.observe.logs import log_event

logger = logging.getLogger(__name__)

CALLER = 0  # left
BOT = 1  # right
SAMPLE_RATE = 8000
# One second: far more than any jitter buffer delay, small in memory (8000 frames * 4 bytes).
DEFAULT_MAX_LAG_SAMPLES = SAMPLE_RATE
# Silence written in chunks of this many frames so a long gap never allocates a long array.
_SILENCE_CHUNK = SAMPLE_RATE


class StereoRecorder:
    """Write a call's two directions into one stereo WAV as audio arrives.

    `caller(media_time, g711_bytes)` and `bot(media_time, g711_bytes)` take the media-clock time
    (in samples) of the first sample of the chunk. The first chunk seen fixes time zero unless
    `start_time` is given. `close()` flushes and finalises the file; it is idempotent.
    """

    def __init__(
        self,
        path: str | Path,
        codec: str,
        *,
        start_time: int | None = None,
        max_lag_samples: int = DEFAULT_MAX_LAG_SAMPLES,
        call_id: str = "",
    ) -> None:
        g711.silence_byte(codec)  # raises ValueError naming the codec if it is not G.711
        if max_lag_samples < 160:
            raise ValueError(
                f"max_lag_samples must be at least one 20 ms frame (160), got {max_lag_samples}"
            )
        self.path = Path(path)
        self.codec = codec.upper()
        self.call_id = call_id
        self.max_lag_samples = max_lag_samples
        self.dropped_samples = 0  # arrived after their place was already on disk
        self._origin = start_time
        self._written = 0  # frames on disk
        # Frames from _written onwards; only the first _held rows are meaningful.
        self._buf = np.zeros((2 * max_lag_samples, 2), dtype="<i2")
        self._held = 0
        self._ends = [0, 0]  # per channel: end of audio received, in frames from origin
        self._closed = False
        self._wav: wave.Wave_write | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(self.path), "wb")  # closed by close() or _fail()
        except OSError as exc:
            # A recording must never cost the call: log, then ignore all audio.
            self._fail(exc)
            return
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        self._wav = wav

    @property
    def failed(self) -> bool:
        """True when the file could not be created or written (see the logged error)."""
        return self._wav is None

    # -- input -------------------------------------------------------------------------------

    def caller(self, media_time: int, payload: bytes) -> None:
        self._put(CALLER, media_time, payload)

    def bot(self, media_time: int, payload: bytes) -> None:
        self._put(BOT, media_time, payload)

    def _put(self, channel: int, media_time: int, payload: bytes) -> None:
        if self._closed or self._wav is None or not payload:
            return
        if self._origin is None:
            self._origin = media_time
        pcm = np.frombuffer(g711.decode(self.codec, payload), dtype="<i2")
        start = media_time - self._origin
        if start < self._written:
            cut = min(len(pcm), self._written - start)
            self.dropped_samples += cut
            pcm = pcm[cut:]
            start += cut
            if len(pcm) == 0:
                return
        # Pieces no longer than the lag window, so flushing for one piece never passes its start
        # (the bot's audio can arrive in deltas of several seconds).
        step = self.max_lag_samples
        for offset in range(0, len(pcm), step):
            self._place(channel, start + offset, pcm[offset : offset + step])

    def _place(self, channel: int, start: int, pcm: np.ndarray) -> None:
        end = start + len(pcm)
        if end - self._written > len(self._buf):
            # Buffer full: everything older than the lag window behind this audio is final.
            self._flush_to(end - self.max_lag_samples)
            if self._closed:
                return
        self._buf[start - self._written : end - self._written, channel] = pcm
        self._held = max(self._held, end - self._written)
        self._ends[channel] = max(self._ends[channel], end)

    # -- output ------------------------------------------------------------------------------

    def _flush_to(self, upto: int) -> None:
        """Write every frame before `upto` (frames from origin), silence where nothing came."""
        if upto <= self._written or self._wav is None:
            return
        try:
            take = min(upto - self._written, self._held)
            if take:
                self._wav.writeframesraw(self._buf[:take].tobytes())
                rest = self._held - take
                self._buf[:rest] = self._buf[take : self._held]
                self._buf[rest : self._held] = 0
                self._held = rest
                self._written += take
            while self._written < upto:
                n = min(upto - self._written, _SILENCE_CHUNK)
                self._wav.writeframesraw(bytes(n * 4))
                self._written += n
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        log_event(
            logger,
            "call.recording_failed",
            f"recording to {self.path} stopped: {exc}",
            call_id=self.call_id,
            path=str(self.path),
            error=str(exc),
            level=logging.ERROR,
        )
        self._closed = True
        self._held = 0
        wav, self._wav = self._wav, None
        if wav is not None:
            try:
                wav.close()
            except OSError:
                pass

    @property
    def frames_written(self) -> int:
        return self._written

    @property
    def duration_s(self) -> float:
        """Length of the recording so far (written plus held), in seconds."""
        return (self._written + self._held) / SAMPLE_RATE

    def close(self) -> None:
        """Flush everything (the shorter channel padded with silence) and finalise the WAV."""
        if self._closed or self._wav is None:
            return
        self._flush_to(max(self._ends))
        if self._closed or self._wav is None:
            return
        self._closed = True
        try:
            self._wav.close()  # writes the final RIFF/data sizes
        except OSError as exc:
            self._fail(exc)

    def __enter__(self) -> StereoRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
