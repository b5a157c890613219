"""Where secrets come from: inline, an environment variable (`*_env`) or a file (`*_file`).

Resolved once at load, so the rest of the gateway only ever sees `Secret` values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from gateway.config.convert import convert_value
from gateway.config.schema import ConfigError, GatewayConfig, McpServerConfig, RouteConfig, Secret


def _read_secret(
    key: str, inline: Secret, env_name: str, file_name: str, env: Mapping[str, str]
) -> Secret:
    """One password source only: inline, `*_env` (variable name) or `*_file` (path)."""
    sources = [s for s in (bool(inline), bool(env_name), bool(file_name)) if s]
    if len(sources) > 1:
        raise ConfigError(f"{key}: set only one of password, password_env, password_file")
    if env_name:
        if env_name not in env:
            raise ConfigError(f"{key}_env: environment variable {env_name} is not set")
        return Secret(env[env_name])
    if file_name:
        try:
            # Files written by `echo secret > f` end with a newline that is not the password.
            return Secret(Path(file_name).read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key}_file: cannot read {file_name!r} ({exc})") from None
    return inline


def resolve_secrets(config: GatewayConfig, env: Mapping[str, str]) -> GatewayConfig:
    regs = tuple(
        dataclasses.replace(
            reg,
            password=_read_secret(
                f"registrations[{i}].password",
                reg.password,
                reg.password_env,
                reg.password_file,
                env,
            ),
        )
        for i, reg in enumerate(config.registrations)
    )
    auth = config.sip.inbound_auth
    auth = dataclasses.replace(
        auth,
        password=_read_secret(
            "sip.inbound_auth.password", auth.password, auth.password_env, auth.password_file, env
        ),
    )
    api_key = (
        Secret(env.get(config.realtime.api_key_env, ""))
        if config.realtime.api_key_env
        else Secret("")
    )
    control = config.control
    if control.token_env and control.token_file:
        raise ConfigError("control.token_env: set only one of token_env, token_file")
    token_file = control.token_file
    if token_file and not Path(token_file).exists():
        token_file = ""  # generated at start (gateway/control_token.py), not an error
    token = _read_secret("control.token", Secret(""), control.token_env, token_file, env)
    if control.token_env and not token.reveal().strip():
        raise ConfigError(f"control.token_env: environment variable {control.token_env} is empty")
    if token_file and not token.reveal().strip():
        raise ConfigError(f"control.token_file: {token_file!r} is empty")
    control = dataclasses.replace(control, token=token)
    mcp = _resolve_mcp(config.realtime.mcp_servers, "realtime.mcp_servers", env)
    return dataclasses.replace(
        config,
        control=control,
        registrations=regs,
        sip=dataclasses.replace(config.sip, inbound_auth=auth),
        realtime=dataclasses.replace(config.realtime, api_key=api_key, mcp_servers=mcp),
        routes=tuple(_resolve_route_mcp(route, i, env) for i, route in enumerate(config.routes)),
    )


def _resolve_mcp(
    servers: tuple[McpServerConfig, ...], key: str, env: Mapping[str, str]
) -> tuple[McpServerConfig, ...]:
    """Read each MCP server's header values from the environment variables it names."""
    resolved = []
    for i, server in enumerate(servers):
        headers: dict[str, Secret] = {}
        for header, var in server.headers_env.items():
            where = f"{key}[{i}].headers_env.{header}"
            if not isinstance(var, str) or not var:
                raise ConfigError(f"{where}: expected the name of an environment variable")
            if not env.get(var, "").strip():
                raise ConfigError(f"{where}: environment variable {var} is not set or empty")
            headers[header] = Secret(env[var].strip())
        resolved.append(dataclasses.replace(server, headers=headers))
    return tuple(resolved)


def _resolve_route_mcp(route: RouteConfig, index: int, env: Mapping[str, str]) -> RouteConfig:
    """A route's `realtime.mcp_servers` override, built and resolved now (route_config has no
    environment to read header secrets from)."""
    raw = route.realtime.get("mcp_servers")
    if raw is None:
        return route
    key = f"routes[{index}].realtime.mcp_servers"
    built = convert_value(tuple[McpServerConfig, ...], raw, key)
    realtime = {**route.realtime, "mcp_servers": _resolve_mcp(built, key, env)}
    return dataclasses.replace(route, realtime=realtime)
