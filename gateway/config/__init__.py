"""Gateway configuration: TOML file < environment < command line, validated once at start.

Every problem is reported as a `ConfigError` whose message starts with the dotted key
(`sip.port: 70000 is not a valid port (1-65535)`), so an operator can fix the file without
reading code. Unknown keys are errors too: a typo such as `rtp_port_mn` would otherwise be
silently ignored and the default used, which is how "no audio" tickets start (lessons.md 3.1).

Secrets (SIP passwords, the OpenAI API key) are wrapped in `Secret`, whose repr and str are
redacted, so logging a config object or a dataclass never leaks them.

The package, one module per job: schema.py (the dataclasses, ConfigError), convert.py (TOML
values to typed fields), env.py (SRG_* overrides), secret_sources.py (inline/_env/_file
secrets), load.py (load_config), checks.py (the shared value checks), validate.py (validate),
per_call.py (the sections a route may override, route_config), redact.py (the start-up log
view). Everything public is importable from `gateway.config`.
"""

from __future__ import annotations

from gateway.config.checks import is_ip_address, parse_port_range
from gateway.config.load import load_config
from gateway.config.per_call import route_config
from gateway.config.redact import redacted
from gateway.config.schema import (
    DEFAULT_REALTIME_URL,
    ENV_PREFIX,
    VALID_CODECS,
    VALID_IDLE_AUDIO,
    VALID_LOG_FORMATS,
    VALID_LOG_LEVELS,
    VALID_TRANSPORTS,
    CallsConfig,
    ConfigError,
    ControlConfig,
    DigitActionConfig,
    GatewayConfig,
    InboundAuthConfig,
    LogConfig,
    McpServerConfig,
    MediaConfig,
    RealtimeConfig,
    RecordsConfig,
    RegistrationConfig,
    RouteConfig,
    RouteMatchConfig,
    ShutdownConfig,
    SipConfig,
    TlsConfig,
    ToolConfig,
    TransferTargetConfig,
    WebhooksConfig,
)
from gateway.config.validate import registration_name, validate
from gateway.secret import Secret

__all__ = [
    "DEFAULT_REALTIME_URL",
    "ENV_PREFIX",
    "VALID_CODECS",
    "VALID_IDLE_AUDIO",
    "VALID_LOG_FORMATS",
    "VALID_LOG_LEVELS",
    "VALID_TRANSPORTS",
    "CallsConfig",
    "ConfigError",
    "ControlConfig",
    "DigitActionConfig",
    "GatewayConfig",
    "InboundAuthConfig",
    "LogConfig",
    "McpServerConfig",
    "MediaConfig",
    "RealtimeConfig",
    "RecordsConfig",
    "RegistrationConfig",
    "RouteConfig",
    "RouteMatchConfig",
    "Secret",
    "ShutdownConfig",
    "SipConfig",
    "TlsConfig",
    "ToolConfig",
    "TransferTargetConfig",
    "WebhooksConfig",
    "is_ip_address",
    "load_config",
    "parse_port_range",
    "redacted",
    "registration_name",
    "route_config",
    "validate",
]
