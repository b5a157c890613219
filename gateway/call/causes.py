"""Why a call ended: one vocabulary for the `call.ended` log line, the `outcome` label of
`srg_calls_total`, the `Reason` header of a BYE we send (RFC 3326) and the call record.

The values are the wire spellings the logs, metrics, records and the Grafana dashboard
(deploy/grafana) already use; docs/metrics.md documents each one. gateway/observe/metrics.py
keeps the same set as `OUTCOMES` (it sits below the call layer and does not import it);
tests/observe/test_metrics.py checks that both agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EndCause(enum.StrEnum):
    REMOTE_BYE = "remote_bye"  # the peer sent BYE
    LOCAL_BYE = "local_bye"  # we hung up (operator, or the session ended the call)
    MAX_DURATION = "max_duration"  # calls.max_duration_s reached
    RTP_TIMEOUT = "rtp_timeout"  # no RTP for media.rtp_timeout_s
    SHUTDOWN = "shutdown"  # SIGTERM/SIGINT drain
    CANCELLED = "cancelled"  # CANCEL before the answer
    ACK_TIMEOUT = "ack_timeout"  # Timer H: our 2xx was never acknowledged
    SESSION_EXPIRED = "session_expired"  # RFC 4028 session timer
    REJECTED = "rejected"  # we answered the INVITE with an error status
    BAD_ANSWER = "bad_answer"  # the SDP answer has no codec we offered
    REALTIME_FAILED = "realtime_failed"  # the voice session failed on an answered call
    TRANSFERRED = "transferred"  # REFER accepted: the caller went elsewhere
    ERROR = "error"  # a bug or an unusable peer
    VOICE_SESSION_UNAVAILABLE = "voice_session_unavailable"  # reconnect budget spent
    PROCESS_RESTART = "process_restart"  # live when the process died (records.py)
    END_CALL = "end_call"  # the model called the end_call tool
    NO_ANSWER = "no_answer"  # an outbound call nobody answered
    DTMF_HANGUP = "dtmf_hangup"  # a digit configured as hangup (calls.digit_actions)
    DRAIN_TIMEOUT = "drain_timeout"  # the last words did not finish within drain_timeout_s
    IDLE_CALLER = "idle_caller"  # the inactivity watchdog's polite hang-up
    # The voice backend ended the session itself and must not be reconnected (GPT-Live
    # session.closed reasons, issue 12): its safety filter (`content`), or a graceful
    # remote end (`remote_hangup`).
    VOICE_CONTENT_FILTER = "voice_content_filter"
    VOICE_ENDED = "voice_ended"


# The SIP user agent's end reasons (sip/useragent.py) as end causes.
UA_CAUSES: dict[str, EndCause] = {
    "bye": EndCause.REMOTE_BYE,
    "cancelled": EndCause.CANCELLED,
    "no answer": EndCause.NO_ANSWER,
    "ack timeout": EndCause.ACK_TIMEOUT,
    "session expired": EndCause.SESSION_EXPIRED,
    "local bye": EndCause.LOCAL_BYE,
    "rejected": EndCause.REJECTED,
    "shutdown": EndCause.SHUTDOWN,
}


def ua_cause(reason: str) -> EndCause:
    """The end cause of a user agent's end reason; one it never produced is an `error`."""
    return UA_CAUSES.get(reason, EndCause.ERROR)


@dataclass(frozen=True, slots=True)
class ByeReason:
    """The Reason header (RFC 3326) of a BYE we send for a cause: its SIP cause and text."""

    status: int
    text: str

    def header(self) -> str:
        return reason_header(self.status, self.text)


# The BYE the call sends for each cause it ends the call for itself. 200: the call completed
# normally (like Asterisk's `L()` limit for max duration); 408: the media went away (the SIP
# status closest to it, so the PBX's CDR says why a silent call was cut); 488: the SDP answer
# was unusable, and a 2xx was already sent so the 488 can only travel in the BYE; 503: the
# service behind the gateway is unavailable, as a 503 to an INVITE would say.
BYE_REASONS: dict[EndCause, ByeReason] = {
    EndCause.LOCAL_BYE: ByeReason(200, "ending"),
    EndCause.MAX_DURATION: ByeReason(200, "max duration"),
    EndCause.RTP_TIMEOUT: ByeReason(408, "RTP timeout"),
    EndCause.SHUTDOWN: ByeReason(503, "shutdown"),
    EndCause.ACK_TIMEOUT: ByeReason(200, "no ACK"),
    EndCause.BAD_ANSWER: ByeReason(488, "unusable SDP answer"),
    EndCause.REALTIME_FAILED: ByeReason(200, "Realtime session failed"),
    EndCause.TRANSFERRED: ByeReason(200, "transferred"),
    EndCause.VOICE_SESSION_UNAVAILABLE: ByeReason(503, "voice session unavailable"),
    EndCause.END_CALL: ByeReason(200, "end_call"),
    EndCause.DTMF_HANGUP: ByeReason(200, "caller pressed hangup digit"),
    EndCause.DRAIN_TIMEOUT: ByeReason(200, "drain timeout"),
    EndCause.IDLE_CALLER: ByeReason(200, "idle caller"),
    EndCause.VOICE_CONTENT_FILTER: ByeReason(200, "voice session ended by content filter"),
    EndCause.VOICE_ENDED: ByeReason(200, "voice session ended"),
}


def bye_reason(cause: EndCause) -> ByeReason:
    """The Reason of the BYE we send when we end a call for `cause`."""
    return BYE_REASONS.get(cause) or ByeReason(200, str(cause).replace("_", " "))


def reason_header(status: int, text: str) -> str:
    """The RFC 3326 Reason header of a BYE we send: the SIP cause and a human text."""
    return f'SIP;cause={status};text="{text}"'


__all__ = [
    "BYE_REASONS",
    "UA_CAUSES",
    "ByeReason",
    "EndCause",
    "bye_reason",
    "reason_header",
    "ua_cause",
]
