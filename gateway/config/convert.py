"""TOML values to typed configuration: `build` turns a table into its dataclass, checking each
value's type against the field's annotation and refusing unknown keys, so a typo such as
`rtp_port_mn` is an error naming the key rather than a silently ignored default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from gateway.config.schema import ConfigError, McpServerConfig, Secret

# Keys that only the loader fills in (resolved secrets); a file may not set them directly
# where a safer indirection exists.
_RESOLVED_ONLY = {"realtime.api_key", "control.token"}


def build_section(cls: Any, raw: Any, prefix: str) -> Any:
    """Turn a TOML table into dataclass `cls`, checking types and rejecting unknown keys."""
    if isinstance(raw, cls):  # already built (a route's MCP servers, resolved at load)
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        where = _join(prefix, key)
        if where in _RESOLVED_ONLY:
            source = "realtime.api_key_env" if where == "realtime.api_key" else "control.token_env"
            raise ConfigError(
                f"{where}: not allowed in a file; the value is read from the environment "
                f"variable named by {source} (or the matching *_file)"
            )
        if key not in known:
            raise ConfigError(f"{where}: unknown key")
        if cls is McpServerConfig and key == "headers":
            raise ConfigError(
                f"{where}: not allowed in a file; name environment variables in headers_env "
                '(e.g. headers_env = {Authorization = "CRM_MCP_AUTH"})'
            )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{_join(prefix, f.name)}: required key is missing")
            continue
        kwargs[f.name] = convert_value(hints[f.name], raw[f.name], _join(prefix, f.name))
    return cls(**kwargs)


def convert_value(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, key)
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {_describe(value)}")
        if dataclasses.is_dataclass(item_type):
            return tuple(
                build_section(item_type, item, f"{key}[{i}]") for i, item in enumerate(value)
            )
        return tuple(convert_value(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {_describe(value)}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {hint} for {key}")  # a bug, not user input
    if hint is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__}")
        return Secret(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {_describe(value)} is not a boolean (true/false)")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {_describe(value)} is not an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: {_describe(value)} is not a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {_describe(value)} is not a string")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
