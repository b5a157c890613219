"""Hostile server events on a Realtime session (issue 14): wrong types, bad base64, huge and
unknown events are refused, counted, and named in one WARNING per kind per session
(`realtime.server_event_rejected`), never with the frame's content; good frames log nothing;
a flood of distinct kinds logs at most 16 lines and counts at most 64 unknown types.
Plain calls of the client's message handler (what the read callback calls), no socket.
"""

from __future__ import annotations

import base64
import logging

import orjson
import pytest

from gateway.observe.logs import record_fields
from gateway.realtime import client as client_module
from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import Endpoint, RealtimeClient

DELTA = {"type": p.AUDIO_DELTA, "response_id": "resp_1", "item_id": "item_1",
         "output_index": 0, "content_index": 0, "delta": base64.b64encode(bytes(800)).decode()}  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_log_budget(monkeypatch: pytest.MonkeyPatch) -> client_module._LogBudget:
    """The process-wide budget of these warnings, fresh for each test (other tests spend it)."""
    budget = client_module._LogBudget(client_module._REJECTED_LOG_BURST)
    monkeypatch.setattr(client_module, "_rejected_log_budget", budget)
    return budget


def client() -> RealtimeClient:
    return RealtimeClient(Endpoint.custom("ws://127.0.0.1:9/v1/realtime"))


def rejected(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record_fields(r)["problem"]
        for r in caplog.records
        if getattr(r, "event", "") == "realtime.server_event_rejected"
    ]


HOSTILE = [
    (b"not json", "not JSON"),
    (b"[1,2]", "not an object with a string type"),
    (orjson.dumps({"type": 5}), "not an object with a string type"),
    (orjson.dumps({**DELTA, "delta": 12}), f"{p.AUDIO_DELTA}: TypeError"),
    (orjson.dumps({**DELTA, "item_id": ["x"]}), f"{p.AUDIO_DELTA}: TypeError"),
    (orjson.dumps({**DELTA, "output_index": "0"}), f"{p.AUDIO_DELTA}: TypeError"),
    (orjson.dumps({**DELTA, "delta": "QU=D"}), f"{p.AUDIO_DELTA}: bad base64"),
    (orjson.dumps({**DELTA, "delta": "Qé=="}), f"{p.AUDIO_DELTA}: ValueError"),
    (orjson.dumps({"type": "input_audio_buffer.speech_started"}), "missing 'audio_start_ms'"),
    (orjson.dumps({"type": "response.done", "response": 7}), "response.done: AttributeError"),
    (orjson.dumps({"type": "response.hologram.delta", "x": 1}), "unknown type 'response.hologram"),
]


@pytest.mark.parametrize(("frame", "named"), HOSTILE, ids=[h[1] for h in HOSTILE])
def test_a_hostile_frame_is_refused_and_named_once(
    frame: bytes, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    c = client()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            c._on_message(frame)
    lines = rejected(caplog)
    assert len(lines) == 1 and named in lines[0], lines
    assert c.parser.malformed + sum(c.parser.unknown_types.values()) == 3
    assert c._lost is None  # the link goes on


def test_good_frames_log_nothing_and_reach_the_session(caplog: pytest.LogCaptureFixture) -> None:
    c = client()
    with caplog.at_level(logging.DEBUG):
        c._on_message(orjson.dumps(DELTA))
        c._on_message(orjson.dumps({"type": "response.created", "response": {"id": "r"}}))
    assert not rejected(caplog) and c.parser.malformed == 0
    assert isinstance(c._inbound.get_nowait(), ev.AudioDelta)
    assert isinstance(c._inbound.get_nowait(), ev.ResponseCreated)


def test_a_huge_delta_is_decoded_once_and_the_problem_line_never_carries_the_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = client()
    audio = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB: 512 s of G.711
    huge = orjson.dumps({**DELTA, "delta": base64.b64encode(audio).decode()})
    c._on_message(huge)
    assert c._inbound.get_nowait().audio == audio
    bad = orjson.dumps({**DELTA, "delta": base64.b64encode(audio).decode() + "*"})
    with caplog.at_level(logging.WARNING):
        c._on_message(bad)
    [line] = rejected(caplog)
    assert len(line) <= 200
    assert all(len(r.getMessage()) < 400 for r in caplog.records)


def test_a_flood_of_kinds_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    c = client()
    with caplog.at_level(logging.WARNING):
        for n in range(500):
            c._on_message(orjson.dumps({"type": f"x.{n}." + "y" * 200}))
    assert len(rejected(caplog)) == 16
    assert len(c.parser.unknown_types) == p.MAX_UNKNOWN_TYPES
    assert all(len(kind) <= 64 for kind in c.parser.unknown_types)


def test_bad_base64_is_one_kind_whatever_its_length(caplog: pytest.LogCaptureFixture) -> None:
    """binascii's message counts the characters: every length must not be a new kind, or 16
    bad deltas would spend the session's lines and hide a later, different problem."""
    c = client()
    with caplog.at_level(logging.WARNING):
        for n in range(1, 40):
            c._on_message(orjson.dumps({**DELTA, "delta": "QUJD" * n + "Q"}))
        c._on_message(orjson.dumps({"type": "input_audio_buffer.speech_started"}))
    assert rejected(caplog) == [f"{p.AUDIO_DELTA}: bad base64", "input_audio_buffer.speech_started: missing 'audio_start_ms'"]  # fmt: skip
    assert c.parser.malformed == 40


@pytest.mark.parametrize(
    "session",
    [
        {"id": "sess_" + "x\nforged line " * 100_000},
        {"id": {"k": [1, 2]}},
        {"id": "sess_1", "model": "m" * 300},
        {"id": "sess_1", "model": 7},
        "not an object",
    ],
    ids=[
        "huge id with newlines",
        "id not a string",
        "huge model",
        "model not a string",
        "no object",
    ],
)
def test_a_hostile_session_created_is_malformed_and_never_logged(
    session: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The session's id names the session in every later warning: a server that makes it a
    megabyte with newlines (log forging), or not a string, gets a malformed event instead."""
    frame = orjson.dumps({"type": "session.created", "event_id": "e", "session": session})
    assert client().parser.parse(frame) is None  # what connect() reads first: no session
    c = client()
    with caplog.at_level(logging.WARNING):
        c._on_message(frame)
        for n in range(3):
            c._on_message(orjson.dumps({**DELTA, "delta": "Q" * (4 * n + 1)}))
    assert rejected(caplog)[0].startswith("session.created: ")
    assert all(len(r.getMessage()) < 400 for r in caplog.records)
    assert "forged" not in caplog.text


def test_the_session_id_names_the_session_in_each_warning(caplog: pytest.LogCaptureFixture) -> None:
    c = client()
    created = c.parser.parse(orjson.dumps({"type": "session.created", "event_id": "e", "session": {"id": "sess_9", "model": "gpt-realtime"}}))  # fmt: skip
    assert isinstance(created, ev.SessionCreated)
    c.session = created  # as connect() keeps it
    with caplog.at_level(logging.WARNING):
        c._on_message(b"not json")
    records = [r for r in caplog.records if getattr(r, "event", "") == "realtime.server_event_rejected"]  # fmt: skip
    assert [record_fields(r)["session_id"] for r in records] == ["sess_9"]


def test_the_warnings_of_all_sessions_together_are_bounded(
    fresh_log_budget: client_module._LogBudget, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad frame on each of 200 sessions (a hostile service reached by every call): at
    most the process's burst of lines, the rest counted."""
    with caplog.at_level(logging.WARNING):
        for _ in range(200):
            client()._on_message(b"not json")
    assert len(rejected(caplog)) == client_module._REJECTED_LOG_BURST
    assert fresh_log_budget.suppressed == 200 - client_module._REJECTED_LOG_BURST
