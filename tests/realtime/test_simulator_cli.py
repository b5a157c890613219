"""`python -m gateway simulator` (the one simulator entry point) serves GA sessions; `open_session` connects+configures."""

from __future__ import annotations

import asyncio

import pytest

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.client import Endpoint, RealtimeError, open_session
from tests.tools.simulator_process import listening_line, simulator_process


async def test_cli_serves_sessions():
    async with simulator_process() as proc:
        line = await listening_line(proc)
        assert "ws://127.0.0.1:" in line, line
        url = line.split()[-1]
        client = await open_session(
            Endpoint.custom(url), p.SessionConfig(input_format="audio/pcma")
        )
        try:
            assert client.effective_session["audio"]["input"]["format"] == {"type": "audio/pcma"}
            client.send(p.response_cancel())
            error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), 5)
            assert error.code == "response_cancel_not_active"
        finally:
            await client.close()


async def test_open_session_closes_on_refused_config(sim):
    bad = p.SessionConfig(model="gpt-other")  # the model of a session cannot change
    with pytest.raises(RealtimeError) as info:
        await open_session(Endpoint.custom(sim.url), bad, configure_timeout=5)
    assert info.value.error is not None and info.value.error.param == "session.model"
    session = await sim.wait_session()
    await asyncio.wait_for(session.closed.wait(), 5)


def test_cli_freezes_its_start_up_heap():
    """`simulator` freezes what start-up allocated (the SDK's models among it) before serving,
    so that full collections walk only the sessions' objects (issue 14)."""
    import gc

    from gateway.realtime.simulator.cli import settle_heap
    from gateway.realtime.simulator.sdk import cached_sdk_validator

    cached_sdk_validator()
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() > 10_000
        assert gc.get_count()[0] == 0  # collected first: no start-up garbage frozen with it
    finally:
        gc.unfreeze()


def test_cli_rejects_missing_reply_file(capsys):
    from gateway.cli import main

    assert main(["simulator", "--reply-audio", "/nonexistent/reply.ul"]) == 2
    assert "cannot read --reply-audio" in capsys.readouterr().err


def test_options_from_plain_data():
    from gateway.realtime.simulator import SimulatorOptions, ToolCallRule

    options = SimulatorOptions.from_mapping(
        {
            "tool_calls": [{"name": "send_dtmf", "arguments": {"digits": "12"}, "on_turn": 3}],
            "transcripts": ["a"],
        }
    )
    assert options.tool_calls == (ToolCallRule("send_dtmf", {"digits": "12"}, on_turn=3),)
    assert options.transcripts == ("a",)
    for bad in (
        {"tool_calls": [{"arguments": {}}]},
        {"tool_calls": [{"name": "x", "turn": 2}]},
        {"colour": 1},
    ):
        with pytest.raises(ValueError):
            SimulatorOptions.from_mapping(bad)


def test_cli_rejects_bad_script(tmp_path, capsys):
    from gateway.cli import main

    script = tmp_path / "script.json"
    script.write_text('{"tool_calls": [{"name": "end_call", "when": "bye"}]}')
    assert main(["simulator", "--script", str(script)]) == 2
    assert "unknown field(s) when" in capsys.readouterr().err


def test_cli_keep_flags_become_options(capsys):
    import argparse

    from gateway.cli import main
    from gateway.realtime.simulator.cli import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--keep-sessions", "5", "--keep-audio-chars", "1000"])
    assert options_from_args(args) == {"keep_sessions": 5, "keep_audio_chars": 1000}
    assert main(["simulator", "--keep-sessions", "-1"]) == 2
    assert "keep_sessions" in capsys.readouterr().err
