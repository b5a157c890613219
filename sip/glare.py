"""RFC 3261 14.1: after a 491 Request Pending (both sides sent a re-INVITE at once), the UAC
waits before trying again, and the two sides wait in different ranges so that one of them wins:
the owner of the Call-ID (the UA that sent the initial INVITE) 2.1 to 4 s, the other 0 to 2 s,
in units of 10 ms. Pure: the random draw is an argument.
"""

from __future__ import annotations

import secrets


def retry_delay(owns_call_id: bool, draw: int | None = None) -> float:
    """Seconds to wait before retrying a re-INVITE that got 491. `draw` (the number of 10 ms
    steps: 0..190 for the owner, 0..200 otherwise) makes it deterministic in tests."""
    if owns_call_id:
        steps = secrets.randbelow(191) if draw is None else min(max(draw, 0), 190)
        return round(2.1 + steps / 100, 2)  # 2.10 .. 4.00 s
    steps = secrets.randbelow(201) if draw is None else min(max(draw, 0), 200)
    return round(steps / 100, 2)  # 0 .. 2.00 s


__all__ = ["retry_delay"]
