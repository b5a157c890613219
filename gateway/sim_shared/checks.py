"""Client-event validation combinators shared by the simulators (Realtime GA in
gateway/realtime/simulator/schema.py, GPT-Live in gateway/live/simulator/schema.py).

Each check takes (value, dotted path) and raises `Invalid` with the error code, message and param
the services send for a bad parameter (unknown_parameter, missing_required_parameter,
invalid_value; invalid_type is ASSUMED wording). The checks stay readable by a program
(`fields`, `variants`, `inner`, `alternatives`), so the SDK drift tests
(tests/realtime/sdk_drift.py) can walk them next to the `openai` SDK's models.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any


class Invalid(Exception):
    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


Check = Callable[[Any, str], None]


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def bad_type(path: str, expected: str, value: Any) -> Invalid:
    # ASSUMED wording/code, modelled on the OpenAI API's "Invalid type for 'x'" errors.
    return Invalid(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {kind_of(value)} instead.",
        path,
    )


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def c_str(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise bad_type(path, "a string", value)


def c_bool(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise bad_type(path, "a boolean", value)


def c_any(value: Any, path: str) -> None:
    return None


def c_int(lo: int | None = None, hi: int | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_type(path, "an integer", value)
        _range(value, lo, hi, path)

    return check


def c_num(lo: float | None = None, hi: float | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_type(path, "a number", value)
        _range(value, lo, hi, path)

    return check


def _range(value: float, lo: float | None, hi: float | None, path: str) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"{lo if lo is not None else '-inf'} and {hi if hi is not None else 'inf'}"
        raise Invalid(
            "invalid_value",
            f"Invalid '{path}': expected a value between {bounds}, but got {value} instead.",
            path,
        )


def c_enum(*values: Any) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in values or isinstance(value, bool) != isinstance(values[0], bool):
            supported = ", ".join(f"'{v}'" for v in values)
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {supported}.",
                path,
            )

    return check


def c_nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    check.inner = inner  # type: ignore[attr-defined]  # schema_tables() walks these
    return check


def c_list(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise bad_type(path, "an array", value)
        for index, element in enumerate(value):
            inner(element, f"{path}[{index}]")

    check.inner = inner  # type: ignore[attr-defined]
    return check


def c_obj(
    required: dict[str, Check] | None = None, optional: dict[str, Check] | None = None
) -> Check:
    required = required or {}
    optional = optional or {}

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise bad_type(path, "an object", value)
        for key in value:
            if key not in required and key not in optional:
                param = join(path, key)
                raise Invalid("unknown_parameter", f"Unknown parameter: '{param}'.", param)
        for key, sub in required.items():
            if key not in value:
                param = join(path, key)
                raise Invalid(
                    "missing_required_parameter", f"Missing required parameter: '{param}'.", param
                )
            sub(value[key], join(path, key))
        for key, sub in optional.items():
            if key in value:
                sub(value[key], join(path, key))

    # The tables stay readable by a program: tests compare them with the SDK's models.
    check.fields = {**required, **optional}  # type: ignore[attr-defined]
    return check


def c_tagged(variants: dict[str, Check], tag: str = "type") -> Check:
    """An object whose `tag` selects the schema (the variants must list the tag themselves)."""
    tag_check = c_enum(*variants)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise bad_type(path, "an object", value)
        if tag not in value:
            param = join(path, tag)
            raise Invalid(
                "missing_required_parameter", f"Missing required parameter: '{param}'.", param
            )
        tag_check(value[tag], join(path, tag))
        variants[value[tag]](value, path)

    check.variants = variants  # type: ignore[attr-defined]
    return check


def c_either(*checks: Check) -> Check:
    """First alternative that accepts; otherwise the error of the alternative of the right kind."""

    def check(value: Any, path: str) -> None:
        errors: list[Invalid] = []
        for alternative in checks:
            try:
                alternative(value, path)
                return
            except Invalid as exc:
                errors.append(exc)
        typed = [e for e in errors if e.code != "invalid_type"]
        raise (typed or errors)[0]

    check.alternatives = checks  # type: ignore[attr-defined]
    return check


def typed(name: str, **optional: Check) -> Check:
    return c_obj({"type": c_enum(name)}, optional)


def envelope_problem(event: Any, known: Container[str], supported: Sequence[str]) -> Invalid | None:
    """The checks before a client event's own schema, worded alike by both services: an object,
    with a string `type` that is one of `known` (a dict or set: this runs on every input audio
    append); `supported` lists the types in the service's order for the error message."""
    if not isinstance(event, dict):
        return Invalid(
            "invalid_type",
            f"Invalid type for event: expected an object, but got {kind_of(event)} instead.",
            None,
        )
    if "type" not in event:
        return Invalid("missing_required_parameter", "Missing required parameter: 'type'.", "type")
    kind = event["type"]
    if not isinstance(kind, str):  # a list or object here must not reach the dict lookups
        return Invalid(
            "invalid_type",
            f"Invalid type for 'type': expected a string, but got {kind_of(kind)} instead.",
            "type",
        )
    if kind not in known:
        listed = ", ".join(f"'{t}'" for t in supported)
        return Invalid(
            "invalid_value", f"Invalid value: '{kind}'. Supported values are: {listed}.", "type"
        )
    return None
