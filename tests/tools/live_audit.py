"""The suite-wide audit of GPT-Live client events (issue 12: every client event the gateway sends
in live mode, across the whole test suite, validates against `openai.types.live` with unknown
keys rejected).

Two ways a gateway's GPT-Live client events reach a test, and both are checked here:
- in the test process (tests/live, tests/call, the doctor's tests): every control event leaves
  through `gateway.live.protocol.encode` and every audio append through
  `gateway.live.client.LiveClient._send_text` (what `append_audio` and the session's
  `audio_appender` call; the link frames its parts in one step), which `install()` wraps so each is validated as it is built or sent (`input_audio_append`, the
  same text, is wrapped too);
- from a `sip-realtime-gateway run` subprocess: they arrive at a simulator in the test process,
  whose fixture (tests/tools/live_gateway.py) validates every recorded client event at teardown
  through `check_records`.

tests/conftest.py installs the wrappers for the whole session, fails a test whose code built an
invalid event (at its teardown, naming the event), and prints the totals at the end of the run.
"""

from __future__ import annotations

import binascii
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


def _audited_send_text(send_text: Any) -> Any:
    """LiveClient._send_text (what `append_audio` and the call session's `audio_appender`
    call), auditing each audio append it sends: the link frames the text
    `prefix + base64(audio) + suffix` from `INPUT_AUDIO_APPEND_PARTS` in one step
    (gateway/wsock.py `_send_text`, its C twin held to the same bytes by
    tests/test_wsframe_parity.py), which is the text `input_audio_append` builds. Control
    events (no audio part) are audited where they are encoded."""
    source = "in-process gateway.live.client.append_audio"

    @functools.wraps(send_text)
    def wrapper(self: Any, prefix: bytes, suffix: bytes, audio: bytes = b"") -> Any:
        if audio:
            problem = _check(prefix + binascii.b2a_base64(audio, newline=False) + suffix)
            with _lock:
                counts[source] += 1
                if problem is not None:
                    problems.append(f"{source}: {problem}")
        return send_text(self, prefix, suffix, audio)

    wrapper.__live_audit__ = True  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Wrap the gateway's GPT-Live frame builders and its audio append (idempotent)."""
    global _installed
    if _installed:
        return
    from gateway.live import protocol
    from gateway.live.client import LiveClient

    for name in ("encode", "input_audio_append"):
        original = getattr(protocol, name)
        if not getattr(original, "__live_audit__", False):
            setattr(protocol, name, _audited(f"in-process gateway.live.protocol.{name}", original))
    if not getattr(LiveClient._send_text, "__live_audit__", False):
        # On LiveClient only (the Realtime client inherits WebSocketLink's own); bound per
        # client at construction (`audio_appender`), so installed before any client exists.
        LiveClient._send_text = _audited_send_text(LiveClient._send_text)  # type: ignore[method-assign]
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
