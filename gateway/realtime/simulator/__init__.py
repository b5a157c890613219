"""A local, protocol-faithful stand-in for the OpenAI Realtime API (GA, WebSocket mode).

Used by the tests and by `run` when no API key is configured. It speaks the GA wire protocol
(realtime-protocol.md): it validates client events the way the service does (unknown or missing
parameters, bad types and values, unknown event types all give `error` events with the codes
seen in practice), runs an energy VAD on the decoded G.711 input on *audio time* (bytes / 8),
answers turns by playing the caller's own utterance back (or a configured G.711 reply) in
irregular deltas much faster than real time, and implements truncate/delete/cancel, the
active-response conflict, scripted function calls and the session time limit.

Every client and server event is recorded per session with a monotonic timestamp so tests can
assert on the exchange (`sim.sessions[id].client_events`, `sim.client_events`). So that a long
run does not grow without bound (issue 14), only live sessions and the last `keep_sessions`
finished ones are kept, and each keeps at most `keep_audio_chars` of recorded base64 audio.

Error codes and messages taken from the reference: missing_required_parameter, unknown_parameter,
invalid_value (incl. unknown event type, param "type"), conversation_already_has_active_response,
response_cancel_not_active, input_audio_buffer_commit_empty, unsupported_content_type,
session_expired, beta_api_shape_disabled, and the truncate "Audio content of X ms is already
shorter than Y ms" message (with error.event_id null, as observed). Codes the reference does not
give are marked ASSUMED (invalid_type wording, item_not_found, invalid_json).

One module per job:

    schema.py       client-event validation (the GA schema as tables): validate_client_event
    sdk.py          the same by the `openai` SDK's models, when it is importable
    options.py      SimulatorOptions, ToolCallRule: scripted replies, faults, pacing, memory
    items.py        recorded events, conversation items and responses as data
    (gateway/sim_shared/audio.py and vad.py, shared with the GPT-Live simulator: G.711 /
    24 kHz PCM conversion through gateway/media/g711.py, tones; the VAD's frame levels and
    thresholds on audio time)
    session.py      SimSession: one WebSocket session (frames, validation, items), made of
    input_audio.py    the input audio buffer and VAD turns, and
    responses.py      response generation
    server.py       Simulator: the WebSocket server and the sessions it keeps
    cli.py          `sip-realtime-gateway simulator`

The names below are imported on first use, so that `sip-realtime-gateway` builds its
command line (which imports cli.py) without loading numpy and websockets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.realtime.simulator.items import Item, Recorded, Response
    from gateway.realtime.simulator.options import (
        RESPONSE_OUTCOMES,
        SESSION_LIMIT_S,
        SimulatorOptions,
        ToolCallRule,
    )
    from gateway.realtime.simulator.schema import (
        CLIENT_EVENT_TYPES,
        Invalid,
        semantic_problem,
        validate_client_event,
    )
    from gateway.realtime.simulator.server import DEFAULT_MODEL, Simulator
    from gateway.realtime.simulator.session import SimSession
    from gateway.sim_shared.audio import BYTES_PER_MS, convert, to_pcm16, tone

_PUBLIC = {
    "BYTES_PER_MS": "gateway.sim_shared.audio",
    "convert": "gateway.sim_shared.audio",
    "to_pcm16": "gateway.sim_shared.audio",
    "tone": "gateway.sim_shared.audio",
    "Item": "items",
    "Recorded": "items",
    "Response": "items",
    "RESPONSE_OUTCOMES": "options",
    "SESSION_LIMIT_S": "options",
    "SimulatorOptions": "options",
    "ToolCallRule": "options",
    "CLIENT_EVENT_TYPES": "schema",
    "Invalid": "schema",
    "semantic_problem": "schema",
    "validate_client_event": "schema",
    "DEFAULT_MODEL": "server",
    "Simulator": "server",
    "SimSession": "session",
}

__all__ = [
    "BYTES_PER_MS",
    "CLIENT_EVENT_TYPES",
    "DEFAULT_MODEL",
    "RESPONSE_OUTCOMES",
    "SESSION_LIMIT_S",
    "Invalid",
    "Item",
    "Recorded",
    "Response",
    "SimSession",
    "Simulator",
    "SimulatorOptions",
    "ToolCallRule",
    "convert",
    "semantic_problem",
    "to_pcm16",
    "tone",
    "validate_client_event",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    path = module if "." in module else f"{__name__}.{module}"
    value = getattr(importlib.import_module(path), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
