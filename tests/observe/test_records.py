"""Call record: contents, atomic write, file naming, and failures that log instead of raising."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from gateway.call.machine import State
from gateway.observe.records import CallRecord, iso_utc, record_file_name

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _record() -> CallRecord:
    r = CallRecord(
        "a84b4c76e66710@pc33.example.com",
        started_at=T0,
        caller="sip:alice@example.com",
        callee="sip:100@gw",
        route="support",
        local_tag="gw1",
        remote_tag="1928301774",
        source="192.0.2.10:5060",
        codec="PCMU",
    )
    r.add_transition(T0, "offered")
    r.add_transition(T0 + 0.35, State.ANSWERING)  # the machine's enum is accepted
    r.add_transcript(T0 + 2.0, "bot", "Hello, how can I help?")
    r.add_transcript(T0 + 1.5, "caller", "Hi")  # arrives late: sorted by time in the record
    r.add_barge_in(T0 + 3.0, "item_9", 1240, "truncate")
    r.add_dtmf(T0 + 4.0, "5", "rfc4733", duration_ms=160)
    r.add_tool_call(
        T0 + 5.0, "lookup_order", "call_1", {"order": 42}, "ok", 120, {"status": "sent"}
    )
    r.set_rtp_quality({"packets_in": 500, "lost": 2, "jitter_ms": 3.1})
    r.add_usage({"input_audio_tokens": 100, "output_audio_tokens": 250, "total_tokens": 350})
    r.add_usage({"input_audio": 10, "cached": 5, "bogus": 7, "total": True})
    r.add_transition(T0 + 9.0, "ended")
    return r


def test_finish_has_every_section() -> None:
    rec = _record().finish("remote_bye", ended_at=T0 + 9.25)
    assert rec["call_id"] == "a84b4c76e66710@pc33.example.com"
    assert rec["sip"] == {
        "call_id": "a84b4c76e66710@pc33.example.com",
        "local_tag": "gw1",
        "remote_tag": "1928301774",
        "source": "192.0.2.10:5060",
    }
    assert (rec["caller"], rec["callee"], rec["route"], rec["codec"]) == (
        "sip:alice@example.com",
        "sip:100@gw",
        "support",
        "PCMU",
    )
    assert rec["started_at"] == "2023-11-14T22:13:20.000Z"
    assert rec["ended_at"] == "2023-11-14T22:13:29.250Z"
    assert rec["duration_s"] == 9.25
    assert rec["answered"] is True
    assert rec["answered_at"] == "2023-11-14T22:13:20.350Z"
    assert rec["hangup"] == {"cause": "remote_bye"}
    assert [(e["t_ms"], e["state"]) for e in rec["timeline"]] == [
        (0, "offered"),
        (350, "answering"),
        (9000, "ended"),
    ]
    assert [(e["speaker"], e["text"], e["t_ms"]) for e in rec["transcript"]] == [
        ("caller", "Hi", 1500),
        ("bot", "Hello, how can I help?", 2000),
    ]
    assert rec["barge_ins"] == [
        {
            "ts": iso_utc(T0 + 3),
            "t_ms": 3000,
            "item_id": "item_9",
            "audio_end_ms": 1240,
            "action": "truncate",
        }
    ]
    assert rec["dtmf"][0]["digit"] == "5" and rec["dtmf"][0]["duration_ms"] == 160
    tool = rec["tool_calls"][0]
    assert tool["name"] == "lookup_order" and tool["arguments"] == {"order": 42}
    assert tool["result"] == "ok" and tool["output"] == {"status": "sent"}
    assert rec["rtp"]["lost"] == 2
    assert rec["usage"] == {
        "input_text": 0,
        "input_audio": 110,
        "output_text": 0,
        "output_audio": 250,
        "cached": 5,
        "total": 350,  # a bool is not a count
    }


def test_unanswered_call_and_extra_hangup_fields() -> None:
    r = CallRecord("x", started_at=T0)
    r.add_transition(T0, "offered")
    r.add_transition(T0 + 0.2, "rejected")
    rec = r.finish("rejected", status=486)
    assert rec["answered"] is False and rec["answered_at"] is None
    assert rec["hangup"] == {"cause": "rejected", "status": 486}
    assert rec["duration_s"] == 0.2  # last transition stands in for the end


def test_bad_speaker_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="speaker"):
        CallRecord("x", started_at=T0).add_transcript(T0, "robot", "hi")


def test_write_is_atomic_json_named_by_time_and_call_id(tmp_path: Path) -> None:
    r = _record()
    r.finish("remote_bye", ended_at=T0 + 9.25)
    path = r.write(tmp_path / "records")
    assert path is not None
    assert path.name == "20231114T221320Z_a84b4c76e66710_pc33.example.com.json"
    assert json.loads(path.read_text())["hangup"]["cause"] == "remote_bye"
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind


def test_file_name_is_safe_for_hostile_call_ids() -> None:
    name = record_file_name(T0, "../../etc/passwd" + "A" * 500)
    assert "/" not in name and ".." not in name
    assert len(name) < 100
    assert record_file_name(T0, "///").endswith("_call.json")


def test_write_never_raises_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = _record()
    r.finish("remote_bye")
    with caplog.at_level(logging.ERROR):
        assert r.write(blocker / "sub") is None
    failed = [rec for rec in caplog.records if getattr(rec, "event", "") == "call.record_failed"]
    assert failed and "cannot write call record" in failed[0].getMessage()


def test_unserialisable_value_logs_and_leaves_no_temp(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = CallRecord("x", started_at=T0)
    r.add_tool_call(T0, "t", "c", object(), "ok")
    r.finish("remote_bye")
    with caplog.at_level(logging.ERROR):
        assert r.write(tmp_path) is None
    assert list(tmp_path.iterdir()) == []
    assert any(getattr(x, "event", "") == "call.record_failed" for x in caplog.records)


def test_write_before_finish_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert CallRecord("x", started_at=T0).write(tmp_path) is None
    assert any(getattr(x, "event", "") == "call.record_failed" for x in caplog.records)


def test_a_live_marker_left_by_a_dead_process_becomes_a_process_restart_record(
    tmp_path: Path,
) -> None:
    import os
    import stat

    from gateway.observe.records import (
        live_marker_path,
        recover_after_crash,
        remove_live_marker,
        write_live_marker,
    )

    marker = write_live_marker(tmp_path, "dead@h", 1_700_000_000.0, caller="a", route="sales")
    assert marker == live_marker_path(tmp_path, 1_700_000_000.0, "dead@h")
    assert stat.S_IMODE(os.stat(marker).st_mode) == 0o600
    write_live_marker(tmp_path, "done@h", 1_700_000_001.0)
    remove_live_marker(tmp_path, "done@h", 1_700_000_001.0)  # ended normally
    documents = recover_after_crash(str(tmp_path))
    assert [d["call_id"] for d in documents] == ["dead@h"]
    record = documents[0]
    assert record["hangup"]["cause"] == "process_restart"
    assert record["route"] == "sales" and record["caller"] == "a" and record["answered"]
    assert not list(tmp_path.glob("*.live.json"))
    written = json.loads((tmp_path / "20231114T221320Z_dead_h.json").read_text())
    assert written["hangup"]["cause"] == "process_restart"
    assert recover_after_crash(str(tmp_path)) == []  # once


def test_markers_of_live_processes_and_other_hosts_are_left_alone(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from gateway.observe.records import recover_live_markers

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for name, host, pid in (
            ("alive", socket.gethostname(), alive.pid),
            ("elsewhere", "another-host", 12345),
        ):
            marker = {"call_id": name, "started_at": 1_700_000_000.0, "host": host, "pid": pid}
            (tmp_path / f"{name}.live.json").write_text(json.dumps(marker))
        assert recover_live_markers(tmp_path) == []
        assert len(list(tmp_path.glob("*.live.json"))) == 2
    finally:
        alive.kill()
        alive.wait()
    recovered = recover_live_markers(tmp_path)  # the process is gone now
    assert [d["call_id"] for d in recovered] == ["alive"]


def test_mcp_activity_is_recorded() -> None:
    r = CallRecord("x", started_at=T0)
    r.add_mcp(T0 + 1.5, "mcp.call", {"item_id": "mc_1", "status": "failed"})
    doc = r.finish("remote_bye", ended_at=T0 + 2)
    assert doc["mcp"] == [
        {
            "ts": doc["mcp"][0]["ts"],
            "t_ms": 1500,
            "event": "mcp.call",
            "item_id": "mc_1",
            "status": "failed",
        }
    ]


def test_voice_session_seconds_go_into_usage_only_when_reported() -> None:
    """GPT-Live's session seconds (issue 12): summed over the call's sessions into
    usage.session_seconds; a Realtime call's usage has no such key."""
    r = CallRecord("x", started_at=T0)
    assert "session_seconds" not in r.finish("remote_bye")["usage"]
    r = CallRecord("y", started_at=T0)
    r.add_voice_seconds(15.0)
    r.add_voice_seconds(16.25)
    r.add_voice_seconds(-3)  # never negative
    assert r.finish("remote_bye")["usage"]["session_seconds"] == 31.25
