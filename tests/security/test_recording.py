"""Crash (or a kill by an attacker, or the OOM killer) in the middle of a recorded call.

Recordings are the caller's voice: they must be readable by the gateway's user only, and a
process that dies mid-call must not leave a WAV no player opens nor a call nobody accounts for.
The gateway records a call, is SIGKILLed while it is up, and is started again on the same
directories: the WAV opens with the stdlib `wave` module (frames > 0) even before the restart,
is mode 0600 in a 0700 directory, and after the restart the call has a record with the end cause
`process_restart`.
"""

from __future__ import annotations

import json
import os
import stat
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.caller_audio import silence_ms, write_caller_pcap
from tests.tools.gateway_process import GatewayProcess
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp
from tests.tools.wait import wait_until

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]


def _frames(path: Path) -> int:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes()
    except (OSError, EOFError, wave.Error):
        return 0


def test_recording_survives_sigkill_and_the_call_is_recorded_after_restart(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tmp_path: Path,
) -> None:
    records = tmp_path / "records"
    recordings = tmp_path / "recordings"
    sim = sim_factory()
    config = {"records": {"dir": str(records), "recording": True, "recording_dir": str(recordings)}}
    gw = realtime_gateway(sim.url, config)
    pcap = tmp_path / "caller.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(15_000))
    sipp.start(
        "uac_media_dtmf.xml",
        f"127.0.0.1:{gw.ports.gateway_sip}",
        timeout_s=40,
        substitutions={"PCAP": str(pcap), "PLAY_MS": str(play_ms)},
    )
    call_id = gw.wait_event("call.answered", timeout=15)["call_id"]
    wav_path = wait_until(
        lambda: next(iter(recordings.glob("*.wav")), None), 10, "a recording file", interval=0.05
    )
    # The header is kept current while the call runs: wait until it describes audio on disk.
    wait_until(lambda: _frames(wav_path) >= 8000, 15, "1 s recorded", interval=0.05)
    assert list(records.glob("*.live.json")), "no in-progress marker for the live call"
    gw.process.popen.kill()  # SIGKILL: no cleanup of any kind
    gw.process.popen.wait(timeout=10)

    frames = _frames(wav_path)
    print(f"\nafter SIGKILL: {wav_path.name} opens with {frames} frames ({frames / 8000:.1f} s)")
    assert frames > 0
    assert stat.S_IMODE(wav_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(recordings.stat().st_mode) == 0o700
    assert stat.S_IMODE(records.stat().st_mode) == 0o700

    restarted = realtime_gateway(sim.url, config)
    recovered = restarted.wait_event("call.recovered", call_id=call_id)
    print(f"after restart: {recovered['message']}")
    [record_path] = [p for p in records.glob("*.json") if not p.name.endswith(".live.json")]
    record = json.loads(record_path.read_text())
    assert record["call_id"] == call_id
    assert record["hangup"]["cause"] == "process_restart"
    assert record["hangup"]["recording"] == str(wav_path)
    assert stat.S_IMODE(record_path.stat().st_mode) == 0o600
    assert not list(records.glob("*.live.json"))
    # Whatever the process could not patch (the last second) is repaired at start.
    with wave.open(str(wav_path), "rb") as wav:
        assert wav.getnframes() * 4 + 44 == wav_path.stat().st_size
