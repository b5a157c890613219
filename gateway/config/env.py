"""`SRG_<SECTION>_<KEY>` environment variables as configuration overrides.

Every scalar or list key of a section has one (SRG_SIP_PORT, SRG_MEDIA_RTP_PORT_MIN...); tables
and lists of tables do not. Values are strings converted to the field's type, and a bad one is
reported naming the variable.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from gateway.config.schema import ENV_PREFIX, ConfigError, GatewayConfig, Secret

_ENV_SECTIONS = (
    "sip", "media", "calls", "log", "realtime", "control", "records", "webhooks", "shutdown"
)  # fmt: skip


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, key = dotted.partition(".")
    target = raw.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{section}: expected a table, got {type(target).__name__}")
    target[key] = value


def _env_keys() -> dict[str, tuple[str, str, Any]]:
    """SRG_<SECTION>_<KEY> -> (section, key, type) for every scalar or list key of a section."""
    keys: dict[str, tuple[str, str, Any]] = {}
    hints = typing.get_type_hints(GatewayConfig)
    for section in _ENV_SECTIONS:
        section_type = hints[section]
        for name, hint in typing.get_type_hints(section_type).items():
            if dataclasses.is_dataclass(hint) or hint is Secret or _is_table(hint):
                continue
            keys[f"{ENV_PREFIX}{section}_{name}".upper()] = (section, name, hint)
    return keys


def _is_table(hint: Any) -> bool:
    """A dict, or a list of tables: not expressible as one environment variable."""
    if hint is dict or typing.get_origin(hint) is dict:
        return True
    args = typing.get_args(hint) if typing.get_origin(hint) is tuple else ()
    return bool(args) and dataclasses.is_dataclass(args[0])


def apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, (section, name, hint) in _env_keys().items():
        if var not in env:
            continue
        text = env[var]
        set_dotted(raw, f"{section}.{name}", _parse_env_value(text, hint, var))


def _parse_env_value(text: str, hint: Any, var: str) -> Any:
    """Environment values are strings: convert them to the field's type, naming the variable."""
    text = text.strip()
    if hint is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}: {text!r} is not a boolean (true/false)")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{var}: {text!r} is not an integer") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{var}: {text!r} is not a number") from None
    if typing.get_origin(hint) is tuple:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text
