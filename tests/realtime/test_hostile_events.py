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
from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import Endpoint, RealtimeClient

DELTA = {"type": p.AUDIO_DELTA, "response_id": "resp_1", "item_id": "item_1",
         "output_index": 0, "content_index": 0, "delta": base64.b64encode(bytes(800)).decode()}  # fmt: skip


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
