"""The suite-wide audit of GPT-Live client events (issue 12: every client event the gateway sends
in live mode, across the whole test suite, validates against `openai.types.live` with unknown
keys rejected).

Two ways a gateway's GPT-Live client events reach a test, and both are checked here:
- in the test process (tests/live, tests/call, the doctor's tests): every event leaves through
  `gateway.live.protocol.encode` (control events) or `gateway.live.protocol.input_audio_append`
  (the audio fast path), which `install()` wraps so each frame is validated as it is built;
- from a `sip-realtime-gateway run` subprocess: they arrive at a simulator in the test process,
  whose fixture (tests/tools/live_gateway.py) validates every recorded client event at teardown
  through `check_records`.

tests/conftest.py installs the wrappers for the whole session, fails a test whose code built an
invalid event (at its teardown, naming the event), and prints the totals at the end of the run.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from typing import Any

_lock = threading.Lock()
counts: Counter[str] = Counter()  # source -> events validated
problems: list[str] = []  # every failure seen, in order
_installed = False


def _check(event: dict[str, Any] | bytes | str) -> str | None:
    # Imported on first use: the SDK's models take about half a second to import, and most
    # tests never build a GPT-Live event.
    from tests.live.validate import check_live_client_event

    try:
        check_live_client_event(event)
    except AssertionError as exc:
        return str(exc)[:500]
    return None


def check_records(source: str, events: list[dict[str, Any]]) -> list[str]:
    """Validate recorded client events (dicts); returns and records the failures."""
    found = [p for p in (_check(event) for event in events) if p is not None]
    with _lock:
        counts[source] += len(events)
        problems.extend(f"{source}: {p}" for p in found)
    return found


def _audited(source: str, build: Any) -> Any:
    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        frame = build(*args, **kwargs)
        problem = _check(frame)
        with _lock:
            counts[source] += 1
            if problem is not None:
                problems.append(f"{source}: {problem}")
        return frame

    wrapper.__live_audit__ = True  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Wrap the gateway's two GPT-Live frame builders (idempotent)."""
    global _installed
    if _installed:
        return
    from gateway.live import protocol

    for name in ("encode", "input_audio_append"):
        original = getattr(protocol, name)
        if not getattr(original, "__live_audit__", False):
            setattr(protocol, name, _audited(f"in-process gateway.live.protocol.{name}", original))
    _installed = True


def problem_count() -> int:
    with _lock:
        return len(problems)


def summary() -> str:
    with _lock:
        total = sum(counts.values())
        parts = ", ".join(f"{n} {source}" for source, n in sorted(counts.items()))
        return (
            f"GPT-Live client events validated against openai.types.live: {total}"
            + (f" ({parts})" if parts else "")
            + f"; invalid: {len(problems)}"
        )
