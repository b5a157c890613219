"""One call's policy: what the route's configuration decides for the machine, fixed for the call
(gateway/call_settings.py `call_policy_for` builds it from the configuration)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# Per-call policy (from the route configuration; fixed for the call)


class DtmfMode(enum.Enum):
    FORWARD = "forward"  # collect digits and tell the model
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class DigitAction:
    """What a single digit does instead of being forwarded (e.g. '0' -> transfer to operator)."""

    kind: str  # "transfer" | "hangup"
    target: str = ""  # transfer target name (key of CallPolicy.transfer_targets)


@dataclass(frozen=True, slots=True)
class CallPolicy:
    greeting: str | None = None  # instructions for a first reply after the ACK
    # The backend stops its reply when the caller speaks (Realtime: interrupt_response).
    server_interrupts: bool = True
    truncate_allowance_ms: int = 0  # audio assumed still in the phone's own buffer on barge-in
    dtmf_mode: DtmfMode = DtmfMode.FORWARD
    digit_actions: Mapping[str, DigitAction] = field(default_factory=dict)
    digit_terminator: str = "#"
    max_digits: int = 16
    inter_digit_timeout_s: float = 2.0
    dtmf_barge_in: bool = True  # a digit while the bot speaks interrupts it
    transfer_targets: Mapping[str, str] = field(default_factory=dict)  # name -> SIP URI
    setup_timeout_s: float = 5.0  # the voice session must be ready within this (else 503)
    drain_timeout_s: float = 30.0  # longest we wait for playout before BYE
    session_cap_s: float = 3600.0  # voice session limit (Realtime: 60 min)
    rollover_margin_s: float = 300.0  # start looking for a silence this long before the cap
    retry_after_s: int = 30  # Retry-After on 503 when the session cannot be set up
    # A reply done with status failed (or incomplete with no audio): ask again this many
    # times in a row (with `failed_response_instructions`), then transfer to
    # `failed_response_transfer` (a transfer target name) or end the call (BYE, cause 503).
    # Never: the caller left in silence waiting for an answer that will not come.
    failed_response_retries: int = 1
    failed_response_instructions: str = (
        "Your previous answer was lost. Apologise in a few words and answer the caller again."
    )
    failed_response_transfer: str = ""
    # The gateway's own inactivity watchdog (works with semantic_vad too, unlike the server's
    # idle_timeout_ms): after `idle_prompt_s` of nobody speaking the bot prompts the caller;
    # after `idle_prompts_max` unanswered prompts (the backend's own re-prompts,
    # CallerSilenceTimeout, count too) it says goodbye and hangs up. 0 = off.
    idle_prompt_s: float = 0.0
    idle_prompts_max: int = 2
    idle_prompt_instructions: str = (
        "The caller has been silent for a while. Briefly ask whether they are still there."
    )
    idle_goodbye_instructions: str = (
        "The caller is not answering. Say a short, polite goodbye; the call will end."
    )
    # The backend streams one continuous real-time track and decides itself when to speak
    # (GPT-Live): the playout queue runs empty between deltas, so an empty queue alone does
    # not end the bot's words (the reply's end does); a tool result continues the backend by
    # itself (no reply request after it); end_call returns a result and waits for the
    # goodbye the backend then speaks, at most `goodbye_timeout_s`.
    continuous_output: bool = False
    goodbye_timeout_s: float = 8.0


__all__ = [
    "CallPolicy",
    "DigitAction",
    "DtmfMode",
]
