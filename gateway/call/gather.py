"""Caller audio gathered into fewer, longer appends (media.append_ms > 20; issue 14).

At the default 20 ms the call session appends each packet's audio at once (the least latency).
Longer, `AudioGather` collects audio until `size` bytes of G.711 (one byte per sample) are there,
then hands them on as one append: one WebSocket frame, one write and one event for the service
per that much audio instead of per packet, which saves CPU on both sides of the socket. What the
model hears is then up to `size` less one packet later.

Two rules keep it from holding audio back or sending it to the wrong place:
- the session's output tick (every 20 ms) sends what is gathered once its first part has waited
  as long as `size` bytes of audio last, less half a packet time (`due`: the append would have
  been complete by then had RTP kept coming, and the half packet keeps a tick that comes a hair
  early, in floating point, from waiting a whole tick more), so a caller whose RTP stops (hold,
  silence suppression, the last words before a pause) is not left waiting for more audio;
- gathered audio belongs to the connection it was gathered for (`owner`): a new connection
  (reconnect, rollover) starts afresh, as its session's input buffer does.
Sans-I/O: the clock is the caller's (`add` takes the loop's time function).
"""

from __future__ import annotations

from collections.abc import Callable

SAMPLE_RATE = 8000  # G.711: bytes per second of audio
_HALF_PACKET_S = 0.01


class AudioGather:
    __slots__ = ("_wait_s", "nbytes", "owner", "parts", "since", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"append size must be at least one byte, got {size}")
        self.size = size
        self._wait_s = size / SAMPLE_RATE - _HALF_PACKET_S
        self.parts: list[bytes] = []
        self.nbytes = 0
        self.since = 0.0  # loop time of the first part gathered
        self.owner: object = None  # the connection the parts are for

    def add(self, owner: object, payload: bytes, now: Callable[[], float]) -> bytes | None:
        """Gather `payload` for `owner`; the append to send when `size` bytes are there."""
        if owner is not self.owner:
            self.parts.clear()  # gathered for another connection: not this session's audio
            self.nbytes = 0
            self.owner = owner
        if not self.nbytes:
            self.since = now()
        self.parts.append(payload)
        self.nbytes += len(payload)
        if self.nbytes < self.size:
            return None
        return self.take()

    def due(self, now: float) -> bool:
        """Something is gathered and its first part has waited about as long as a full append
        lasts (see the module docstring)."""
        return self.nbytes > 0 and now - self.since >= self._wait_s

    def take(self) -> bytes:
        """Everything gathered, as one append; nothing is left."""
        payload = b"".join(self.parts)
        self.parts.clear()
        self.nbytes = 0
        return payload


__all__ = ["AudioGather"]
