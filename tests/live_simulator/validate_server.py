"""GPT-Live events checked against the `openai` SDK's models (`openai.types.live`, 3.63.0), with
unknown keys rejected (the SDK's models use `extra="allow"`, so extra keys are found by walking
`__pydantic_extra__`).

`check_server_event` validates what the simulator sends, including the Responses stream event
nested in `response.event` (against `openai.types.responses.ResponseStreamEvent`), and refuses
what never appears on a primary socket (`transport.*`, timing fields on output audio deltas, an
`event_id` on output audio). `sdk_client_problem` is the SDK's verdict on a client event, for
the simulator's schema drift tests (tests/live/validate.py, the gateway's client-event check,
belongs to the live client's tests).
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.live import ClientEvent, ServerEvent
from openai.types.responses import ResponseStreamEvent

from tests.tools.sdk_models import event_dict, tagged_adapter, unknown_keys, validated

CLIENT = tagged_adapter(ClientEvent)
SERVER = tagged_adapter(ServerEvent)
RESPONSES = tagged_adapter(ResponseStreamEvent)


def check_server_event(event: dict[str, Any] | bytes | str) -> pydantic.BaseModel:
    """Validate one server event strictly; AssertionError names the problem."""
    data = event_dict(event)
    kind = data.get("type")
    assert not str(kind).startswith("transport."), f"{kind} never appears on a primary socket"
    if kind == "session.output_audio.delta":
        # Primary socket: no timing fields, no event_id (gpt-live-protocol.md section 3b).
        assert set(data) == {"type", "delta"}, f"output audio delta carries {sorted(data)}"
    model = validated(SERVER, data, "server event", "openai.types.live")
    if kind == "response.event":
        nested = data["event"]
        try:
            inner = RESPONSES.validate_python(nested)
        except pydantic.ValidationError as exc:
            raise AssertionError(
                f"nested {nested.get('type')!r} fails openai.types.responses: {exc}"
            ) from exc
        extra = unknown_keys(inner, "$.event")
        assert not extra, f"nested {nested.get('type')!r} has unknown keys: {extra}"
    return model


def sdk_client_problem(event: dict[str, Any]) -> str | None:
    """None when the SDK's models accept the client event strictly, else why not."""
    try:
        model = CLIENT.validate_python(event, strict=True)
    except pydantic.ValidationError as exc:
        return str(exc.errors()[0])
    extra = unknown_keys(model)
    return f"unknown keys {extra}" if extra else None
