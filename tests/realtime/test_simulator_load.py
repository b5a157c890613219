"""The simulator's load mode (issue 14): the same wire exchange, fewer per-event costs.

It must answer a turn as the default mode does (same events, same audio), still validate every
client event, and only leave audio events out of the recording; its sampled VAD must give the
default VAD's verdict on speech and silence."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gateway.realtime import events as ev
from gateway.realtime import protocol as p
from gateway.realtime.simulator import SimulatorOptions
from gateway.realtime.simulator.cli import add_arguments, options_from_args
from gateway.sim_shared.vad import frame_levels_db, sampled_frame_levels_db
from tests.conftest import require_peer
from tests.realtime.conftest import silence, speech_like
from tests.realtime.test_client_simulator import T, append_chunks, collect_until, of, vad_config
from tests.tools.ports import free_port_block

ROOT = Path(__file__).resolve().parents[2]
FRAME = 80  # 10 ms of G.711


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
@pytest.mark.parametrize("level", [0.05, 0.3, 0.9])
def test_sampled_vad_gives_the_full_vads_verdict_on_speech_and_silence(
    fmt: str, level: float
) -> None:
    audio = silence(300, fmt) + speech_like(1000, fmt, level=level) + silence(300, fmt)
    full = frame_levels_db(audio, fmt, FRAME).tolist()
    sampled = sampled_frame_levels_db(audio, fmt, FRAME)
    assert len(sampled) == len(full) == len(audio) // FRAME
    threshold = SimulatorOptions().vad_db_at_half
    assert [s > threshold for s in sampled] == [f > threshold for f in full]
    # An estimate of the same level: within a few dB on every voiced frame.
    assert max(abs(s - f) for s, f in zip(sampled, full, strict=True) if f > threshold) < 6


def test_sampled_vad_falls_back_to_the_full_one_for_pcm() -> None:
    pcm = bytes(range(256)) * 15  # 3840 bytes: 8 frames of 10 ms at 24 kHz
    assert sampled_frame_levels_db(pcm, "audio/pcm", 480) == (
        frame_levels_db(pcm, "audio/pcm", 480).tolist()
    )


async def _one_turn(sim_factory, client_factory, **options):
    sim = await sim_factory(**options)
    client = await client_factory(sim)
    await client.configure(vad_config(), timeout=T)
    await append_chunks(client, silence(500) + speech_like(1000) + silence(800))
    events = await collect_until(client, lambda e: isinstance(e, ev.ResponseDone))
    return sim, client, events


async def test_load_mode_answers_a_turn_as_the_default_mode(sim_factory, client_factory) -> None:
    _, _, default = await _one_turn(sim_factory, client_factory)
    sim, _, load = await _one_turn(sim_factory, client_factory, load_mode=True)
    assert [type(e) for e in load] == [type(e) for e in default]
    for kind in (ev.SpeechStarted, ev.SpeechStopped):
        (a,), (b,) = of(default, kind), of(load, kind)
        assert (getattr(a, "audio_start_ms", None), getattr(a, "audio_end_ms", None)) == (
            getattr(b, "audio_start_ms", None),
            getattr(b, "audio_end_ms", None),
        )
    audio = [b"".join(d.audio for d in of(events, ev.AudioDelta)) for events in (default, load)]
    assert audio[0] == audio[1] and audio[0]
    # The recording leaves the audio events out, and only them.
    session = await sim.wait_session()
    assert session.client_events_of("input_audio_buffer.append") == []
    assert session.server_events_of("response.output_audio.delta") == []
    assert session.client_events_of("session.update")
    assert session.server_events_of("response.done")
    assert session.server_events_of("input_audio_buffer.speech_started")


async def test_load_mode_still_validates_every_client_event(
    sim_factory, client_factory, expect_invalid
) -> None:
    sim = await sim_factory(load_mode=True)
    client = await client_factory(sim)
    await client.configure(p.SessionConfig(turn_detection=None), timeout=T)
    bad = {"type": "input_audio_buffer.append", "audio": "//8=", "format": "pcmu"}
    expect_invalid.append(bad)
    client.send(bad)
    error = await client.wait_for(lambda e: isinstance(e, ev.ErrorEvent), T)
    assert (error.code, error.param) == ("unknown_parameter", "format")


def test_cli_load_flag_sets_load_mode() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from_args(parser.parse_args(["--load"]))["load_mode"] is True
    assert "load_mode" not in options_from_args(parser.parse_args([]))
    assert SimulatorOptions.from_mapping({"load_mode": True}).load_mode


def _load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_append_bench_measures_every_variant() -> None:
    results = _load_bench("simulator_append").measure(appends=300, repeat=1)
    assert set(results) == {
        "default",
        "validator per event",
        "load: recording only",
        "load: VAD only",
        "load",
    }
    assert all(us > 0 for us in results.values())


def test_a_sipp_load_through_the_load_mode_simulator_answers_every_call(tmp_path: Path) -> None:
    """bench/sipp_load.py --simulator-load, 10 calls: `simulator --load` serves the gateway as
    the default mode does (every call answered and ended by SIPp, 50 packets/s each way)."""
    require_peer("sipp", "espeak-ng", "sox")
    sipp_load = _load_bench("sipp_load")
    base = free_port_block(sipp_load.ports_needed(10))
    result = sipp_load.run_one(10, 20.0, 2.0, tmp_path, "sipp", port_base=base, simulator_load=True)
    assert result.problem == "", result
    assert (result.ok, result.failed) == (10, 0), result.outcomes
    assert 49.0 <= result.rtp_in_per_call_s <= 51.0, result
    assert 49.0 <= result.rtp_out_per_call_s <= 51.0, result
    assert result.lost == 0 and result.late == 0, result
    assert result.simulator_cpu_pct > 0
