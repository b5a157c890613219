"""Contract checks of Realtime events against the `openai` SDK's GA pydantic models.

The SDK models use `extra="allow"`, so unknown or misspelled keys would validate silently; these
helpers walk `__pydantic_extra__` and reject them (the GA service rejects unknown parameters).
The SDK union is re-tagged on "type" so a failure names one event class, not twenty.
Import from other test packages: `from tests.realtime.validate import check_client_event`.
"""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent


def _adapter(alias: Any) -> pydantic.TypeAdapter[Any]:
    union = typing.get_args(alias)[0]
    return pydantic.TypeAdapter(typing.Annotated[union, pydantic.Field(discriminator="type")])


CLIENT = _adapter(RealtimeClientEvent)
SERVER = _adapter(RealtimeServerEvent)

# Session fields the service returns but the SDK's request model (reused for session.created
# and session.updated) does not declare.
_SERVER_SESSION_EXTRAS = {"$.session.id", "$.session.object", "$.session.expires_at"}


def unknown_keys(model: pydantic.BaseModel, path: str = "$") -> list[str]:
    """Paths of keys the schema does not define, recursively."""
    found = [f"{path}.{key}" for key in (model.__pydantic_extra__ or {})]
    for key, value in model:
        values = value if isinstance(value, list) else [value]
        for element in values:
            if isinstance(element, pydantic.BaseModel):
                found += unknown_keys(element, f"{path}.{key}")
    return found


def _as_dict(event: dict[str, Any] | bytes | str) -> dict[str, Any]:
    if isinstance(event, bytes | str):
        event = orjson.loads(event)
    assert isinstance(event, dict), f"event is not a JSON object: {event!r}"
    return event


def check_client_event(event: dict[str, Any] | bytes | str) -> pydantic.BaseModel:
    """Validate one client event (dict or JSON frame); AssertionError names the problem."""
    data = _as_dict(event)
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
    data = _as_dict(event)
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
