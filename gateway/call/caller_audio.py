"""The caller's audio, from the media leg to the voice connection's append (issue 14).

A mixin of `CallSession` (gateway/call/session.py): the per-packet path of a call, kept apart
from the machine because it carries audio, not decisions. `on_audio` is what the media leg
calls with each release of its jitter buffer (gateway/media/leg.py wires it straight to the
stream when the leg has nothing of its own to do with the audio); it applies the input-rate
bound and the concealment rules of `_bounded_frames`, then hands the payload to the attached
connection's appender (`VoiceConnection.audio_appender`, kept current by
`VoiceSessions._set_client`): one Python frame here, one in the link (gateway/wsock.py
`_send_text`), then the transport's write. Gathering (media.append_ms > 20,
gateway/call/gather.py) and the no-client cases take `_append`'s slow path.

What must hold at the moment a frame is handed on, and where it is checked:
- no client attached, or the call ENDED (every way into ENDED closes the session, and
  CloseSession clears the appender): nothing is sent (`_appender` is None -> `_append`);
- the client's link lost or closing: the link's appender answers None, nothing sent or counted;
- gathering on: gathered (`_append`, the appender is never set while gathering);
- the link's queue full: dropped and counted (`appends_dropped`), never queued;
- the writer busy or frames queued, the write buffer above its high-water mark: queued in
  order by the link; a transport that refuses the write: the link is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.call import machine as m
from gateway.call.gather import AudioGather
from gateway.media.jitter import Frame
from gateway.voice import VoiceConnection

SAMPLE_RATE = 8000


class CallerAudio:
    """The caller-audio part of `CallSession` (whose __init__ sets these)."""

    ctx: m.CallContext
    stats: Any  # session.SessionStats
    _client: VoiceConnection | None
    _appender: Callable[[bytes], bool | None] | None
    _gather: AudioGather | None
    _audio_t0: float | None
    _audio_samples: int
    tick_watch: Any  # gateway.media.pacer.TickWatch: audio_t0, audio_samples
    _input_burst: int
    _now: Callable[[], float] | None

    def _bind_clock(self) -> Callable[[], float]:
        raise NotImplementedError

    def _loop_time(self) -> float:
        raise NotImplementedError

    def on_audio(self, frames: list[Frame]) -> None:
        """Inbound caller audio (concealed frames included), straight to the voice session,
        never more than real time + `input_burst_s` since audio time began.

        The per-packet path (issue 14): the common case (one frame, not concealed, a client
        attached, no gathering) runs in this one Python frame up to the link's appender
        (`_append`'s fast branch is inlined here; `_set_client` keeps the appender current)."""
        if not frames:
            return
        now = (self._now or self._bind_clock())()
        # The audio-time numbers live in the session's tick watch (the media clock reads them
        # to decide when hold fill is due): read and written there, no property frame.
        watch = self.tick_watch
        t0 = watch.audio_t0
        if t0 is None:
            t0 = watch.audio_t0 = now  # the caller's first RTP starts audio time
        surplus = watch.audio_samples - (now - t0) * SAMPLE_RATE  # audio time ahead of real
        if len(frames) == 1 and not frames[0].concealed:
            payload = frames[0].payload
            size = len(payload)
            if surplus + size > self._input_burst:
                self.stats.input_rate_dropped_bytes += size
                return
        else:
            payload = self._bounded_frames(frames, surplus)
            size = len(payload)
            if not size:
                return
        watch.audio_samples += size
        append = self._appender
        if append is None:
            self._append(payload)  # gathering, or no client to append to
            return
        sent = append(payload)
        if sent:
            self.stats.audio_appended_bytes += size
        elif sent is not None:  # dropped on the link's full queue (None: not connected)
            self.stats.appends_dropped += 1

    def _bounded_frames(self, frames: list[Frame], surplus: float) -> bytes:
        """Drop concealed frames for time that hold-filling already covered (after an outage
        shorter than a second the jitter buffer fills the gap itself once RTP resumes, and the
        same stretch of time must not reach the model twice), and any frame that would put
        audio time more than the burst ahead of real time."""
        parts = []
        burst = self._input_burst
        for frame in frames:
            size = len(frame.payload)
            if frame.concealed and surplus >= 0:
                self.stats.fill_overlap_dropped_bytes += size
                continue
            if surplus + size > burst:
                self.stats.input_rate_dropped_bytes += size
                continue
            surplus += size
            parts.append(frame.payload)
        return b"".join(parts)

    def _append(self, payload: bytes) -> None:
        append = self._appender
        if append is not None:  # the attached client, no gathering (on_audio inlines this)
            sent = append(payload)
            if sent:
                self.stats.audio_appended_bytes += len(payload)
            elif sent is not None:
                self.stats.appends_dropped += 1
            return
        client = self._client
        if client is None or not client.connected or self.ctx.state is m.State.ENDED:
            return  # before setup, or reconnecting: the new session starts a fresh buffer
        gather = self._gather
        if gather is not None:
            gathered = gather.add(client, payload, self._loop_time)
            if gathered is None:
                return
            payload = gathered
        self._send_append(client, payload)

    def _send_gathered(self) -> None:
        """Append what is gathered now (it waited long enough, or the codec changes)."""
        gather = self._gather
        if gather is None or not gather.nbytes:
            return
        owner, payload = gather.owner, gather.take()
        client = self._client
        if client is not None and client is owner and client.connected:
            self._send_append(client, payload)

    def _send_append(self, client: VoiceConnection, payload: bytes) -> None:
        if client.append_audio(payload):
            self.stats.audio_appended_bytes += len(payload)
        else:
            self.stats.appends_dropped += 1
