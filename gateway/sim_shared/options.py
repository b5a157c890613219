"""Reading a simulator's options from plain data (CLI `--script` JSON, TOML config), the same way
for both simulators (gateway/realtime/simulator/options.py, gateway/live/simulator/options.py):
unknown keys are a ValueError naming them, `tool_calls` entries are tables of the rule's fields,
lists become tuples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson


def plain_values(
    options: dict[str, Any],
    fields: Iterable[str],
    rule_type: type,
    tuple_keys: Iterable[str],
    what: str,
    rules_key: str,
) -> dict[str, Any]:
    """`options` checked against the option `fields` and ready for the options dataclass.
    `what` names the options in the unknown-key error ("simulator", "live simulator");
    `rules_key` names `tool_calls` in a rule's error ("tool_calls", "live.tool_calls")."""
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"unknown {what} option(s): {', '.join(unknown)}")
    values = dict(options)
    rule_fields = set(rule_type.__dataclass_fields__)  # type: ignore[attr-defined]
    rules = []
    for index, rule in enumerate(values.get("tool_calls") or ()):
        if isinstance(rule, rule_type):
            rules.append(rule)
            continue
        if not isinstance(rule, dict) or "name" not in rule:
            raise ValueError(f"{rules_key}[{index}] must be a table with at least a name")
        extra = sorted(set(rule) - rule_fields)
        if extra:
            raise ValueError(f"{rules_key}[{index}]: unknown field(s) {', '.join(extra)}")
        rules.append(rule_type(**rule))
    if "tool_calls" in values:
        values["tool_calls"] = tuple(rules)
    for key in tuple_keys:
        if key in values:
            values[key] = tuple(values[key])
    return values


def arguments_json(arguments: str | dict[str, Any]) -> str:
    """A tool-call rule's arguments as the JSON string the service sends (a string is sent as
    written, so a test can send bad JSON)."""
    if isinstance(arguments, str):
        return arguments
    return orjson.dumps(arguments).decode()
