"""Keeping the configuration's secrets out of logs.

`redacted(config)` is the configuration as plain data for the start-up log line, every secret
replaced by ***. `configured_secrets(config)` lists the secret strings themselves for the log
filter (gateway.observe.logs `set_secrets`), which replaces each wherever it appears, whatever
logger wrote it: every `Secret` (Realtime API key, control token, SIP passwords) plus the
credentials people put in URLs: the password of a `user:password@` userinfo and the value of a
query parameter whose name says it is a credential (`?token=...`, `&api_key=...`, `sig=`) in
tool and webhook URLs.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.config.schema import GatewayConfig, Secret


def redacted(config: GatewayConfig) -> dict[str, Any]:
    """The config as plain data for a start-up log line, with every secret replaced by ***."""

    def walk(value: Any) -> Any:
        if isinstance(value, Secret):
            return "***" if value else ""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: walk(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(config)


# Query parameter names that carry a credential (matched anywhere in the lower-cased name).
_CREDENTIAL_PARAM = re.compile(r"token|key|secret|sig|pass|auth|credential|session")


def url_credentials(url: str) -> list[str]:
    """Password of the userinfo and credential-named query values of `url`."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if value and _CREDENTIAL_PARAM.search(name.lower()):
            found.append(value)
    return found


def configured_secrets(config: GatewayConfig) -> list[str]:
    """Every secret value in `config` (empty ones left out)."""
    values: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Secret):
            if value:
                values.append(value.reveal())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):  # MCP headers; a route's resolved overrides
            for item in value.values():
                walk(item)

    walk(config)
    urls = [config.realtime.url, config.webhooks.call_started_url, config.webhooks.call_ended_url]
    urls += [tool.url for tool in config.tools]
    for url in urls:
        if url:
            values += url_credentials(url)
    return values
