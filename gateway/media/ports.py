"""RTP port allocation: even RTP ports (RTCP on port + 1) from a configured range.

RFC 3550 11 asks for an even RTP port with RTCP on the next odd one. A port just released is
quarantined (default 30 s) before reuse: late packets of the old call, or a peer that keeps
sending after BYE, must not land in a new call's jitter buffer.

Ports are drawn at random from the free pairs (a CSPRNG, `secrets.SystemRandom`): handed out in
order, the next call's port is one guess away for anyone who saw one SDP, and an attacker can
race the caller to it (RTP bleed / port prediction, issue 9). Random draws also spread reuse
over the whole range. A few random probes find a free pair in the common case; when the range
is crowded, one pass lists the free pairs and one of them is drawn, so exhaustion is exact.

Sans-I/O: the allocator only tracks numbers; `stream.py` binds and reports a bind failure (a
port another process holds) with `release(port, failed=True)`, which quarantines it too.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_QUARANTINE_S = 30.0
# Sizing assumption (docs/deployment.md): calls last at least this long, so each concurrent
# call slot frees a pair at most once per MIN_CALL_S, and that pair then waits quarantine_s.
MIN_CALL_S = 60.0
_RANDOM_PROBES = 16  # random tries before listing the free pairs


@dataclass(slots=True)
class PortStats:
    allocated: int = 0
    released: int = 0
    bind_failures: int = 0
    exhausted: int = 0  # allocate() found nothing free


class PortAllocator:
    def __init__(
        self,
        port_min: int = 10000,
        port_max: int = 20000,
        quarantine_s: float = DEFAULT_QUARANTINE_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        first = port_min + (port_min % 2)  # round up to even
        if port_min < 1 or port_max > 65535 or first + 1 > port_max:
            raise ValueError(
                f"RTP port range {port_min}-{port_max} holds no even/odd pair "
                "(need 1 <= min, max <= 65535, room for RTP and RTCP)"
            )
        if quarantine_s < 0:
            raise ValueError(f"quarantine_s must be >= 0, got {quarantine_s}")
        self.port_min = first
        self.port_max = port_max
        self.quarantine_s = quarantine_s
        self._clock = clock
        self._pairs = (port_max - first + 1) // 2  # number of (even, odd) pairs
        self._rng = rng if rng is not None else secrets.SystemRandom()
        self._in_use: set[int] = set()
        self._quarantine: dict[int, float] = {}  # port -> time it becomes free again
        self.stats = PortStats()

    @property
    def capacity(self) -> int:
        return self._pairs

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def _is_free(self, port: int, now: float) -> bool:
        if port in self._in_use:
            return False
        until = self._quarantine.get(port)
        if until is None:
            return True
        if now >= until:
            del self._quarantine[port]
            return True
        return False

    def allocate(self) -> int | None:
        """An even RTP port (RTCP = port + 1) not in use or quarantine; None when exhausted."""
        now = self._clock()
        pick = self._rng.randrange
        port: int | None = None
        for _ in range(min(_RANDOM_PROBES, self._pairs)):
            candidate = self.port_min + 2 * pick(self._pairs)
            if self._is_free(candidate, now):
                port = candidate
                break
        else:
            free = [
                p
                for p in range(self.port_min, self.port_min + 2 * self._pairs, 2)
                if self._is_free(p, now)
            ]
            if free:
                port = free[pick(len(free))]
        if port is None:
            self.stats.exhausted += 1
            return None
        self._in_use.add(port)
        self.stats.allocated += 1
        return port

    def release(self, port: int, *, failed: bool = False) -> None:
        """Give back `port` (at the end of a call, or after a failed bind) into quarantine."""
        if port not in self._in_use:
            return
        self._in_use.discard(port)
        self._quarantine[port] = self._clock() + self.quarantine_s
        if failed:
            self.stats.bind_failures += 1
        else:
            self.stats.released += 1


def pair_count(port_min: int, port_max: int) -> int:
    """How many (even RTP, odd RTCP) pairs the range holds (0 when none)."""
    first = port_min + (port_min % 2)
    return max(0, (port_max - first + 1) // 2)


def pairs_needed(max_calls: int, quarantine_s: float, min_call_s: float = MIN_CALL_S) -> int:
    """Pairs a range needs so that `max_calls` calls renewed every `min_call_s` never run dry:
    the live calls plus the pairs still in quarantine, max_calls * (1 + quarantine_s / min_call_s).
    """
    return math.ceil(max_calls * (1 + max(0.0, quarantine_s) / min_call_s))


def range_shortfall(
    port_min: int, port_max: int, max_calls: int, quarantine_s: float
) -> str | None:
    """Why the range is too small for max_calls under churn, or None when it is large enough."""
    have = pair_count(port_min, port_max)
    need = pairs_needed(max_calls, quarantine_s)
    if have >= need:
        return None
    return (
        f"RTP range {port_min}-{port_max} holds {have} port pairs; {max_calls} calls with a "
        f"{quarantine_s:g} s port quarantine need {need} (max_calls * (1 + quarantine_s / "
        f"{MIN_CALL_S:g}), calls lasting >= {MIN_CALL_S:g} s): under churn new calls get "
        '"no free RTP port pair"'
    )
