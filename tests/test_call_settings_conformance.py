"""Issue-10 call keys: validated with the key named, and carried into the call policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.call_settings import call_policy_for
from gateway.config import ConfigError, load_config


def load(tmp_path: Path, calls: str) -> object:
    path = tmp_path / "gw.toml"
    path.write_text(
        '[calls]\ntransfer_targets = [{ name = "operator", uri = "sip:100@pbx.example.com" }]\n'
        + calls
    )
    return load_config(path, env={})


def test_keys_reach_the_call_policy(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "idle_prompt_s = 12.0\nidle_prompts_max = 3\nfailed_response_retries = 2\n"
        'failed_response_transfer = "operator"\nidle_prompt_instructions = "Still there?"\n',
    )
    policy = call_policy_for(config)  # type: ignore[arg-type]
    assert (policy.idle_prompt_s, policy.idle_prompts_max) == (12.0, 3)
    assert (policy.failed_response_retries, policy.failed_response_transfer) == (2, "operator")
    assert policy.idle_prompt_instructions == "Still there?"
    assert policy.idle_goodbye_instructions  # unset: the built-in text


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("idle_prompt_s = 0.5", "calls.idle_prompt_s"),
        ("idle_prompts_max = 11", "calls.idle_prompts_max"),
        ("failed_response_retries = 9", "calls.failed_response_retries"),
        ('failed_response_transfer = "nobody"', "calls.failed_response_transfer"),
        ('replay_transcription_model = "a b"', "calls.replay_transcription_model"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, line + "\n")


def test_defaults_are_off_or_safe() -> None:
    config = load_config(None, env={})
    assert config.calls.idle_prompt_s == 0.0  # the watchdog is opt-in
    assert config.calls.failed_response_retries == 1
    assert config.calls.replay_transcription_model == "gpt-4o-mini-transcribe"
