"""The small checks every section uses (port, IP literal, choice, URI, plain http), each
raising `ConfigError` with the message format the operator sees: `<key>: <value> <problem>`.
"""

from __future__ import annotations

import ipaddress
import re

from gateway.config.schema import ConfigError
from gateway.http_post import plain_http_problem
from sip.uri import UriError, parse_uri

SIP_URI = re.compile(r"^sips?:[^\s]+$", re.IGNORECASE)
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def check_port(key: str, port: int, low: int = 1) -> None:
    if not low <= port <= 65535:
        raise ConfigError(f"{key}: {port} is not a valid port ({low}-65535)")


def check_ip(key: str, value: str) -> None:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not an IP address") from None


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def check_plain_http(key: str, url: str, allowed: bool, section: str) -> None:
    """http:// only to loopback, or with `<section>.allow_plain_http = true` (issue 9)."""
    problem = plain_http_problem(url, allowed) if url else None
    if problem is not None:
        raise ConfigError(
            f"{key}: {problem.replace('allow_plain_http', f'{section}.allow_plain_http')}"
        )


def parses_as_uri(value: str) -> bool:
    # The same parser the registration client uses, so whatever passes here also starts.
    try:
        parse_uri(value)
    except (UriError, ValueError):
        return False
    return True


def is_ip_address(value: str) -> bool:
    """An IPv4/IPv6 literal (brackets allowed), not a host name."""
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def parse_port_range(text: str) -> tuple[int, int]:
    """`"10000-20000"` -> (10000, 20000); raises ConfigError naming `--rtp-ports`."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--rtp-ports: {text!r} is not MIN-MAX (e.g. 10000-20000)")
    return int(match.group(1)), int(match.group(2))
