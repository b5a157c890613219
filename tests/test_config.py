"""Configuration: defaults, validation messages that name the key, precedence, secrets."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config import (
    ConfigError,
    GatewayConfig,
    Secret,
    load_config,
    parse_port_range,
    redacted,
)
from gateway.observe.logs import JsonFormatter, log_event

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gateway.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file() -> None:
    config = load_config(None, env={})
    assert config == GatewayConfig()
    assert config.sip.port == 5060
    assert config.sip.transports == ("udp", "tcp")
    assert config.media.idle_audio == "silence"
    assert config.media.rtp_timeout_s == 30.0
    assert config.media.symmetric_rtp is True
    assert config.media.echo is False
    assert config.calls.max_duration_s == 0.0


def test_example_file_is_valid(tmp_path: Path) -> None:
    # The shipped example must always load: it is what README points newcomers to.
    config = load_config(EXAMPLE, env={"SIP_PASSWORD": "pw"})
    assert config.registrations, "the example shows a registration"
    assert config.registrations[0].password.reveal() == "pw"


def test_full_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[sip]
host = "127.0.0.1"
port = 5070
advertised_host = "gw.example.com"
transports = ["udp"]
max_calls = 4
allow_networks = ["10.0.0.0/8", "::1/128"]
codecs = ["PCMA"]
inbound_auth = { realm = "gw", username = "pbx", password = "s3cret" }

[[registrations]]
registrar = "sip:127.0.0.1:5080"
username = "gateway"
password = "secret"
expires = 120

[media]
rtp_port_min = 30000
rtp_port_max = 30100
echo = true
idle_audio = "cn"
rtp_timeout_s = 10
inband_dtmf = true

[calls]
max_duration_s = 2.5

[log]
level = "debug"
format = "json"
""",
    )
    config = load_config(path, env={})
    assert config.sip.port == 5070
    assert config.sip.transports == ("udp",)
    assert config.sip.codecs == ("PCMA",)
    assert config.sip.inbound_auth.password.reveal() == "s3cret"
    assert config.registrations[0].expires == 120
    assert config.media.echo is True
    assert config.media.rtp_timeout_s == 10.0
    assert config.calls.max_duration_s == 2.5


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[sip]\nport = 70000\n", "sip.port: 70000 is not a valid port (1-65535)"),
        ("[sip]\nport = 0\n", "sip.port: 0 is not a valid port"),
        ('[sip]\nport = "5060"\n', "sip.port: '5060' is not an integer"),
        ("[sip]\nport = true\n", "sip.port: True is not an integer"),
        ("[sip]\nprot = 5060\n", "sip.prot: unknown key"),
        ("[sipp]\nport = 5060\n", "sipp: unknown key"),
        ('[sip]\nhost = "example.com"\n', "sip.host: 'example.com' is not an IP address"),
        ('[sip]\ntransports = ["udp", "sctp"]\n', "sip.transports[1]: 'sctp' is not one of"),
        ("[sip]\ntransports = []\n", "sip.transports: at least one transport"),
        ('[sip]\ncodecs = ["G729"]\n', "sip.codecs[0]: 'G729' is not one of PCMU, PCMA"),
        ("[sip]\nmax_calls = 0\n", "sip.max_calls: 0 must be at least 1"),
        ('[sip]\nallow_networks = ["10.0.0.0/33"]\n', "sip.allow_networks[0]: '10.0.0.0/33'"),
        ('[sip]\ntransports = "udp"\n', "sip.transports: expected a list"),
        (
            "[media]\nrtp_port_min = 100\n",
            "media.rtp_port_min: 100 is not a valid port (1024-65535)",
        ),
        (
            "[media]\nrtp_port_min = 20000\nrtp_port_max = 20000\n",
            "media.rtp_port_max: 20000 must be greater than media.rtp_port_min (20000)",
        ),
        (
            '[media]\nidle_audio = "music"\n',
            "media.idle_audio: 'music' is not one of silence, cn, none",
        ),
        ('[media]\necho = "yes"\n', "media.echo: 'yes' is not a boolean"),
        ("[media]\nrtp_timeout_s = -1\n", "media.rtp_timeout_s: -1.0 must be >= 0"),
        ("[calls]\nmax_duration_s = -5\n", "calls.max_duration_s: -5.0 must be >= 0"),
        ("[calls]\nmax_duraton_s = 5\n", "calls.max_duraton_s: unknown key"),
        ('[log]\nlevel = "loud"\n', "log.level: 'LOUD' is not one of"),
        ('[log]\nformat = "xml"\n', "log.format: 'xml' is not one of auto, json, text"),
        ('[realtime]\nurl = "http://x"\n', "realtime.url: 'http://x' is not a ws:// or wss:// URL"),
        ('[realtime]\napi_key = "sk-123"\n', "realtime.api_key: not allowed in a file"),
        (
            '[[registrations]]\nregistrar = "127.0.0.1"\nusername = "u"\n',
            "registrations[0].registrar: '127.0.0.1' is not a sip: or sips: URI",
        ),
        (
            '[[registrations]]\nregistrar = "sip:pbx"\n',
            "registrations[0].username: required key is missing",
        ),
        (
            '[[registrations]]\nregistrar = "sip:pbx"\nusername = "u"\nexpires = 5\n',
            "registrations[0].expires: 5 is not in 10-86400 seconds",
        ),
        (
            '[[registrations]]\nregistrar = "sip:pbx"\nusername = "u"\nrealm = "x"\n',
            "registrations[0].realm: unknown key",
        ),
        ("sip = 5\n", "sip: expected a table"),
        ("[sip\n", "invalid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, toml), env={})
    assert needle in str(excinfo.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", env={})


def test_precedence_file_env_cli(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\nport = 5070\nadvertised_host = "198.51.100.1"\nmax_calls = 7\n')
    env = {"SRG_SIP_PORT": "5080", "SRG_SIP_ADVERTISED_HOST": "203.0.113.9"}
    config = load_config(path, env=env, overrides={"sip.port": 5090})
    assert config.sip.port == 5090  # CLI beats env and file
    assert config.sip.advertised_host == "203.0.113.9"  # env beats file
    assert config.sip.max_calls == 7  # file beats default
    config = load_config(path, env=env)
    assert config.sip.port == 5080


def test_env_values_are_typed_and_errors_name_the_variable() -> None:
    config = load_config(
        None,
        env={
            "SRG_MEDIA_ECHO": "true",
            "SRG_SIP_TRANSPORTS": "udp",
            "SRG_CALLS_MAX_DURATION_S": "1.5",
            "SRG_LOG_FORMAT": "text",
        },
    )
    assert config.media.echo is True
    assert config.sip.transports == ("udp",)
    assert config.calls.max_duration_s == 1.5
    assert config.log.format == "text"
    with pytest.raises(ConfigError, match="SRG_SIP_PORT: 'abc' is not an integer"):
        load_config(None, env={"SRG_SIP_PORT": "abc"})
    with pytest.raises(ConfigError, match="SRG_MEDIA_ECHO: 'maybe' is not a boolean"):
        load_config(None, env={"SRG_MEDIA_ECHO": "maybe"})
    # An env value still goes through validation, with the config key named.
    with pytest.raises(ConfigError, match=r"sip\.port: 99999 is not a valid port"):
        load_config(None, env={"SRG_SIP_PORT": "99999"})


def test_password_sources(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n", encoding="utf-8")
    path = write(
        tmp_path,
        f"""
[[registrations]]
registrar = "sip:a.example"
username = "a"
password_env = "REG_PW"

[[registrations]]
registrar = "sip:b.example"
username = "b"
password_file = "{secret_file}"
""",
    )
    config = load_config(path, env={"REG_PW": "from-env", "OPENAI_API_KEY": "sk-test"})
    assert config.registrations[0].password.reveal() == "from-env"
    assert config.registrations[1].password.reveal() == "from-file"
    assert config.realtime.api_key.reveal() == "sk-test"

    with pytest.raises(
        ConfigError,
        match=r"registrations\[0\].password_env: environment variable REG_PW is not set",
    ):
        load_config(path, env={})


def test_password_sources_are_exclusive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[registrations]]\nregistrar = "sip:a"\nusername = "a"\npassword = "x"\npassword_env = "X"\n',
    )
    with pytest.raises(ConfigError, match=r"registrations\[0\].password: set only one of"):
        load_config(path, env={"X": "y"})


def test_secrets_are_redacted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sip]\ninbound_auth = { username = "pbx", password = "hunter2" }\n'
        '[[registrations]]\nregistrar = "sip:a"\nusername = "a"\npassword = "topsecret"\n',
    )
    config = load_config(path, env={"OPENAI_API_KEY": "sk-live-abc"})
    text = repr(config) + str(config) + repr(redacted(config))
    for secret in ("hunter2", "topsecret", "sk-live-abc"):
        assert secret not in text
    assert redacted(config)["registrations"][0]["password"] == "***"
    assert repr(Secret("x")) == "Secret('***')"

    # And through the log formatter, whether passed as a config, a Secret or a named field.
    record_logger = logging.getLogger("test.config.redaction")
    captured: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(JsonFormatter().format(record))

    handler = Capture()
    record_logger.addHandler(handler)
    record_logger.setLevel(logging.INFO)
    try:
        log_event(
            record_logger,
            "test.secrets",
            config=redacted(config),
            password="hunter2",
            key=config.realtime.api_key,
        )
    finally:
        record_logger.removeHandler(handler)
    assert captured and all(s not in captured[0] for s in ("hunter2", "topsecret", "sk-live-abc"))


def test_port_range_parsing() -> None:
    assert parse_port_range("10000-10100") == (10000, 10100)
    assert parse_port_range(" 20000 - 20010 ") == (20000, 20010)
    with pytest.raises(ConfigError, match="--rtp-ports: '10000' is not MIN-MAX"):
        parse_port_range("10000")


# -- issue 5: routes, control, records, webhooks, shutdown ------------------------------------------
ROUTE_BASE = """
[[registrations]]
registrar = "sip:192.0.2.10:5060"
username = "100"
name = "pbx"
password = "x"

[[tools]]
name = "crm"
description = "CRM lookup"
url = "http://127.0.0.1:9/crm"
"""


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[[routes]]\nname = "a"\nmatch = { header_regex = "x" }', "routes[0].match.header:"),
        (
            '[[routes]]\nname = "a"\n[[routes]]\nname = "b"\nmatch = { request_user_regex = "(" }',
            "routes[1].match.request_user_regex: '(' is not a regular expression",
        ),
        (
            '[[routes]]\nname = "a"\nmatch = { colour = "red" }',
            "routes[0].match.colour: unknown key",
        ),
        (
            '[[routes]]\nname = "a"\nmatch = { source_network = "10.0.0.0/33" }',
            "routes[0].match.source_network: '10.0.0.0/33' is not a CIDR",
        ),
        (
            '[[routes]]\nname = "a"\nmatch = { registration = "nope" }',
            "routes[0].match.registration: 'nope' is not a registrations name",
        ),
        ('[[routes]]\nname = "a"\ntools = ["weather"]', "routes[0].tools[0]: 'weather'"),
        (
            '[[routes]]\nname = "a"\nrealtime = { voice = 3 }',
            "routes[0].realtime.voice: 3 is not a string",
        ),
        (
            '[[routes]]\nname = "a"\nrealtime = { url = "ws://x" }',
            "routes[0].realtime.url: not a per-route realtime key",
        ),
        (
            '[[routes]]\nname = "a"\nrealtime = { eagerness = "fast" }',
            "routes[0].realtime.eagerness: 'fast' is not one of",
        ),
        (
            '[[routes]]\nname = "a"\ncalls = { dtmf_mode = "eat" }',
            "routes[0].calls.dtmf_mode: 'eat' is not one of",
        ),
        ('[[routes]]\nname = "a"\n[[routes]]\nname = "a"', "routes[1].name: 'a' must be unique"),
        ('[[routes]]\nname = "a"\nrecording = "maybe"', "routes[0].recording: 'maybe'"),
        ('[[routes]]\nname = "a"\nrecording = true', "records.dir: a route records calls"),
        ("[control]\nport = 70000", "control.port: 70000 is not a valid port"),
        ('[control]\nhost = "localhost"', "control.host: 'localhost' is not an IP address"),
        ('[control]\ntoken = "s3cret"', "control.token: not allowed in a file"),
        ('[control]\ntoken_env = "NO_SUCH_VAR_X"', "control.token_env: environment variable"),
        ("[records]\nrecording = true", "records.recording: true needs records.dir"),
        ('[webhooks]\ncall_ended_url = "ftp://x"', "webhooks.call_ended_url: 'ftp://x'"),
        ("[webhooks]\ntimeout_s = 0", "webhooks.timeout_s: 0.0 is not in 0.1-60 s"),
        ("[shutdown]\ndrain_timeout_s = -1", "shutdown.drain_timeout_s: -1.0 is not in"),
    ],
)
def test_product_errors_name_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ROUTE_BASE + toml), env={})
    assert needle in str(info.value)


def test_routes_and_product_sections_load(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    config = load_config(
        write(
            tmp_path,
            ROUTE_BASE
            + f"""
[[routes]]
name = "sales"
match = {{ request_user_regex = "1\\\\d\\\\d", header = "X-Route", header_value = "sales" }}
tools = ["crm"]
recording = false
realtime = {{ voice = "cedar", instructions = "Sell.", turn_detection = "server_vad" }}
calls = {{ dtmf_mode = "ignore", transfer_targets = [{{ name = "desk", uri = "sip:200@pbx" }}] }}

[control]
port = 0
token_file = "{token}"

[records]
dir = "{tmp_path}/records"
recording = true

[webhooks]
call_ended_url = "http://127.0.0.1:9/hook"

[shutdown]
drain_timeout_s = 12
""",
        ),
        env={"SRG_SHUTDOWN_DRAIN_TIMEOUT_S": "15"},
    )
    route = config.routes[0]
    assert route.recording == "off" and route.tools == ("crm",)
    assert config.control.token.reveal() == "tok-123"
    assert "tok-123" not in repr(config)
    assert config.shutdown.drain_timeout_s == 15.0  # environment beats the file
    assert config.registrations[0].name == "pbx"
    from gateway.config import route_config

    applied = route_config(config, 0)
    assert applied.realtime.voice == "cedar" and applied.realtime.model == config.realtime.model
    assert applied.calls.dtmf_mode == "ignore"
    assert applied.calls.transfer_targets[0].uri == "sip:200@pbx"
    assert [t.name for t in applied.tools] == ["crm"]


# -- control API and originate limits (issue 9) ---------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ('[control]\nallowed_hosts = ["evil example"]', {}, "control.allowed_hosts[0]"),
        ("[control]\nmax_body_bytes = 10", {}, "control.max_body_bytes: 10 is not in"),
        ("[control]\nmax_head_bytes = 999999999", {}, "control.max_head_bytes"),
        ("[control]\nread_timeout_s = 0", {}, "control.read_timeout_s: 0.0 is not in"),
        ('[control]\ntoken_env = "EMPTY_TOKEN"', {"EMPTY_TOKEN": " "}, "EMPTY_TOKEN is empty"),
        (
            '[[registrations]]\nregistrar = "sip:pbx"\nusername = "u"\n'
            'allowed_caller_ids = ["+1 555"]',
            {},
            "registrations[0].allowed_caller_ids[0]: '+1 555'",
        ),
    ],
)
def test_control_and_caller_id_errors_name_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, toml), env=env)
    assert needle in str(info.value)


def test_control_defaults_and_missing_token_file(tmp_path: Path) -> None:
    config = load_config(None, env={})
    control = config.control
    assert control.token_required and not control.metrics_public
    assert (control.max_body_bytes, control.max_head_bytes) == (64 * 1024, 16 * 1024)
    missing = tmp_path / "state" / "control.token"
    config = load_config(
        write(tmp_path, f'[control]\ntoken_file = "{missing}"\nallowed_hosts = ["gw.lan"]'),
        env={"SRG_CONTROL_METRICS_PUBLIC": "true"},
    )
    # A token file that does not exist yet is generated at start, not a config error.
    assert config.control.token.reveal() == "" and config.control.token_file == str(missing)
    assert config.control.metrics_public and config.control.allowed_hosts == ("gw.lan",)


# -- admission keys (issue 9) ------------------------------------------------------------------
def test_admission_defaults_are_closed_and_limited() -> None:
    sip = load_config(None, env={}).sip
    assert sip.allow_networks == ()
    assert (sip.invite_rate_per_source, sip.invite_burst_per_source) == (5.0, 10)
    assert sip.max_calls_per_source == 20 and sip.max_calls_per_source <= sip.max_calls
    assert sip.max_tracked_sources == 4096
    assert sip.inbound_auth.nonce_ttl_s == 300.0


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[sip]\ninvite_rate_per_source = 0\n", "sip.invite_rate_per_source: 0.0 must be > 0"),
        ("[sip]\ninvite_burst_per_source = 0\n", "sip.invite_burst_per_source: 0 must be"),
        ("[sip]\nmax_calls_per_source = 0\n", "sip.max_calls_per_source: 0 must be >= 1"),
        ("[sip]\nmax_tracked_sources = 2\n", "sip.max_tracked_sources: 2 must be 16-1000000"),
        (
            '[sip]\ninbound_auth = { username = "a", password = "b", nonce_ttl_s = 0 }\n',
            "sip.inbound_auth.nonce_ttl_s: 0.0 must be 1-86400",
        ),
    ],
)
def test_admission_keys_are_validated(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_config(path, env={})


def test_admission_env_overrides() -> None:
    env = {"SRG_SIP_INVITE_RATE_PER_SOURCE": "2.5", "SRG_SIP_MAX_CALLS_PER_SOURCE": "3"}
    sip = load_config(None, env=env).sip
    assert (sip.invite_rate_per_source, sip.max_calls_per_source) == (2.5, 3)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[media]\nrtp_latch_packets = 0\n", "media.rtp_latch_packets: 0 is not in 1-50"),
        ("[media]\ninput_burst_ms = 5\n", "media.input_burst_ms: 5 is not in 20-5000 ms"),
        ("[media]\nappend_ms = 10\n", "media.append_ms: 10 is not in 20-100 ms"),
        ("[media]\nappend_ms = 101\n", "media.append_ms: 101 is not in 20-100 ms"),
        ('[media]\nappend_ms = "40"\n', "media.append_ms"),
        ("[media]\nplayout_max_s = 0\n", "media.playout_max_s: 0 is not in 1-3600 s"),
        ('[media]\nrtp_latch_any_host = "yes"\n', "media.rtp_latch_any_host"),
        (
            "[media]\nrtp_port_quarantine_s = -1\n",
            "media.rtp_port_quarantine_s: -1 is not in 0-600 s",
        ),
        ("[media]\nrtp_port_quarantine_s = 601\n", "media.rtp_port_quarantine_s: 601"),
        ('[media]\nrtp_port_quarantine_s = "x"\n', "media.rtp_port_quarantine_s"),
        ("[media]\njitter_min_ms = -1\n", "media.jitter_min_ms: -1 is not in 0-500 ms"),
        (
            "[media]\njitter_min_ms = 60\njitter_max_ms = 40\n",
            "media.jitter_max_ms: 40 is not between media.jitter_min_ms (60) and 2000 ms",
        ),
        ("[media]\njitter_max_ms = 2001\n", "media.jitter_max_ms: 2001"),
    ],
)
def test_media_safety_keys_are_validated(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, toml), env={})
    assert needle in str(excinfo.value)


def test_media_safety_defaults_and_env() -> None:
    media = load_config(None, env={}).media
    assert (media.rtp_latch_packets, media.rtp_latch_any_host) == (3, False)
    assert (media.input_burst_ms, media.playout_max_s) == (200, 120.0)
    env = {"SRG_MEDIA_RTP_LATCH_PACKETS": "5", "SRG_MEDIA_INPUT_BURST_MS": "300"}
    media = load_config(None, env=env).media
    assert (media.rtp_latch_packets, media.input_burst_ms) == (5, 300)


def _services(config: GatewayConfig, endpoint: Any = None) -> Any:
    """What the process lends each call (only the configured values matter here)."""
    from gateway.call_settings import call_services_for

    return call_services_for(
        config,
        loop=None,
        metrics=None,
        webhooks=None,
        ports=None,
        clock=None,
        families=None,
        advertised_host="127.0.0.1",
        endpoint=endpoint,
        spawn=lambda coro: None,
        ended=lambda call: None,
    )


def test_jitter_bounds_default_and_reach_the_call_leg(tmp_path: Path) -> None:
    """media.jitter_min_ms / jitter_max_ms (issue 14): 20 / 200 ms by default, and what is
    configured is what each call's jitter buffer holds to."""
    from gateway.media.leg import MediaLeg

    media = load_config(None, env={}).media
    assert (media.jitter_min_ms, media.jitter_max_ms) == (20.0, 200.0)
    config = load_config(
        write(tmp_path, "[media]\njitter_min_ms = 40\njitter_max_ms = 80\n"), env={}
    )
    env = {"SRG_MEDIA_JITTER_MIN_MS": "30"}
    assert load_config(None, env=env).media.jitter_min_ms == 30.0
    leg_settings = _services(config).leg
    assert (leg_settings.jitter_min_ms, leg_settings.jitter_max_ms) == (40.0, 80.0)
    leg = MediaLeg(leg_settings, None, on_dtmf=lambda digit, ms, source: None)
    assert (leg.stream.config.jitter_min_ms, leg.stream.config.jitter_max_ms) == (40.0, 80.0)
    assert leg.stream.jitter.target_ms == 40.0


def test_append_ms_default_env_and_reaches_the_voice_session(tmp_path: Path) -> None:
    """media.append_ms (issue 14): 20 (each packet at once) by default; what is configured is
    the session's append size."""
    from gateway.realtime.client import Endpoint

    assert load_config(None, env={}).media.append_ms == 20
    assert load_config(None, env={"SRG_MEDIA_APPEND_MS": "60"}).media.append_ms == 60
    config = load_config(write(tmp_path, "[media]\nappend_ms = 40\n"), env={})
    services = _services(config, Endpoint.custom("ws://127.0.0.1:9/v1/realtime"))

    class Route:
        pass

    route = Route()
    route.config = config  # type: ignore[attr-defined]
    assert services.session_settings is not None
    settings = services.session_settings(route, "PCMU", "Be brief.", "100", "200")
    assert settings.append_s == 0.04


def test_rtp_port_quarantine_default_zero_and_env(tmp_path: Path) -> None:
    assert load_config(None, env={}).media.rtp_port_quarantine_s == 30.0
    off = load_config(write(tmp_path, "[media]\nrtp_port_quarantine_s = 0\n"), env={})
    assert off.media.rtp_port_quarantine_s == 0  # 0 = off is allowed
    env = {"SRG_MEDIA_RTP_PORT_QUARANTINE_S": "5"}
    assert load_config(None, env=env).media.rtp_port_quarantine_s == 5.0


# ---- SIP resource limits (issue 9) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[sip]\nmax_server_transactions = -1\n", "sip.max_server_transactions: -1 must be >= 0"),
        ("[sip]\ntcp_max_connections = 0\n", "sip.tcp_max_connections: 0 must be at least 1"),
        (
            "[sip]\ntcp_max_connections_per_source = 0\n",
            "sip.tcp_max_connections_per_source: 0 must be at least 1",
        ),
        ("[sip]\ntcp_message_deadline_s = 0\n", "sip.tcp_message_deadline_s: 0.0 must be > 0"),
        ("[sip]\ntcp_max_header_bytes = 100\n", "sip.tcp_max_header_bytes: 100 is not in"),
        ("[sip]\ntcp_max_body_bytes = 70000\n", "sip.tcp_max_body_bytes: 70000 is not in"),
        ("[sip]\ntimer_t1_ms = 50\n", "sip.timer_t1_ms: 50 is not in 100-5000"),
        ("[sip]\ntimer_t1_ms = 60000\n", "sip.timer_t1_ms: 60000 is not in 100-5000"),
        ("[sip]\ntimer_t1_ms = 0\n", "sip.timer_t1_ms: 0 is not in 100-5000"),
    ],
)
def test_sip_limit_errors_name_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, toml), env={})
    assert needle in str(excinfo.value)


def test_sip_limits_defaults_and_descriptor_budget(tmp_path: Path) -> None:
    from gateway.limits import FD_RESERVE, FDS_PER_CALL, sip_limits

    config = load_config(write(tmp_path, "[sip]\nmax_calls = 50\n"), env={})
    limits = sip_limits(config, fd_limit=100000)
    assert limits.max_server_transactions == 5000  # 100 per call
    assert limits.tcp_max_connections == 1024 and not limits.tcp_lowered
    small = sip_limits(config, fd_limit=1024)
    assert small.tcp_max_connections == 1024 - FD_RESERVE - FDS_PER_CALL * 50
    assert small.tcp_lowered
    # A narrow RTP range bounds the calls, hence the descriptors they need.
    narrow = load_config(
        write(tmp_path, "[media]\nrtp_port_min = 10000\nrtp_port_max = 10009\n"), env={}
    )
    assert sip_limits(narrow, fd_limit=1024).fd_for_calls == FDS_PER_CALL * 5
    env = {"SRG_SIP_MAX_SERVER_TRANSACTIONS": "300"}
    assert sip_limits(load_config(None, env=env)).max_server_transactions == 300


# --------------------------------------------------------------------------------------------
# issue 10: model and session settings


def test_default_model_is_not_deprecated_in_the_sdk() -> None:
    import inspect

    from openai.types.realtime import realtime_session_create_request_param as sdk

    from gateway.realtime.models import SHUTDOWN_DATES

    model = load_config(None, env={}).realtime.model
    assert model == "gpt-realtime-2.1"
    source = inspect.getsource(sdk)
    assert f'"{model}"' in source  # a model the SDK lists
    deprecated = source.split("Deprecated values:", 1)[1].split("Announced shutdown", 1)[0]
    assert f'"{model}"' not in deprecated
    # Every model the SDK marks deprecated is in our table (a newer SDK may add more).
    for name in re.findall(r'"([^"]+)"', deprecated):
        assert name in SHUTDOWN_DATES, name


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[realtime]\nspeed = 2.0", "realtime.speed"),
        ("[realtime]\nspeed = 0.1", "realtime.speed"),
        ('[realtime]\ntranscription_language = "German"', "realtime.transcription_language"),
        ('[realtime]\ntranscription_language = "de"', "realtime.transcription_model"),
        ('[realtime]\ntool_choice = "sometimes"', "realtime.tool_choice"),
        ('[realtime]\ntool_choice = "mcp:none_such"', "realtime.tool_choice"),
        ('[realtime]\ntool_choice = "function:lookup"', "realtime.tool_choice"),
        ("[realtime]\nmax_output_tokens = 5000", "realtime.max_output_tokens"),
        ("[realtime]\nmax_output_tokens = -1", "realtime.max_output_tokens"),
        ('[realtime]\ntruncation = "half"', "realtime.truncation"),
        ("[realtime]\ntruncation_retention_ratio = 1.5", "realtime.truncation_retention_ratio"),
        ('[realtime]\nreasoning_effort = "max"', "realtime.reasoning_effort"),
        (
            '[realtime]\nmodel = "gpt-realtime-mini"\nreasoning_effort = "low"',
            "realtime.reasoning_effort",
        ),
        ('[realtime]\nmodel = ""', "realtime.model"),
        (
            '[[realtime.mcp_servers]]\nserver_label = "a b"\nserver_url = "https://x.example"',
            "realtime.mcp_servers[0].server_label",
        ),
        (
            '[[realtime.mcp_servers]]\nserver_label = "crm"\nserver_url = "http://x.example"',
            "realtime.mcp_servers[0].server_url",
        ),
        (
            '[[realtime.mcp_servers]]\nserver_label = "crm"\nserver_url = "https://x.example"\n'
            'require_approval = "sometimes"',
            "realtime.mcp_servers[0].require_approval",
        ),
        (
            '[[realtime.mcp_servers]]\nserver_label = "crm"\nserver_url = "https://x.example"\n'
            'headers = { Authorization = "Bearer inline" }',
            "realtime.mcp_servers[0].headers",
        ),
        (
            '[[realtime.mcp_servers]]\nserver_label = "crm"\nserver_url = "https://x.example"\n'
            'headers_env = { "Bad Header" = "X" }',
            "realtime.mcp_servers[0].headers_env",
        ),
        (
            '[[realtime.mcp_servers]]\nserver_label = "crm"\nserver_url = "https://x.example"\n'
            "colour = 1",
            "realtime.mcp_servers[0].colour",
        ),
        (
            '[[routes]]\nname = "r"\nrealtime = { speed = 3.0 }',
            "routes[0].realtime.speed",
        ),
        (
            '[[routes]]\nname = "r"\nrealtime = { tool_choice = "mcp:crm" }',
            "routes[0].realtime.tool_choice",
        ),
        (
            '[[routes]]\nname = "r"\nrealtime = { max_output_token = 3 }',
            "routes[0].realtime.max_output_token",
        ),
        (
            '[[routes]]\nname = "r"\nrealtime = { mcp_servers = [ { server_label = "x" } ] }',
            "routes[0].realtime.mcp_servers[0].server_url",
        ),
    ],
)
def test_issue10_session_keys_are_validated_naming_the_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, toml), env={"X": "1"})
    assert str(info.value).startswith(key), str(info.value)


def test_mcp_header_secrets_come_from_env_and_stay_redacted(tmp_path: Path) -> None:
    from gateway.config.redact import configured_secrets

    path = write(
        tmp_path,
        '[[realtime.mcp_servers]]\nserver_label = "crm"\nserver_url = "https://x.example/mcp"\n'
        'headers_env = { Authorization = "CRM_AUTH" }\n'
        '[[routes]]\nname = "r"\nrealtime = { mcp_servers = [ { server_label = "kb", '
        'server_url = "https://kb.example/mcp", headers_env = { "X-Key" = "KB_KEY" } } ] }\n',
    )
    config = load_config(path, env={"CRM_AUTH": "Bearer s3cret-crm", "KB_KEY": "s3cret-kb"})
    assert config.realtime.mcp_servers[0].headers["Authorization"].reveal() == "Bearer s3cret-crm"
    text = repr(config) + str(redacted(config))
    assert "s3cret" not in text
    secrets = configured_secrets(config)
    assert "Bearer s3cret-crm" in secrets and "s3cret-kb" in secrets  # redacted from every log line


def test_env_overrides_new_scalar_keys() -> None:
    config = load_config(
        None, env={"SRG_REALTIME_SPEED": "1.2", "SRG_REALTIME_MAX_OUTPUT_TOKENS": "256"}
    )
    assert config.realtime.speed == 1.2 and config.realtime.max_output_tokens == 256


def test_tool_choice_names_a_tool_the_call_is_offered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"realtime\.tool_choice: 'transfer_call' is not a tool"):
        load_config(write(tmp_path, '[realtime]\ntool_choice = "function:transfer_call"'), env={})
    ok = load_config(
        write(
            tmp_path,
            '[realtime]\ntool_choice = "function:transfer_call"\n[calls]\n'
            'transfer_targets = [{ name = "op", uri = "sip:100@127.0.0.1" }]\n',
        ),
        env={},
    )
    assert ok.realtime.tool_choice == "function:transfer_call"


# --------------------------------------------------------------------------------------------
# issue 11: the package layout, and the settings protocols of the modules below the top


def test_every_public_name_is_importable_from_gateway_config() -> None:
    import gateway.config as config_package
    from gateway.secret import Secret as LowSecret

    for name in config_package.__all__:
        assert getattr(config_package, name) is not None, name
    assert config_package.Secret is LowSecret  # one Secret type, defined below the config


@pytest.mark.parametrize(
    ("protocol_path", "section"),
    [
        ("gateway.webhooks:WebhookSettings", "webhooks"),
        ("gateway.control_token:TokenSettings", "control"),
        ("gateway.limits:SipLimitSettings", "sip"),
        ("gateway.limits:RtpRangeSettings", "media"),
        ("gateway.limits:LimitSettings", ""),
        ("gateway.admission:AdmissionSettings", "sip"),
        ("gateway.admission:InboundAuthSettings", "sip.inbound_auth"),
    ],
)
def test_settings_protocols_name_fields_of_the_config_section(
    protocol_path: str, section: str
) -> None:
    """Modules below the top type what they read with a Protocol the config dataclass satisfies;
    a renamed or retyped config field must fail here, not at the first call."""
    import dataclasses
    import importlib
    import typing

    module_name, _, protocol_name = protocol_path.partition(":")
    protocol = getattr(importlib.import_module(module_name), protocol_name)
    target: object = GatewayConfig()
    for part in filter(None, section.split(".")):
        target = getattr(target, part)
    fields = {f.name: f for f in dataclasses.fields(target)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(type(target))
    members = [n for n, v in vars(protocol).items() if isinstance(v, property)]
    assert members, protocol_name
    for name in members:
        assert name in fields, f"{protocol_name}.{name} is not a field of [{section}]"
        wanted = typing.get_type_hints(vars(protocol)[name].fget)["return"]
        if isinstance(wanted, type) and not getattr(wanted, "_is_protocol", False):
            assert hints[name] == wanted, f"{protocol_name}.{name}: {wanted} != {hints[name]}"


async def test_sip_timer_t1_reaches_the_user_agent(tmp_path: Path, port_block: int) -> None:
    """sip.timer_t1_ms is RFC 3261's T1 for every transaction of the process (500 ms unless
    set; also from SRG_SIP_TIMER_T1_MS): Timer H, B and F are 64 x T1."""
    import asyncio

    from gateway.serve import Gateway

    assert load_config(None, env={}).sip.timer_t1_ms == 500
    assert load_config(None, env={"SRG_SIP_TIMER_T1_MS": "250"}).sip.timer_t1_ms == 250
    toml = (
        f'[sip]\nhost = "127.0.0.1"\nport = {port_block}\ntransports = ["udp"]\n'
        "timer_t1_ms = 200\n"
        f"[media]\nrtp_port_min = {port_block + 10}\nrtp_port_max = {port_block + 19}\n"
        "[control]\nenabled = false\n"
    )
    gateway = Gateway(load_config(write(tmp_path, toml), env={}))
    await asyncio.wait_for(gateway.start(), 10)
    try:
        assert gateway.ua is not None
        assert gateway.ua.timers.t1 == 0.2 and gateway.ua.timers.timeout == pytest.approx(12.8)
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), 10)
