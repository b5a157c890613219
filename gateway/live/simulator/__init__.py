"""A local, protocol-faithful stand-in for OpenAI's GPT-Live API (primary WebSocket,
`/v1/live/sessions`), served by the same `Simulator` process as the Realtime stand-in
(gateway/realtime/simulator/server.py routes each connection by its path). What it must do is
section 12 of gpt-live-protocol.md; docs/architecture.md ("GPT-Live simulator") lists what it
does, its knobs and what is UNKNOWN about the real service.

One module per job:

    schema.py       client-event validation (openai.types.live as tables): validate_client_event
    options.py      LiveSimulatorOptions, LiveToolCallRule: pacing, limits, scripts, faults
    session.py      LiveSession: one WebSocket session (frames, start-up, clock, appends, close),
                    with delegation.py (Responses calls, client delegations, session.update)
    caller.py       the caller's utterances, found by the shared VAD (gateway/sim_shared/vad.py)
    track.py        OutputTrack: the model's continuous output, speech and silence
    sounds.py       the session format: bytes per ms, silence, tones, fixture clips

The names below are imported on first use (websockets and numpy load with them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.live.simulator.options import LiveSimulatorOptions, LiveToolCallRule
    from gateway.live.simulator.schema import CLIENT_EVENT_TYPES, validate_client_event
    from gateway.live.simulator.session import BargeIn, LiveSession, SpeechMark

_PUBLIC = {
    "LiveSimulatorOptions": "options",
    "LiveToolCallRule": "options",
    "CLIENT_EVENT_TYPES": "schema",
    "validate_client_event": "schema",
    "BargeIn": "session",
    "LiveSession": "session",
    "SpeechMark": "session",
}

__all__ = [
    "CLIENT_EVENT_TYPES",
    "BargeIn",
    "LiveSession",
    "LiveSimulatorOptions",
    "LiveToolCallRule",
    "SpeechMark",
    "validate_client_event",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
