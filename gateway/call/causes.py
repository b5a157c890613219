"""Why a call ended: one vocabulary for the `call.ended` log line, the `outcome` label of
`srg_calls_total`, the `Reason` header of a BYE we send (RFC 3326) and the call record.

The values are the wire spellings the logs, metrics, records and the Grafana dashboard
(deploy/grafana) already use; docs/metrics.md documents each one. gateway/observe/metrics.py
keeps the same set as `OUTCOMES` (it sits below the call layer and does not import it);
tests/observe/test_metrics.py checks that both agree.
"""

from __future__ import annotations

import enum


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


def reason_header(status: int, text: str) -> str:
    """The RFC 3326 Reason header of a BYE we send: the SIP cause and a human text."""
    return f'SIP;cause={status};text="{text}"'


__all__ = ["UA_CAUSES", "EndCause", "reason_header", "ua_cause"]
