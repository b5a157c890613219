"""What one call leaves behind: metrics, the call record, the stereo recording, webhooks.

Fed by the call object (gateway/call/call.py) at offer, answer, session events and the end.
Kept apart from the call's signalling and media so the accounting of a call (which counter,
which record section, which webhook field) can be read in one place.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from gateway.observe.recording import StereoRecorder
from gateway.observe.records import CallRecord, remove_live_marker, write_live_marker

# `live` below is a gateway.call.call.LiveCall; not imported, not even for type checking, so
# the call object and its accounting do not import each other (tests/test_architecture.py).
LiveCall = Any


def open_record(live: LiveCall, source: str) -> None:
    """At the offer: the metrics' call counter and, when records or webhooks want it, the
    call's record."""
    services = live.services
    services.metrics.call_started(live.route.name)
    if services.records_dir or services.webhooks_want_records:
        live.record = CallRecord(
            live.call_id,
            started_at=live.started_wall,
            caller=live.sip.from_header,
            callee=live.sip.to_header,
            route=live.route.name,
            local_tag=live.sip.local_tag or "",
            remote_tag=live.sip.remote_tag or "",
            source=source,
        )


def on_session_event(live: LiveCall, kind: str, fields: dict[str, Any]) -> None:
    """CallSession observer: metrics and the call record (see session.Observer)."""
    metrics, record, now = live.services.metrics, live.record, time.time()
    if kind == "connected":
        metrics.observe_realtime_connect(fields["connect_s"])
    elif kind == "response_latency":
        metrics.observe_response_latency(fields["seconds"])
    elif kind == "barge_in":
        metrics.barge_in(fields["action"])
        if record is not None:
            record.add_barge_in(now, fields["item_id"], fields["audio_end_ms"], fields["action"])
    elif kind == "tool":
        metrics.tool_call(fields["name"], fields["result"])
        if record is not None:
            record.add_tool_call(
                now,
                fields["name"],
                fields["tool_call_id"],
                fields["arguments"],
                fields["result"],
                fields["duration_ms"],
                fields["output"],
            )
    elif kind == "usage":
        metrics.add_tokens(fields)
        if record is not None:
            record.add_usage(fields)
    elif kind == "voice_seconds":
        metrics.add_voice_seconds(fields["seconds"])
        if record is not None:
            record.add_voice_seconds(fields["seconds"])
    elif kind == "transcript" and record is not None:
        record.add_transcript(now, fields["speaker"], fields["text"])
    elif kind == "reconnect":
        metrics.realtime_reconnect()
    elif kind == "response_done":
        metrics.realtime_response(fields["status"])
    elif kind == "idle":
        metrics.idle_event(fields["source"])
    elif kind == "mcp" and record is not None:
        record.add_mcp(now, fields["event"], {k: v for k, v in fields.items() if k != "event"})


def start_recording(live: LiveCall) -> None:
    """At answer (or once a late offer's answer gives the codec): the stereo WAV."""
    leg, services = live.media, live.services
    if leg is None or leg.recorder is not None or live.media_info is None:
        return
    if not live.route.recording:
        return
    if not (services.recording_dir or services.records_dir):
        return  # validate() requires a directory; a config built in code may lack one
    directory = Path(services.recording_dir or services.records_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(live.started_wall))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", live.call_id).strip("._")[:64] or "call"
    leg.recorder = StereoRecorder(
        directory / f"{stamp}_{safe}.wav",
        live.media_info.codec,
        start_time=services.clock_sample(),
        call_id=live.call_id,
    )


def mark_live(live: LiveCall) -> None:
    """At answer: the marker that becomes this call's record if the process dies."""
    directory = live.services.records_dir
    if not directory:
        return
    recorder = live.media.recorder if live.media is not None else None
    write_live_marker(
        directory,
        live.call_id,
        live.started_wall,
        caller=live.sip.from_header,
        callee=live.sip.to_header,
        route=live.route.name,
        direction=live.direction,
        local_tag=live.sip.local_tag or "",
        remote_tag=live.sip.remote_tag or "",
        codec=live.media_info.codec if live.media_info is not None else "",
        recording=str(recorder.path) if recorder is not None and not recorder.failed else "",
    )


def session_summary(session: Any) -> dict[str, Any]:
    """`session`: the call's gateway.call.session.CallSession."""
    st = session.stats
    return {
        "hangup_cause": session.ctx.hangup_cause,
        "barge_ins": st.barge_ins,
        "truncates": st.truncates,
        "deletes": st.deletes,
        "reconnects": st.reconnects,
        "tool_calls": st.tool_calls,
        "audio_appended_bytes": st.audio_appended_bytes,
        "silence_filled_bytes": st.silence_filled_bytes,
        "input_rate_dropped_bytes": st.input_rate_dropped_bytes,
        "playout_overflow_bytes": st.playout_overflow_bytes,
        "usage": dict(st.usage),
        "voice_seconds": round(st.voice_seconds, 3),
        "playout_trimmed_bytes": st.playout_trimmed_bytes,
    }


def account_ended(live: LiveCall, cause: str, duration: float, stats: dict[str, Any]) -> None:
    """At the end: metrics, the recording closed, the record written, the webhook sent."""
    services = live.services
    metrics = services.metrics
    answered = live.answered_at is not None
    metrics.call_ended(live.route.name, cause, duration if answered else None)
    rtp = stats.get("rtp")
    if isinstance(rtp, dict) and (rtp.get("packets_received") or rtp.get("packets_sent")):
        jitter_ms = rtp.get("jitter_ms")
        metrics.rtp_call_stats(
            packets_in=int(rtp.get("packets_received") or 0),
            packets_out=int(rtp.get("packets_sent") or 0),
            lost=int(rtp.get("lost") or 0),
            late=int(rtp.get("late") or 0),
            concealed_frames=int(rtp.get("concealed") or 0),
            jitter_s=jitter_ms / 1000.0 if isinstance(jitter_ms, int | float) else None,
        )
    _account_dropped(live, rtp)
    recording: str | None = None
    if live.media is not None and live.media.recorder is not None:
        recorder = live.media.recorder
        recorder.close()
        recording = None if recorder.failed else str(recorder.path)
    record = live.record
    if record is None:
        return
    if live.media_info is not None:
        record.set_codec(live.media_info.codec)
    record.set_remote_tag(live.sip.remote_tag or "")
    if live.session is not None:
        for ts, state in live.session.transitions:
            record.add_transition(ts, state)
    if isinstance(rtp, dict):
        record.set_rtp_quality(rtp)
    extra: dict[str, Any] = {"direction": live.direction}
    if live.reject_status is not None:
        extra["status"] = live.reject_status
    if live.session is not None and live.session.ctx.hangup_cause:
        extra["detail"] = live.session.ctx.hangup_cause
    if recording is not None:
        extra["recording"] = recording
    document = record.finish(cause, ended_at=time.time(), **extra)
    if services.records_dir:
        record.write(services.records_dir)
        remove_live_marker(services.records_dir, live.call_id, live.started_wall)
    services.webhooks.call_ended(
        {"call_id": live.call_id, "route": live.route.name, "cause": cause, "record": document}
    )


def _account_dropped(live: LiveCall, rtp: Any) -> None:
    """What strict media refused during the call (issue 9), into the metrics."""
    rtp = rtp if isinstance(rtp, dict) else {}
    session = live.session.stats if live.session is not None else None
    live.services.metrics.media_dropped(
        {
            "foreign_source": int(rtp.get("dropped_foreign_source") or 0),
            "probation": int(rtp.get("dropped_probation") or 0),
            "rate": int(rtp.get("dropped_rate") or 0),
            "rtcp_foreign": int(rtp.get("rtcp_dropped_foreign") or 0),
            "jitter_overflow": int(rtp.get("jitter_overflow") or 0),
        },
        {
            "input_rate": session.input_rate_dropped_bytes if session else 0,
            "playout_overflow": session.playout_overflow_bytes if session else 0,
        },
    )


__all__ = [
    "account_ended",
    "mark_live",
    "on_session_event",
    "open_record",
    "session_summary",
    "start_recording",
]
