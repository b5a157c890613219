"""The suite-wide GPT-Live client-event audit (tests/tools/live_audit.py) can fail: it rejects
what openai.types.live rejects (unknown keys, Realtime-only events), it is installed on the two
frame builders every gateway GPT-Live event leaves through, and the e2e simulator fixture feeds
it. (The other files of tests/e2e/test_live_*.py exercise it on every real call.)"""

from __future__ import annotations

import orjson
import pytest

from gateway.live import protocol as lp
from gateway.live.client import LiveClient, LiveError
from gateway.wsock import Endpoint
from tests.tools import live_audit


def _take_new_problems(before: int) -> list[str]:
    """Remove (and return) the problems this test provoked on purpose, so the suite's own
    per-test check (tests/conftest.py) does not count them."""
    with live_audit._lock:
        new = live_audit.problems[before:]
        del live_audit.problems[before:]
    return new


def test_the_gateway_frame_builders_are_audited() -> None:
    assert getattr(lp.encode, "__live_audit__", False)
    assert getattr(lp.input_audio_append, "__live_audit__", False)
    assert getattr(LiveClient._send_text, "__live_audit__", False)
    source = "in-process gateway.live.protocol.input_audio_append"
    count = live_audit.counts[source]
    frame = lp.input_audio_append(b"\xff" * 160)
    assert orjson.loads(frame)["type"] == "session.input_audio.append"
    assert live_audit.counts[source] == count + 1


def test_the_clients_audio_append_is_audited_and_can_fail(monkeypatch) -> None:
    """The audio append a GPT-Live client sends is validated as it is sent (the link frames its
    parts in one step, never through input_audio_append), and a broken one is caught."""
    source = "in-process gateway.live.client.append_audio"
    client = LiveClient(Endpoint("ws://127.0.0.1:9/v1/live"), lp.LiveSessionConfig())
    count = live_audit.counts[source]
    with pytest.raises(LiveError, match="not connected"):  # audited first, then refused
        client.append_audio(b"\xff" * 160)
    assert live_audit.counts[source] == count + 1
    before = live_audit.problem_count()
    # The parts are the class's, bound into each client's appender at construction.
    monkeypatch.setattr(LiveClient, "audio_parts", (b'{"type":"bogus","audio":"', b'"}'))
    client = LiveClient(Endpoint("ws://127.0.0.1:9/v1/live"), lp.LiveSessionConfig())
    with pytest.raises(LiveError):
        client.append_audio(b"\xff" * 160)
    new = _take_new_problems(before)
    assert len(new) == 1 and source in new[0], new


def test_an_invalid_event_built_in_process_is_recorded_as_a_problem() -> None:
    before = live_audit.problem_count()
    lp.encode({"type": "session.close", "bogus": 1})  # an unknown key
    lp.encode({"type": "response.cancel"})  # a Realtime event GPT-Live does not have
    new = _take_new_problems(before)
    assert len(new) == 2, new
    assert "bogus" in new[0] and "response.cancel" in new[1], new


def test_recorded_events_are_checked_and_counted() -> None:
    before = live_audit.problem_count()
    count = live_audit.counts["unit"]
    found = live_audit.check_records(
        "unit",
        [
            {"type": "session.close"},
            {"type": "conversation.item.truncate", "item_id": "x", "content_index": 0},
            {"type": "session.thinking.append", "content": "x", "delegation_id": None, "x": 1},
        ],
    )
    assert len(found) == 2, found
    assert live_audit.counts["unit"] == count + 3
    assert len(_take_new_problems(before)) == 2
    assert "invalid:" in live_audit.summary()
