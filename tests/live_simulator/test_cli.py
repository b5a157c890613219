"""`sip-realtime-gateway simulator` serves both APIs from one process and prints both URLs;
the GPT-Live knobs come from `--live-*` flags or the script's "live" table, validated with
errors naming the option."""

from __future__ import annotations

import argparse

import orjson

from gateway.live.simulator.options import LiveSimulatorOptions, LiveToolCallRule
from gateway.realtime.simulator.cli import add_arguments, options_from_args
from tests.live_simulator.raw_client import RawLiveClient
from tests.tools.simulator_process import listening_line, simulator_process


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


async def test_the_command_prints_both_urls_and_serves_gpt_live() -> None:
    async with simulator_process("--live-delta-ms", "20") as proc:
        realtime = await listening_line(proc)
        live = await listening_line(proc)
        assert realtime.startswith("realtime simulator listening on ws://127.0.0.1:")
        assert live.startswith("GPT-Live simulator listening on ws://127.0.0.1:")
        url = live.split()[-1]
        assert url.endswith("/v1/live/sessions")
        assert (
            url.rsplit(":", 1)[1].split("/")[0]
            == realtime.split()[-1].rsplit(":", 1)[1].split("/")[0]
        )
        ws = await RawLiveClient.open(url)
        try:
            await ws.start()
            await ws.wait_for(lambda e: len(ws.of("session.output_audio.delta")) >= 2)
            chunk = ws.output_audio()
            assert len(chunk) == 2 * 160  # --live-delta-ms 20: 160 bytes of u-law per delta
        finally:
            await ws.close()


def test_live_flags_and_script_become_live_options(tmp_path) -> None:
    script = tmp_path / "script.json"
    rule = {"name": "end_call", "on_utterance": 2, "arguments": {"reason": "done"}}
    script.write_bytes(
        orjson.dumps({"keep_sessions": 3, "live": {"delta_ms": 40, "tool_calls": [rule]}})
    )
    options = options_from_args(
        _args("--script", str(script), "--live-delta-ms", "20", "--live-reject-starts", "1")
    )
    assert options["keep_sessions"] == 3
    live = LiveSimulatorOptions.from_mapping(options["live"])
    assert (live.delta_ms, live.reject_starts) == (20, 1)
    assert live.tool_calls == (LiveToolCallRule("end_call", {"reason": "done"}, on_utterance=2),)
    assert "live" not in options_from_args(_args())


def test_bad_live_options_name_the_option(tmp_path, capsys) -> None:
    from gateway.cli import main

    assert main(["simulator", "--live-delta-ms", "5"]) == 2
    assert "live.delta_ms" in capsys.readouterr().err
    script = tmp_path / "script.json"
    script.write_bytes(orjson.dumps({"live": {"colour": "blue"}}))
    assert main(["simulator", "--script", str(script)]) == 2
    assert "unknown live simulator option(s): colour" in capsys.readouterr().err
    script.write_bytes(orjson.dumps({"live": {"tool_calls": [{"name": "x", "when": "y"}]}}))
    assert main(["simulator", "--script", str(script)]) == 2
    assert "live.tool_calls[0]: unknown field(s) when" in capsys.readouterr().err


def test_load_flag_puts_both_apis_in_load_mode() -> None:
    options = options_from_args(_args("--load"))
    assert options["load_mode"] is True
    assert LiveSimulatorOptions.from_mapping(options["live"]).load_mode is True
