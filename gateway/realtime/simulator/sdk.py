"""Client-event validation by the `openai` SDK's GA pydantic models, for the simulator.

`openai` is a test dependency, not a runtime one: `sdk_validator()` returns None when it is not
importable and the simulator keeps its built-in tables (gateway/realtime/simulator/schema.py).
When it is, the SDK decides what the schema accepts, so the simulator cannot fall behind a newer
SDK (it once rejected MCP tool fields the SDK accepted); tests/realtime/test_simulator_sdk_drift.py
keeps the built-in tables equal to the SDK's for the fields the gateway and its tests use.

The SDK's models use `extra="allow"`, so unknown keys are found by walking `__pydantic_extra__`
(the service rejects unknown parameters: realtime-protocol.md section 7, caveat a), and the
client-event union is re-tagged on `type` for one precise error (caveat b).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["SdkProblem", "cached_sdk_validator", "sdk_validator"]


class SdkProblem(typing.NamedTuple):
    code: str
    message: str
    param: str | None


_CLASS_NAME = re.compile(r"^[A-Z]\w*$|\[|^(list|dict|str|int|float|bool)$")


def _param(loc: tuple[Any, ...]) -> str | None:
    """pydantic's error location as the service's dotted param ("session.audio.input")."""
    parts: list[str] = []
    for element in loc[1:]:  # loc[0] is the event's type tag
        if isinstance(element, int):
            if parts:
                parts[-1] += f"[{element}]"
            continue
        text = str(element)
        if _CLASS_NAME.search(text) or "/" in text or text in ("realtime", "transcription"):
            continue  # a union member or tag, not a key of the event
        parts.append(text)
    return ".".join(parts) or None


def _unknown_keys(model: Any, path: str) -> list[str]:
    import pydantic

    found = [f"{path}.{key}" if path else key for key in (model.__pydantic_extra__ or {})]
    for key, value in model:
        for element in value if isinstance(value, list) else [value]:
            if isinstance(element, pydantic.BaseModel):
                found += _unknown_keys(element, f"{path}.{key}" if path else key)
    return found


def sdk_validator() -> Callable[[dict[str, Any]], SdkProblem | None] | None:
    """A validator of client events by the SDK's GA models, or None without `openai`."""
    try:
        import pydantic
        from openai.types.realtime import RealtimeClientEvent
    except ImportError:
        return None
    union = typing.get_args(RealtimeClientEvent)[0]
    adapter = pydantic.TypeAdapter(typing.Annotated[union, pydantic.Field(discriminator="type")])

    def validate(event: dict[str, Any]) -> SdkProblem | None:
        try:
            model = adapter.validate_python(event, strict=True)
        except pydantic.ValidationError as exc:
            error = exc.errors()[0]
            kind = str(error.get("type", ""))
            param = _param(tuple(error.get("loc", ())))
            if kind == "missing":
                return SdkProblem(
                    "missing_required_parameter", f"Missing required parameter: '{param}'.", param
                )
            if kind.endswith("_type") or kind in ("model_type", "model_attributes_type"):
                return SdkProblem(
                    "invalid_type", f"Invalid type for '{param}': {error.get('msg')}.", param
                )
            if kind.startswith("union_tag"):
                param = param or "type"
            return SdkProblem("invalid_value", f"Invalid '{param}': {error.get('msg')}.", param)
        unknown = _unknown_keys(model, "")
        if unknown:
            return SdkProblem(
                "unknown_parameter", f"Unknown parameter: '{unknown[0]}'.", unknown[0]
            )
        return None

    return validate


_SDK_VALIDATOR: list[Any] = []  # loaded once, on first use


def cached_sdk_validator() -> Callable[[dict[str, Any]], SdkProblem | None] | None:
    """`sdk_validator()`, built once per process: importing the SDK's models takes about half a
    second."""
    if not _SDK_VALIDATOR:
        _SDK_VALIDATOR.append(sdk_validator())
    return _SDK_VALIDATOR[0]
