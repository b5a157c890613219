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

Crash safety: the sizes in the header are also patched, and the file flushed to the kernel, at
most once per `HEADER_UPDATE_S` when audio goes to disk (one seek-write pair and one flush
per second of call), so a gateway killed mid-call (SIGKILL, OOM) leaves a WAV that opens, with
all but the last second or two of audio; `repair_wav` fixes the sizes of any WAV the process
could not patch (run over the recording directory at start). Recordings are the caller's voice:
files are created 0600 and directories 0700 (only the gateway's user reads them).
"""

from __future__ import annotations

import logging
import os
import struct
import time
import wave
from pathlib import Path
from typing import BinaryIO

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
HEADER_UPDATE_S = 1.0  # longest stretch of written audio a crash leaves out of the header
FILE_MODE = 0o600
DIR_MODE = 0o700
_RIFF_SIZE_AT = 4  # RIFF chunk size: file length - 8
_DATA_SIZE_AT = 40  # the `data` chunk's size in the 44-byte header `wave` writes for PCM


def open_private(path: Path) -> BinaryIO:
    """Create (or truncate) `path` readable and writable by its owner only, its directory
    (when created here) 0700."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), FILE_MODE
    )
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through O_CREAT
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


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
        self._file: BinaryIO | None = None
        self._header_at = 0.0  # time.monotonic() of the last header update
        try:
            self._file = open_private(self.path)  # closed by close() or _fail()
            wav = wave.open(self._file, "wb")
        except OSError as exc:
            # A recording must never cost the call: log, then ignore all audio.
            self._fail(exc)
            return
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        self._wav = wav
        try:
            wav.writeframesraw(b"")  # the header now, not with the first second of audio
            self._file.flush()
        except OSError as exc:
            self._fail(exc)

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
            now = time.monotonic()
            if now - self._header_at >= HEADER_UPDATE_S:
                self._header_at = now
                self._update_header()
        except OSError as exc:
            self._fail(exc)

    def _update_header(self) -> None:
        """Write the sizes of what is on disk now into the header and hand the bytes to the
        kernel: a SIGKILL from here on leaves a WAV that opens."""
        file = self._file
        if file is None:
            return
        data_bytes = self._written * 4
        end = file.tell()
        file.seek(_RIFF_SIZE_AT)
        file.write(struct.pack("<I", 36 + data_bytes))
        file.seek(_DATA_SIZE_AT)
        file.write(struct.pack("<I", data_bytes))
        file.seek(end)
        file.flush()

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
        self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
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
            self._wav.close()  # writes the final RIFF/data sizes (the file is ours to close)
        except OSError as exc:
            self._fail(exc)
            return
        self._close_file()

    def __enter__(self) -> StereoRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_wav(path: str | Path) -> bool:
    """Make the RIFF and `data` sizes of a WAV agree with its length (a recording cut off by a
    crash); True when the header was changed. Only whole frames are counted; the bytes of a
    partly written frame are left after the chunk. Raises OSError; a file that is not a
    RIFF/WAVE with a `data` chunk is left alone (False)."""
    with open(path, "r+b") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        block_align = 0
        pos = 12
        while pos + 8 <= size:
            file.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", file.read(8))
            if chunk_id == b"fmt ":
                fmt = file.read(16)
                if len(fmt) == 16:
                    block_align = struct.unpack("<HHIIHH", fmt)[4]
            elif chunk_id == b"data":
                data_at = pos + 8
                available = size - data_at
                if block_align > 0:
                    available -= available % block_align
                riff_size = data_at + available - 8
                if chunk_size == available and struct.unpack("<I", head[4:8])[0] == riff_size:
                    return False
                file.seek(4)
                file.write(struct.pack("<I", riff_size))
                file.seek(pos + 4)
                file.write(struct.pack("<I", available))
                # No truncate: a partial last frame stays outside the chunk (readers skip it),
                # and a file another gateway still writes to keeps every byte it wrote.
                return True
            pos += 8 + chunk_size + (chunk_size & 1)
        return False


def repair_recordings(directory: str | Path) -> list[Path]:
    """`repair_wav` over every `*.wav` in `directory`; the paths repaired. Logged per file;
    a file that cannot be read is logged and skipped."""
    repaired: list[Path] = []
    root = Path(directory)
    if not root.is_dir():
        return repaired
    for path in sorted(root.glob("*.wav")):
        try:
            changed = repair_wav(path)
        except OSError as exc:
            log_event(
                logger,
                "recording.repair_failed",
                f"cannot repair {path}: {exc}",
                path=str(path),
                level=logging.WARNING,
            )
            continue
        if changed:
            repaired.append(path)
            log_event(
                logger,
                "recording.repaired",
                f"WAV header of {path.name} fixed (the gateway stopped mid-recording)",
                path=str(path),
            )
    return repaired
