"""RFC 3261 timer values (17.1.1.1, table 4 in appendix A).

Kept apart from transaction.py so the UA, the dialog layer and tests share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TIMERS", "T1", "T2", "T4", "TimerConfig"]

T1 = 0.5  # RTT estimate
T2 = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses
T4 = 5.0  # maximum duration a message remains in the network


@dataclass(frozen=True)
class TimerConfig:
    """Base timer values; every transaction timer is derived from these (RFC 3261 table 4)."""

    t1: float = T1
    t2: float = T2
    t4: float = T4

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J, L, M and the 2xx-without-ACK give-up."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """Timer D on unreliable transports: at least 32 s (17.1.1.2)."""
        return max(32.0, 64 * self.t1)


DEFAULT_TIMERS = TimerConfig()
