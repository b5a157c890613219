"""Walk the `openai` SDK's GA models and the simulator's schema tables side by side.

`differences(sdk_annotation, simulator_check)` lists every field one accepts and the other does
not, recursively through nested objects, tagged unions (`type`) and lists. Leaves (strings,
numbers, enums) are compared by the mutation tests in test_simulator_schema.py; this module is
about *which keys exist*, which is how the simulator fell behind the SDK before (MCP tool
fields). A simulator check without tables (`c_any`, a hand-written function) is free-form
there and is not descended into.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import pydantic


def sdk_models(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, Union, List, Annotated)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return sdk_models(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, tuple):
        return [m for arg in get_args(annotation) for m in sdk_models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return []


def _tag(model: type[pydantic.BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is None:
        return None
    values = [a for a in get_args(_strip_optional(field.annotation))]
    if get_origin(_strip_optional(field.annotation)) is Literal and len(values) == 1:
        return str(values[0])
    return None


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def sim_objects(check: Any) -> list[Any]:
    """The simulator's object checks (with `.fields` or `.variants`) inside `check`."""
    if hasattr(check, "fields") or hasattr(check, "variants"):
        return [check]
    if hasattr(check, "inner"):
        return sim_objects(check.inner)
    if hasattr(check, "alternatives"):
        return [o for alt in check.alternatives for o in sim_objects(alt)]
    return []


def differences(annotation: Any, check: Any, path: str) -> list[str]:
    models = sdk_models(annotation)
    if not models:
        return []  # a leaf for the SDK
    objects = sim_objects(check)
    if not objects:
        return []  # free-form in the simulator (c_any or a hand-written check)
    variants: dict[str | None, Any] = {}
    for obj in objects:
        if hasattr(obj, "variants"):
            variants.update(obj.variants)
        else:
            variants[None] = obj
    out: list[str] = []
    tagged = {_tag(m): m for m in models}
    if set(tagged) == {None} or set(variants) == {None}:
        # Not a tagged union on either side: compare the (first) object of each.
        return compare_model(models[0], variants[next(iter(variants))], path)
    for tag, model in tagged.items():
        if tag not in variants:
            out.append(f"{path}: type {tag!r} is accepted by the SDK, not by the simulator")
        else:
            out += compare_model(model, variants[tag], f"{path}<{tag}>")
    for tag in variants:
        if tag not in tagged:
            out.append(f"{path}: type {tag!r} is accepted by the simulator, not by the SDK")
    return out


def compare_model(model: type[pydantic.BaseModel], check: Any, path: str) -> list[str]:
    fields = getattr(check, "fields", None)
    if fields is None:
        return []  # a hand-written check (e.g. message items by role)
    sdk_keys = {f.alias or name: f for name, f in model.model_fields.items()}
    out = [
        f"{path}.{key}: accepted by the SDK ({model.__name__}), rejected by the simulator"
        for key in sorted(set(sdk_keys) - set(fields))
    ]
    out += [
        f"{path}.{key}: accepted by the simulator, not a field of the SDK's {model.__name__}"
        for key in sorted(set(fields) - set(sdk_keys))
    ]
    for key in sorted(set(sdk_keys) & set(fields)):
        out += differences(sdk_keys[key].annotation, fields[key], f"{path}.{key}")
    return out
