"""The per-call state machine's states and the context it carries between events.

`CallContext` is immutable: each `step` (gateway/call/machine.py) returns a new one. It holds the
state plus the few facts the decisions need (the bot reply being generated, the bytes received
per bot item, what waits for playout to drain...). The handlers derive each new context with
`replace` (below), not `dataclasses.replace`: a bot audio delta does it on every delta, and the
generic function cost 7x more (bench/event_cost.py, docs/benchmarks.md "Issue 14, the voice
events").
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.call.causes import EndCause
from gateway.call.events import Action
from gateway.call.policy import CallPolicy

# --------------------------------------------------------------------------------------------
# States


class State(enum.Enum):
    OFFERED = "offered"  # INVITE received, 100/180 sent, nothing decided yet
    CONNECTING = "connecting"  # voice session opening, waiting for it to be ready
    ANSWERING = "answering"  # 200 OK sent, waiting for the ACK
    LISTENING = "listening"  # active: nobody speaking, bot audio fully played
    CALLER_SPEAKING = "caller_speaking"  # active: the backend says the caller talks
    BOT_SPEAKING = "bot_speaking"  # active: bot audio queued or being played
    # REFER sent, following the NOTIFYs (GPT-Live: first the model's announcement plays out,
    # while `transfer_after_playout` holds the target)
    TRANSFERRING = "transferring"
    ENDING = "ending"  # draining the last bot audio before BYE
    ENDED = "ended"

    # Members are singletons compared by identity: the identity hash agrees with that, and
    # it is a C slot, where Enum's own `__hash__` is a Python call (hash of the name) paid by
    # every `step` (the (state, event type) key of TRANSITIONS, the targets check).
    __hash__ = object.__hash__


ACTIVE = frozenset({State.LISTENING, State.CALLER_SPEAKING, State.BOT_SPEAKING})
# States where the voice session exists and its reports must be handled.
SESSION_LIVE = ACTIVE | {State.ANSWERING, State.TRANSFERRING, State.ENDING}
LIVE = SESSION_LIVE | {State.OFFERED, State.CONNECTING}

# --------------------------------------------------------------------------------------------
# Context


# Frozen, not slotted: a copy is then one dict update (`replace`), where a slotted class needs
# a read and a write per field (22 of them).
@dataclass(frozen=True)
class CallContext:
    policy: CallPolicy
    state: State = State.OFFERED
    reply_id: str | None = None  # the bot reply being generated (None when none)
    cancelling: bool = False  # a reply stop is under way (ours or the backend's own)
    discard_reply_ids: frozenset[str] = frozenset()  # interrupted: drop their late deltas
    received_bytes: Mapping[str, int] = field(default_factory=dict)  # audio received per item
    audio_done_items: frozenset[str] = frozenset()  # items whose audio is complete
    playout_busy: bool = False  # bot audio queued or playing
    reply_wanted: bool = False  # a reply is owed once no reply is being generated
    digits: str = ""  # collected DTMF digits not yet forwarded
    end_after_playout: EndCause | None = None  # BYE once playout drains (end_call, max duration)
    transfer_after_playout: str | None = None  # REFER target once playout drains
    transfer_call_id: str | None = None  # the transfer_call function call awaiting its result
    session_connected: bool = False
    acked: bool = False  # the ACK for our 2xx arrived (speech may start before it does)
    rollover_pending: bool = False
    hangup_cause: str | None = None
    pending_tool_calls: frozenset[str] = frozenset()  # custom tools running: outputs owed
    reply_audio: bool = False  # the active response produced audio
    failed_retries: int = 0  # failed replies in a row we asked again for
    idle_prompts: int = 0  # idle prompts in a row the caller did not answer
    on_hold: bool = False  # the caller put us on hold (re-INVITE): nobody to prompt


_FIELDS = frozenset(f.name for f in fields(CallContext))
_new = object.__new__
# The new context's attribute dict is a copy of the old one's (`dict.copy`, one block copy,
# ~0.2 µs less than filling an empty dict key by key), set past the frozen `__setattr__`.
_set_attributes = object.__setattr__


def replace(ctx: CallContext, **changes: Any) -> CallContext:
    """A new context: `ctx` with `changes` (what `dataclasses.replace` does, for this class).

    The old context is never touched: its attribute dict is copied, the changes are written in
    the copy, and the copy becomes the new object's (the frozen `__setattr__` is for everyone
    else). A name that is not a field raises TypeError, as `dataclasses.replace` does."""
    if not _FIELDS.issuperset(changes):
        unknown = sorted(set(changes) - _FIELDS)
        raise TypeError(f"CallContext has no field {unknown[0]!r}")
    attributes = ctx.__dict__.copy()
    attributes.update(changes)
    new = _new(CallContext)
    _set_attributes(new, "__dict__", attributes)
    return new


def with_bot_audio(
    ctx: CallContext, state: State, received_bytes: Mapping[str, int], reply_audio: bool
) -> CallContext:
    """`replace(ctx, state=state, received_bytes=received_bytes, playout_busy=True,
    reply_audio=reply_audio)`, written out: the audio delta's copy (10 to 50 a second per
    call) without the keyword dict and the field-name check, ~0.3-0.5 µs of replace's ~1.1-1.4
    (issue 14; tests/call/test_context_purity.py holds the two equal)."""
    attributes = ctx.__dict__.copy()
    attributes["state"] = state
    attributes["received_bytes"] = received_bytes
    attributes["playout_busy"] = True
    attributes["reply_audio"] = reply_audio
    new = _new(CallContext)
    _set_attributes(new, "__dict__", attributes)
    return new


class IllegalTransition(Exception):
    def __init__(self, state: State, event: object) -> None:
        super().__init__(f"event {type(event).__name__} is not allowed in state {state.value}")
        self.state = state
        self.event = event


Result = tuple[CallContext, list[Action]]
Handler = Callable[[CallContext, Any], Result]


__all__ = [
    "ACTIVE",
    "LIVE",
    "SESSION_LIVE",
    "CallContext",
    "Handler",
    "IllegalTransition",
    "Result",
    "State",
    "replace",
    "with_bot_audio",
]
