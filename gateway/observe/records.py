"""The call record: one JSON document per call, written at hangup.

It answers "what happened on that call?" after the fact: SIP ids, who called whom, the route,
every state transition, both transcripts, barge-ins (with `audio_end_ms`, what the caller actually
heard of the bot's item), DTMF, tool calls, RTP quality, token usage and the hangup cause.

Crash safety: a live call has an in-progress marker `<record name>.live.json` in the records
directory from answer (`write_live_marker`) until its record is written (`remove_live_marker`);
markers left by a process that died (written on this host by a pid that is gone) are turned
into records with the cause `process_restart` at the next start (`recover_live_markers`). Records and markers are created 0600 (mkstemp), so only
the gateway's user reads who called whom and what was said.

`CallRecord` only collects plain values; it does no I/O until `write(dir)`. Timestamps are
wall-clock seconds (`time.time()`, what an operator correlates with logs), given by the caller so
tests use fixed numbers; they are written as UTC ISO 8601 with milliseconds, like the log lines,
plus `t_ms` relative to the call's start so a timeline reads without date arithmetic.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.observe.logs import log_event

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# State names (gateway.call.machine.State values) that mean the 200 OK went out: the first
# transition into one of them is the answer time. "answered" is accepted for simpler callers.
ANSWERED_STATES = frozenset(
    {"answering", "listening", "caller_speaking", "bot_speaking", "transferring", "answered"}
)
SPEAKERS = ("caller", "bot")
# Token fields summed over the call; also accepts gateway.realtime.events.Usage field names.
USAGE_KEYS = ("input_text", "input_audio", "output_text", "output_audio", "cached", "total")

# Call-IDs are chosen by the remote peer (RFC 3261 8.1.1.4: any word, including '/', '@', ':');
# only a safe subset reaches the file name, and it is capped so a hostile peer can't make it huge.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID_IN_NAME = 64


LIVE_SUFFIX = ".live.json"
RESTART_CAUSE = "process_restart"


def iso_utc(ts: float) -> str:
    """`1700000000.5` -> `"2023-11-14T22:13:20.500Z"` (same format as the log lines)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record_file_name(started_at: float, call_id: str) -> str:
    """`20231114T221320Z_<safe call id>.json`: sorts by time, unique per call."""
    stamp = datetime.fromtimestamp(started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = _UNSAFE.sub("_", call_id).strip("._")[:_MAX_ID_IN_NAME] or "call"
    return f"{stamp}_{safe}.json"


class CallRecord:
    """Builder of one call's record. Add events as they happen, then `finish(cause)`."""

    def __init__(
        self,
        call_id: str,
        *,
        started_at: float,
        caller: str = "",
        callee: str = "",
        route: str = "",
        local_tag: str = "",
        remote_tag: str = "",
        source: str = "",
        codec: str = "",
    ) -> None:
        self.call_id = call_id
        self.started_at = started_at
        self._sip = {
            "call_id": call_id,
            "local_tag": local_tag,
            "remote_tag": remote_tag,
            "source": source,
        }
        self.caller = caller
        self.callee = callee
        self.route = route
        self.codec = codec
        self._timeline: list[dict[str, Any]] = []
        self._transcript: list[dict[str, Any]] = []
        self._barge_ins: list[dict[str, Any]] = []
        self._dtmf: list[dict[str, Any]] = []
        self._tool_calls: list[dict[str, Any]] = []
        self._mcp: list[dict[str, Any]] = []
        self._rtp: dict[str, Any] = {}
        self._usage: dict[str, int] = dict.fromkeys(USAGE_KEYS, 0)
        self._voice_seconds = 0.0
        self._finished: dict[str, Any] | None = None

    # -- collecting --------------------------------------------------------------------------

    def _at(self, ts: float) -> dict[str, Any]:
        return {"ts": iso_utc(ts), "t_ms": round((ts - self.started_at) * 1000)}

    def set_remote_tag(self, tag: str) -> None:
        self._sip["remote_tag"] = tag

    def set_codec(self, codec: str) -> None:
        self.codec = codec

    def add_transition(self, ts: float, state: Any) -> None:
        """`state`: a name or an enum whose value is the name (`machine.State.LISTENING`)."""
        self._timeline.append({**self._at(ts), "state": str(getattr(state, "value", state))})

    def add_transcript(self, ts: float, speaker: str, text: str) -> None:
        """A final transcript line; `speaker` is `caller` or `bot`."""
        if speaker not in SPEAKERS:
            raise ValueError(f"speaker must be one of {SPEAKERS}, got {speaker!r}")
        self._transcript.append({**self._at(ts), "speaker": speaker, "text": text})

    def add_barge_in(self, ts: float, item_id: str, audio_end_ms: int, action: str) -> None:
        """`action`: `truncate` (item cut at `audio_end_ms`), `delete` or `none`."""
        self._barge_ins.append(
            {**self._at(ts), "item_id": item_id, "audio_end_ms": audio_end_ms, "action": action}
        )

    def add_dtmf(self, ts: float, digit: str, source: str, duration_ms: int | None = None) -> None:
        entry: dict[str, Any] = {**self._at(ts), "digit": digit, "source": source}
        if duration_ms is not None:
            entry["duration_ms"] = duration_ms
        self._dtmf.append(entry)

    def add_tool_call(
        self,
        ts: float,
        name: str,
        call_id: str,
        arguments: Any,
        result: str,
        duration_ms: int | None = None,
        output: Any = None,
    ) -> None:
        """A function call the model made: its arguments (parsed JSON or raw text) and outcome."""
        entry: dict[str, Any] = {
            **self._at(ts),
            "name": name,
            "tool_call_id": call_id,
            "arguments": arguments,
            "result": result,
        }
        if duration_ms is not None:
            entry["duration_ms"] = duration_ms
        if output is not None:
            entry["output"] = output
        self._tool_calls.append(entry)

    def add_mcp(self, ts: float, event: str, fields: Mapping[str, Any]) -> None:
        """MCP tool activity the Realtime service reported (gateway/realtime/mcp.py: summarised
        fields, never a third party's data verbatim)."""
        self._mcp.append({**self._at(ts), "event": event, **fields})

    def set_rtp_quality(self, stats: Mapping[str, Any]) -> None:
        """Stream counters at hangup (packets in/out, lost, jitter_ms, late, concealed...)."""
        self._rtp = dict(stats)

    def add_voice_seconds(self, seconds: float) -> None:
        """Backend-reported session seconds (GPT-Live), in `usage.session_seconds`."""
        if seconds > 0:
            self._voice_seconds += seconds

    def add_usage(self, usage: Mapping[str, Any]) -> None:
        """Add one response's token usage (kinds as in USAGE_KEYS, `_tokens` suffix allowed)."""
        for key, count in usage.items():
            kind = key.removesuffix("_tokens")
            if kind in self._usage and isinstance(count, int) and not isinstance(count, bool):
                self._usage[kind] += count

    # -- result ------------------------------------------------------------------------------

    def finish(self, cause: str, ended_at: float | None = None, **extra: Any) -> dict[str, Any]:
        """The record as a JSON-ready dict; `extra` (e.g. `status=486`) goes in `hangup`."""
        ended = self.started_at if ended_at is None else ended_at
        if self._timeline and ended_at is None:
            # Without an explicit end, the last transition is the best estimate of it.
            ended = self.started_at + self._timeline[-1]["t_ms"] / 1000
        answered = next((e for e in self._timeline if e["state"] in ANSWERED_STATES), None)
        self._finished = {
            "schema": SCHEMA_VERSION,
            "call_id": self.call_id,
            "sip": dict(self._sip),
            "caller": self.caller,
            "callee": self.callee,
            "route": self.route,
            "codec": self.codec,
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(ended),
            "duration_s": round(max(0.0, ended - self.started_at), 3),
            "answered": answered is not None,
            "answered_at": answered["ts"] if answered else None,
            "hangup": {"cause": cause, **extra},
            "timeline": list(self._timeline),
            "transcript": sorted(self._transcript, key=lambda e: e["t_ms"]),
            "barge_ins": list(self._barge_ins),
            "dtmf": list(self._dtmf),
            "tool_calls": list(self._tool_calls),
            "mcp": list(self._mcp),
            "rtp": dict(self._rtp),
            "usage": dict(self._usage),
        }
        if self._voice_seconds:
            self._finished["usage"]["session_seconds"] = round(self._voice_seconds, 3)
        return self._finished

    def write(self, directory: str | Path) -> Path | None:
        """Write the finished record atomically into `directory`; never raises.

        Atomic (temp file + rename in the same directory) so a reader or a log shipper never
        sees half a file. Returns the path, or None after logging `call.record_failed`.
        """
        if self._finished is None:
            log_event(
                logger,
                "call.record_failed",
                "call record written before finish()",
                call_id=self.call_id,
                level=logging.ERROR,
            )
            return None
        target = Path(directory) / record_file_name(self.started_at, self.call_id)
        return _write_json(target, self._finished, self.call_id)


def _write_json(target: Path, document: Mapping[str, Any], call_id: str) -> Path | None:
    """Atomically (temp file + rename), mode 0600, directory created 0700; None after logging
    `call.record_failed`."""
    tmp_name = ""
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        fd, tmp_name = tempfile.mkstemp(prefix=".record-", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp_name, target)
        return target
    except (OSError, TypeError, ValueError) as exc:
        # TypeError: orjson refuses a value that is not JSON (a tool argument object, ...).
        if tmp_name:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
        log_event(
            logger,
            "call.record_failed",
            f"cannot write call record to {target}: {exc}",
            call_id=call_id,
            path=str(target),
            error=str(exc),
            level=logging.ERROR,
        )
        return None


def live_marker_path(directory: str | Path, started_at: float, call_id: str) -> Path:
    return Path(directory) / (record_file_name(started_at, call_id)[: -len(".json")] + LIVE_SUFFIX)


def write_live_marker(
    directory: str | Path, call_id: str, started_at: float, **facts: Any
) -> Path | None:
    """The call is up: leave a marker that becomes its record if the process dies before the
    record is written. `facts`: caller, callee, route, direction, codec, recording..."""
    marker = {
        "call_id": call_id,
        "started_at": started_at,
        "answered_at": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **facts,
    }
    return _write_json(live_marker_path(directory, started_at, call_id), marker, call_id)


def remove_live_marker(directory: str | Path, call_id: str, started_at: float) -> None:
    try:
        os.unlink(live_marker_path(directory, started_at, call_id))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log_event(
            logger,
            "call.record_failed",
            f"cannot remove the live marker of {call_id}: {exc}",
            call_id=call_id,
            level=logging.WARNING,
        )


def _left_by_a_dead_process(marker: Mapping[str, Any]) -> bool:
    """True when the marker's process is gone: written on this host by our own pid (a
    restarted container is pid 1 again; we have written no marker yet at start) or by a pid
    that no longer runs. Markers of other hosts (a records directory shared between gateways)
    are left to their own gateway's restart: a live call there must not be declared over."""
    if marker.get("host", socket.gethostname()) != socket.gethostname():
        return False
    pid = marker.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by another user
    return False


def recover_live_markers(directory: str | Path) -> list[dict[str, Any]]:
    """Turn every marker a dead process left into a call record (cause `process_restart`,
    ended at the marker's or its recording's last write: the last sign of life) and remove
    it. Returns the records written. A marker that cannot be read is logged and kept."""
    root = Path(directory)
    documents: list[dict[str, Any]] = []
    if not root.is_dir():
        return documents
    for marker_path in sorted(root.glob("*" + LIVE_SUFFIX)):
        try:
            marker = orjson.loads(marker_path.read_bytes())
            call_id = str(marker["call_id"])
            started_at = float(marker["started_at"])
            last_alive = marker_path.stat().st_mtime
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log_event(
                logger,
                "call.record_failed",
                f"unreadable live marker {marker_path.name}: {exc}",
                path=str(marker_path),
                level=logging.WARNING,
            )
            continue
        if not _left_by_a_dead_process(marker):
            continue
        recording = marker.get("recording")
        if isinstance(recording, str) and recording:
            try:
                last_alive = max(last_alive, os.stat(recording).st_mtime)
            except OSError:
                pass
        record = CallRecord(
            call_id,
            started_at=started_at,
            caller=str(marker.get("caller", "")),
            callee=str(marker.get("callee", "")),
            route=str(marker.get("route", "")),
            local_tag=str(marker.get("local_tag", "")),
            remote_tag=str(marker.get("remote_tag", "")),
            source=str(marker.get("source", "")),
            codec=str(marker.get("codec", "")),
        )
        answered_at = marker.get("answered_at")
        if isinstance(answered_at, int | float):
            record.add_transition(float(answered_at), "answered")
        extra: dict[str, Any] = {"direction": marker.get("direction", "inbound")}
        extra["detail"] = "the gateway process stopped during the call; ended_at is its last write"
        if isinstance(recording, str) and recording:
            extra["recording"] = recording
        document = record.finish(RESTART_CAUSE, ended_at=last_alive, **extra)
        if record.write(root) is None:
            continue
        marker_path.unlink(missing_ok=True)
        documents.append(document)
        log_event(
            logger,
            "call.recovered",
            f"call {call_id} was live when the gateway stopped: recorded as {RESTART_CAUSE}",
            call_id=call_id,
            route=record.route,
        )
    return documents


def recover_after_crash(records_dir: str, recording_dir: str = "") -> list[dict[str, Any]]:
    """At start, before calls: fix the WAV headers a killed process left behind (in the
    recording directory, else the records directory), then turn live markers into records.
    Returns the records written for calls that were live when the process died."""
    from gateway.observe.recording import repair_recordings

    for directory in dict.fromkeys(d for d in (recording_dir or records_dir, records_dir) if d):
        repair_recordings(directory)
    return recover_live_markers(records_dir) if records_dir else []
