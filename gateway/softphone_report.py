"""What one softphone call reports: the summary printed (or emitted as JSON) at the end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

EXIT_OK = 0
EXIT_CALL_FAILED = 1


@dataclass
class RtpSummary:
    codec: str = ""
    local_rtp: str = ""
    remote_rtp: str = ""
    packets_sent: int = 0
    audio_sent_s: float = 0.0
    dtmf_packets_sent: int = 0
    peer_reported_lost: int = 0  # from the peer's RTCP receiver reports about our stream
    peer_reported_jitter_ms: float = 0.0
    rtcp_received: int = 0
    packets_received: int = 0
    lost: int = 0
    late: int = 0
    concealed: int = 0
    jitter_ms: float = 0.0
    received_audio_s: float = 0.0
    received_voiced_s: float = 0.0


@dataclass
class CallSummary:
    target: str
    status: int | None = None  # the INVITE's final status; None: no final response
    reason: str = ""
    answered: bool = False
    ended_by: str = ""  # "local" (duration), "remote" (their BYE), "interrupted" (Ctrl-C)
    bye_status: int | None = None
    duration_s: float = 0.0
    error: str = ""
    progress: list[str] = field(default_factory=list)
    dtmf_sent: str = ""
    dtmf_mode: str = ""
    dtmf_received: str = ""  # RFC 4733 digits the far end sent us (e.g. a send_dtmf tool)
    rtp: RtpSummary = field(default_factory=RtpSummary)
    recording: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.answered and not self.error else EXIT_CALL_FAILED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["audio_came_back"] = self.rtp.received_voiced_s > 0
        data["exit_code"] = self.exit_code
        return data


def format_summary(summary: CallSummary) -> str:
    rtp = summary.rtp
    if not summary.answered:
        status = f"{summary.status} {summary.reason}" if summary.status else summary.reason
        return f"call failed: {summary.error or status}"
    lines = [
        f"RTP sent:     {rtp.packets_sent} packets ({rtp.audio_sent_s:.2f} s of {rtp.codec}, "
        f"{rtp.dtmf_packets_sent} DTMF) to {rtp.remote_rtp}; peer reports lost "
        f"{rtp.peer_reported_lost}, jitter {rtp.peer_reported_jitter_ms:.1f} ms "
        f"({rtp.rtcp_received} RTCP reports)",
        f"RTP received: {rtp.packets_received} packets, lost {rtp.lost}, late {rtp.late}, "
        f"concealed {rtp.concealed}, jitter {rtp.jitter_ms:.1f} ms; "
        f"{rtp.received_audio_s:.2f} s of audio, {rtp.received_voiced_s:.2f} s non-silent",
    ]
    if summary.recording:
        lines.append(f"recorded {summary.recording} ({rtp.received_audio_s:.2f} s)")
    came_back = "yes" if rtp.received_voiced_s > 0 else "NO (only silence or nothing received)"
    lines.append(f"audio came back: {came_back}")
    ended = {"remote": "far end hung up", "local": "we hung up", "interrupted": "interrupted"}
    lines.append(f"call completed: {summary.duration_s:.1f} s, {ended.get(summary.ended_by, '?')}")
    return "\n".join(lines)


__all__ = ["EXIT_CALL_FAILED", "EXIT_OK", "CallSummary", "RtpSummary", "format_summary"]
