"""Building the configuration: defaults < TOML file < `SRG_*` environment < command line."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.convert import build_section
from gateway.config.env import apply_env, set_dotted
from gateway.config.schema import ConfigError, GatewayConfig
from gateway.config.secret_sources import resolve_secrets
from gateway.config.validate import validate


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GatewayConfig:
    """Build the configuration: defaults < TOML file < `SRG_*` environment < `overrides`.

    `overrides` maps dotted keys (`"sip.port"`) to already-typed values (from the CLI).
    Raises `ConfigError` naming the key on any problem.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(Path(path))
    apply_env(raw, env)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(raw, dotted, value)
    _normalise_routes(raw)
    config = build_section(GatewayConfig, raw, "")
    config = resolve_secrets(config, env)
    validate(config)
    return config


def _normalise_routes(raw: dict[str, Any]) -> None:
    """`recording = true/false` in a route reads naturally; the field stores "on"/"off" so that
    "not set" ("") can inherit [records] recording."""
    routes = raw.get("routes")
    if not isinstance(routes, list):
        return
    for route in routes:
        if isinstance(route, dict) and isinstance(route.get("recording"), bool):
            route["recording"] = "on" if route["recording"] else "off"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
