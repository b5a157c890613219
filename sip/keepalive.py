"""RFC 5626 4.4.1 CRLF keep-alives on a connection-oriented flow (TCP/TLS): the pure schedule.

The client sends a double CRLF ("ping") and the server answers with a single CRLF ("pong"). We
ping at a random point between 80% and 100% of the interval after the last ping (RFC 5626 4.4.1
asks for that spread, so registrations started together do not ping together), and a flow with no
pong `pong_timeout` seconds after a ping is dead: the owner closes it and registers again on a new
connection (RFC 5626 4.4.1, 4.5).

Time is an argument and randomness is injected: no I/O, no clock. The driver asks
`due(now)` whenever `next_deadline` passes and does what it says (PING: send CRLFCRLF and call
`pinged`; DEAD: drop the flow), and reports pongs with `pong`.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

PING: Literal["ping"] = "ping"
DEAD: Literal["dead"] = "dead"
Action = Literal["ping", "dead"] | None


@dataclass(frozen=True)
class KeepAlivePolicy:
    interval: float = 30.0  # upper bound between pings (RFC 5626 suggests 120 s for TCP; NAT
    # bindings of carrier-grade NATs can be shorter, so we default lower)
    pong_timeout: float = 10.0  # RFC 5626 4.4.1: no pong within 10 s marks the flow dead
    spread: float = 0.2  # each interval is drawn from [(1 - spread) * interval, interval]

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.pong_timeout <= 0 or not 0 <= self.spread < 1:
            raise ValueError(f"keep-alive policy out of range: {self}")


class KeepAliveCore:
    """When to ping one flow and when to give it up (see the module docstring)."""

    def __init__(
        self, policy: KeepAlivePolicy | None = None, rand: Callable[[], float] = _random.random
    ) -> None:
        self.policy = policy or KeepAlivePolicy()
        self._rand = rand
        self.next_ping_at: float | None = None  # None: not running
        self.ping_sent_at: float | None = None  # a ping waiting for its pong
        self.pings = 0
        self.pongs = 0
        self.dead_flows = 0

    @property
    def running(self) -> bool:
        return self.next_ping_at is not None or self.ping_sent_at is not None

    @property
    def next_deadline(self) -> float | None:
        if self.ping_sent_at is not None:
            return self.ping_sent_at + self.policy.pong_timeout
        return self.next_ping_at

    def _interval(self) -> float:
        p = self.policy
        return p.interval * (1.0 - p.spread * self._rand())

    def start(self, now: float) -> None:
        """A new flow (registered on it): first ping one interval from now."""
        self.ping_sent_at = None
        self.next_ping_at = now + self._interval()

    def stop(self) -> None:
        self.next_ping_at = None
        self.ping_sent_at = None

    def due(self, now: float) -> Action:
        """What to do at `now`: PING, DEAD (no pong in time), or nothing yet."""
        if self.ping_sent_at is not None:
            if now >= self.ping_sent_at + self.policy.pong_timeout:
                return DEAD
            return None
        if self.next_ping_at is not None and now >= self.next_ping_at:
            return PING
        return None

    def pinged(self, now: float) -> None:
        self.pings += 1
        self.ping_sent_at = now
        self.next_ping_at = None

    def pong(self, now: float) -> None:
        """The pong for our ping arrived (reported at any time up to the deadline): the next
        ping is one interval after the previous one."""
        if self.ping_sent_at is None:
            return  # unsolicited CRLF: nothing to settle
        self.pongs += 1
        sent, self.ping_sent_at = self.ping_sent_at, None
        self.next_ping_at = max(now, sent + self._interval())

    def flow_dead(self) -> None:
        """The owner dropped the flow; it calls start() again once registered on a new one."""
        self.dead_flows += 1
        self.stop()


__all__ = ["DEAD", "PING", "Action", "KeepAliveCore", "KeepAlivePolicy"]
