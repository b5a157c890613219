"""[realtime] api = "live" (issue 12): per route, endpoints, the default model, Realtime-only
keys refused with errors naming the key (and the route), and the session.start built from the
configuration validating against openai.types.live."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.call_settings import (
    call_policy_for,
    live_endpoint_for,
    live_session_config_for,
    session_settings_for,
    uses_live,
    voice_config_for,
)
from gateway.config import ConfigError, GatewayConfig, load_config, route_config
from gateway.live import protocol as lp
from gateway.live.backend import LiveBackend
from gateway.realtime.backend import RealtimeBackend
from tests.live.validate import check_live_client_event

LIVE = """
[realtime]
api = "live"
voice = "cedar"
reasoning_effort = "low"
max_output_tokens = 400
delegation_instructions = "Use lookup for orders."

[calls]
transfer_targets = [ { name = "operator", uri = "sip:100@pbx.example.com" } ]

[[tools]]
name = "lookup"
description = "Look up an order."
url = "https://crm.example.com/lookup"
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> GatewayConfig:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return load_config(path, env=env or {})


def test_live_session_start_from_the_configuration(tmp_path: Path) -> None:
    config = load(tmp_path, LIVE)
    live = live_session_config_for(config, "PCMA", "Be brief.")
    event = lp.session_start(live)
    check_live_client_event(event)
    session = event["session"]
    assert session["model"] == "gpt-live-1"  # realtime.model not set
    assert session["audio"] == {
        "format": {"type": "audio/pcma", "rate": 8000},
        "output": {"voice": "cedar"},
    }
    responses = session["delegation"]["responses"]
    names = [tool["name"] for tool in responses["tools"]]
    assert names == ["end_call", "transfer_call", "send_dtmf", "lookup"]
    assert responses["instructions"] == "Use lookup for orders."
    assert responses["max_output_tokens"] == 400
    assert responses["reasoning"] == {"effort": "low"}
    assert call_policy_for(config).continuous_output
    assert isinstance(voice_config_for(config, "PCMU", "x"), lp.LiveSessionConfig)


def test_api_defaults_to_realtime(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.realtime.api == "realtime"
    assert not uses_live(config)
    assert not call_policy_for(config).continuous_output
    assert live_endpoint_for(config) is None  # no key, nobody uses it: no error either


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[realtime]\napi = "gpt"\n', "realtime.api"),
        ('[realtime]\napi = "live"\nturn_detection = "server_vad"\n', "realtime.turn_detection"),
        ('[realtime]\napi = "live"\nspeed = 1.2\n', "realtime.speed"),
        ('[realtime]\napi = "live"\ninterrupt_response = false\n', "realtime.interrupt_response"),
        (
            '[realtime]\napi = "live"\ntranscription_model = "gpt-4o-mini-transcribe"\n',
            "realtime.transcription_model",
        ),
        ('[realtime]\napi = "live"\nnoise_reduction = "near_field"\n', "realtime.noise_reduction"),
        ('[realtime]\napi = "live"\ntruncation = "disabled"\n', "realtime.truncation"),
        ('[realtime]\napi = "live"\nmodel = "gpt-realtime-mini"\n', "realtime.model"),
        ('[realtime]\napi = "live"\nmax_output_tokens = 8\n', "realtime.max_output_tokens"),
        ('[realtime]\ndelegation_instructions = "x"\n', "realtime.delegation_instructions"),
        (
            '[realtime]\napi = "live"\ninstructions = "' + "x" * 50_000 + '"\n',
            "realtime.instructions",
        ),
    ],
)
def test_keys_of_the_other_api_are_errors_naming_the_key(
    tmp_path: Path, toml: str, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load(tmp_path, toml)


def test_per_route_api_and_its_errors_name_the_route(tmp_path: Path) -> None:
    text = """
[[routes]]
name = "live"
match = { request_user = "200" }
realtime = { api = "live", model = "gpt-live-1.1" }
"""
    config = load(tmp_path, text)
    assert uses_live(config)
    route = route_config(config, 0)
    assert route.realtime.api == "live"
    live = voice_config_for(route, "PCMU", "x")
    assert isinstance(live, lp.LiveSessionConfig) and live.model == "gpt-live-1.1"
    assert not isinstance(voice_config_for(config, "PCMU", "x"), lp.LiveSessionConfig)
    bad = text.replace('model = "gpt-live-1.1"', "speed = 1.2")
    with pytest.raises(ConfigError, match=r"routes\[0\]\.realtime\.speed"):
        load(tmp_path, bad)


def test_endpoints_openai_azure_simulator(tmp_path: Path) -> None:
    config = load(tmp_path, '[realtime]\napi = "live"\n', env={"OPENAI_API_KEY": "sk-x"})
    endpoint = live_endpoint_for(config)
    assert endpoint is not None
    assert endpoint.url == "wss://api.openai.com/v1/live/sessions"
    assert endpoint.headers == {"Authorization": "Bearer sk-x"}
    azure = load(
        tmp_path,
        '[realtime]\napi = "live"\nprovider = "azure"\nurl = "wss://myres.openai.azure.com"\n',
        env={"OPENAI_API_KEY": "k"},
    )
    endpoint = live_endpoint_for(azure)
    assert endpoint is not None
    assert endpoint.url == "wss://myres.openai.azure.com/openai/v1/live/sessions"
    assert endpoint.headers == {"api-key": "k"}

    class LiveSim:  # the built-in simulator: the same server serves the Live path
        url = "ws://127.0.0.1:4321/v1/realtime"
        live_url = "ws://127.0.0.1:4321/v1/live/sessions?x"

    endpoint = live_endpoint_for(load(tmp_path, '[realtime]\napi = "live"\n'), LiveSim())
    assert endpoint is not None and endpoint.url == LiveSim.live_url
    assert endpoint.headers == {"Authorization": "Bearer simulator"}  # it wants a token


def test_a_live_route_without_a_key_or_simulator_is_an_error(tmp_path: Path) -> None:
    config = load(tmp_path, '[realtime]\napi = "live"\nsimulator = "never"\n')
    with pytest.raises(ConfigError, match="api_key_env"):
        live_endpoint_for(config)


def test_session_settings_carry_the_routes_backend(tmp_path: Path) -> None:
    from gateway.wsock import Endpoint

    live = load(tmp_path, LIVE)
    settings = session_settings_for(
        live, Endpoint("ws://x"), "PCMU", "x", caller="a", callee="b", input_burst_s=0.2
    )
    assert isinstance(settings.backend, LiveBackend)
    realtime = load(tmp_path, "")
    settings = session_settings_for(
        realtime, Endpoint("ws://x"), "PCMU", "x", caller="a", callee="b", input_burst_s=0.2
    )
    assert isinstance(settings.backend, RealtimeBackend)
