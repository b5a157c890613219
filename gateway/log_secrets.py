"""The secret strings of a configuration, for the log redaction (`gateway.observe.logs`).

Every `Secret` (Realtime API key, control token, SIP passwords) plus the credentials people put
in URLs: the password of a `user:password@` userinfo and the value of a query parameter whose
name says it is a credential (`?token=...`, `&api_key=...`, `sig=`) in tool and webhook URLs.
The log filter replaces each of these strings wherever it appears, whatever logger wrote it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.config import GatewayConfig, Secret

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
