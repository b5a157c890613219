"""Strict checks against the `openai` SDK's pydantic event models, shared by the Realtime
(tests/realtime/validate.py) and GPT-Live (tests/live/validate.py,
tests/live_simulator/validate_server.py) contract checks.

The SDK unions are re-tagged on "type" so a failure names one event class, not twenty; the SDK
models use `extra="allow"`, so unknown or misspelled keys would validate silently: `unknown_keys`
walks `__pydantic_extra__` to find them (both services reject unknown parameters).
"""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pydantic


def tagged_adapter(alias: Any) -> pydantic.TypeAdapter[Any]:
    """A validator of the SDK union `alias`, discriminated on "type"."""
    union = typing.get_args(alias)[0]
    return pydantic.TypeAdapter(typing.Annotated[union, pydantic.Field(discriminator="type")])


def unknown_keys(model: pydantic.BaseModel, path: str = "$") -> list[str]:
    """Paths of keys the schema does not define, recursively."""
    found = [f"{path}.{key}" for key in (model.__pydantic_extra__ or {})]
    for key, value in model:
        values = value if isinstance(value, list) else [value]
        for element in values:
            if isinstance(element, pydantic.BaseModel):
                found += unknown_keys(element, f"{path}.{key}")
    return found


def event_dict(event: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """The event as a dict (a JSON frame is parsed); AssertionError when it is not an object."""
    if isinstance(event, bytes | str):
        event = orjson.loads(event)
    assert isinstance(event, dict), f"event is not a JSON object: {event!r}"
    return event


def validated(
    adapter: pydantic.TypeAdapter[Any],
    data: dict[str, Any],
    what: str,
    schema: str,
    strict: bool | None = None,
    allowed_extra: frozenset[str] | None = frozenset(),
) -> pydantic.BaseModel:
    """`data` validated by `adapter` (`strict` as pydantic's), then refused if it has keys the
    schema does not define, bar `allowed_extra` (None: extra keys not checked). AssertionError
    names `what` ("client event"), its type and `schema` ("the GA schema")."""
    kind = data.get("type")
    try:
        model = adapter.validate_python(data, strict=strict)
    except pydantic.ValidationError as exc:
        raise AssertionError(f"{what} {kind!r} fails {schema}: {exc}") from exc
    if allowed_extra is not None:
        extra = [key for key in unknown_keys(model) if key not in allowed_extra]
        assert not extra, f"{what} {kind!r} has unknown keys: {extra}"
    return model
