"""Contract checks of Realtime events against the `openai` SDK's GA pydantic models.

The SDK models use `extra="allow"`, so unknown or misspelled keys would validate silently; these
helpers walk `__pydantic_extra__` and reject them (the GA service rejects unknown parameters).
The SDK union is re-tagged on "type" so a failure names one event class, not twenty.
Import from other test packages: `from tests.realtime.validate import check_client_event`.
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

from tests.tools.sdk_models import event_dict, tagged_adapter, unknown_keys

CLIENT = tagged_adapter(RealtimeClientEvent)
SERVER = tagged_adapter(RealtimeServerEvent)

# Session fields the service returns but the SDK's request model (reused for session.created
# and session.updated) does not declare.
_SERVER_SESSION_EXTRAS = {"$.session.id", "$.session.object", "$.session.expires_at"}


def check_client_event(event: dict[str, Any] | bytes | str) -> pydantic.BaseModel:
    """Validate one client event (dict or JSON frame); AssertionError names the problem."""
    data = event_dict(event)
    try:
        model = CLIENT.validate_python(data, strict=True)
    except pydantic.ValidationError as exc:
        raise AssertionError(
            f"client event {data.get('type')!r} fails the GA schema: {exc}"
        ) from exc
    extra = unknown_keys(model)
    assert not extra, f"client event {data.get('type')!r} has unknown keys: {extra}"
    return model


def client_event_ok(event: dict[str, Any]) -> bool:
    try:
        check_client_event(event)
    except AssertionError:
        return False
    return True


def check_server_event(
    event: dict[str, Any] | bytes | str, strict: bool = True
) -> pydantic.BaseModel:
    """Validate a server event; `strict` also rejects unknown keys (bar known session extras)."""
    data = event_dict(event)
    try:
        model = SERVER.validate_python(data)
    except pydantic.ValidationError as exc:
        raise AssertionError(
            f"server event {data.get('type')!r} fails the GA schema: {exc}"
        ) from exc
    if strict:
        extra = [k for k in unknown_keys(model) if k not in _SERVER_SESSION_EXTRAS]
        assert not extra, f"server event {data.get('type')!r} has unknown keys: {extra}"
    return model
