"""What both simulators record and how they name things: `Recorded` (one wire event with its
monotonic timestamp, for tests to assert on the exchange) and `new_id` (process-wide unique ids
in the services' shape)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A process-wide unique id in the service's shape ("item_sim000042")."""
    return f"{prefix}_sim{next(_ids):06d}"


@dataclass(slots=True)
class Recorded:
    t: float  # time.monotonic()
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))
