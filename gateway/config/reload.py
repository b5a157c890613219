"""What SIGHUP may change: the keys a reload applies to the running gateway, and the plan for a
new configuration (keys applied, keys that need a restart). Everything not listed needs a
restart: a reload that changes one of those is refused as a whole, with an ERROR naming the keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.config.schema import GatewayConfig

RELOADABLE_PREFIXES = (
    "routes",
    "tools",
    "calls",
    "realtime",
    "sip.allow_networks",
    "sip.admit_local",
    "sip.inbound_auth",
    "sip.max_calls",
    "sip.invite_rate_per_source",
    "sip.invite_burst_per_source",
    "sip.max_calls_per_source",
    "sip.max_tracked_sources",
    # TLS files and verification: re-read on every SIGHUP (gateway/signalling_tls.py); the
    # listener itself (sip.tls.enabled, sip.tls.port) needs a restart.
    "sip.tls.cert_file",
    "sip.tls.key_file",
    "sip.tls.ca_file",
    "sip.tls.client_ca_file",
    "sip.tls.verify_client",
    "sip.tls.verify_server",
    "sip.tls.min_version",
    "sip.tls.allow_sdes_over_plain",
    # SRTP policy and suites: calls answered after the reload (gateway/call/srtp.py).
    "media.srtp",
    "media.srtp_suites",
)
# Connection-level [realtime] keys: the endpoint (and simulator) is chosen once at start.
RESTART_ONLY = frozenset(
    {
        "realtime.url",
        "realtime.api_key",
        "realtime.api_key_env",
        "realtime.provider",
        "realtime.simulator",
    }
)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (lists of tables compare as one key, e.g. `routes`)."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        keys: list[str] = []
        for f in dataclasses.fields(old):
            where = f"{prefix}.{f.name}" if prefix else f.name
            keys += changed_keys(getattr(old, f.name), getattr(new, f.name), where)
        return keys
    return [] if old == new else [prefix]


def reloadable(key: str) -> bool:
    if key in RESTART_ONLY:
        return False
    return any(key == p or key.startswith(p + ".") for p in RELOADABLE_PREFIXES)


def reload_plan(old: GatewayConfig, new: GatewayConfig) -> tuple[list[str], list[str]]:
    """(keys SIGHUP applies, keys that need a restart) between the running and the new config."""
    changed = changed_keys(old, new)
    return [k for k in changed if reloadable(k)], [k for k in changed if not reloadable(k)]
