"""Soak: a long call with a turn every few seconds across several Realtime session rollovers.

Run with `make soak` (skipped by `make test`). What it shows over ~2.5 minutes: the call never
drops, the session rolls over at pauses before each (shortened) cap, every turn still gets the
bot's audio back, and the RTP stream stays clean (no loss, no sequence trouble) the whole time.
"""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.realtime.simulator import SimulatorOptions
from gateway.softphone import place_call
from tests.test_softphone import Lab, _espeak_wav, start_lab
from tests.tools.peers import require_peer

pytestmark = pytest.mark.soak

CALL_S = 150.0
TURN_EVERY_S = 8.0
CAP_S = 40.0


def _repeat_with_pauses(speech: Path, out: Path, every_s: float, total_s: float) -> int:
    with wave.open(str(speech), "rb") as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    slot = np.zeros(int(every_s * 8000), dtype="<i2")
    slot[: len(pcm)] = pcm[: len(slot)]
    turns = int(total_s // every_s)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(np.tile(slot, turns).tobytes())
    return turns


async def test_long_call_rolls_over_and_keeps_answering(port_block: int, tmp_path: Path) -> None:
    require_peer("espeak-ng", "sox")
    speech = _espeak_wav(tmp_path, "turn", "Hello, this is one more turn of a long call.")
    play = tmp_path / "long.wav"
    turns = _repeat_with_pauses(speech, play, TURN_EVERY_S, CALL_S - 10)
    gateway, simulator = await start_lab(
        port_block,
        SimulatorOptions(session_max_s=CAP_S),
        **{
            "realtime.turn_detection": "server_vad",
            "realtime.session_cap_s": CAP_S,
            "realtime.rollover_margin_s": 15.0,
        },
    )
    try:
        lab = Lab(port_block, gateway, simulator)
        out = io.StringIO()
        summary = await asyncio.wait_for(
            place_call(lab.options(play=str(play), duration=CALL_S), out), CALL_S + 60
        )
    finally:
        await gateway.stop(drain_timeout=2.0)
        await simulator.stop()
    text = out.getvalue()
    assert summary.exit_code == 0 and summary.ended_by == "local", text
    sessions = list(simulator.sessions.values())
    # A fresh session before each cap: the first expires at 40 s, so at least 3 over 150 s.
    assert len(sessions) >= 3, len(sessions)
    assert not any(
        s.server_events_of("error")
        and any(
            e.get("error", {}).get("code") == "session_expired" for e in s.server_events_of("error")
        )
        for s in sessions[:-1]
    ), "a session hit its cap: the rollover came too late"
    responses = sum(len(s.server_events_of("response.done")) for s in sessions)
    assert responses >= turns * 0.8, (responses, turns)
    assert summary.rtp.lost == 0 and summary.rtp.received_voiced_s > turns * 0.5, text
