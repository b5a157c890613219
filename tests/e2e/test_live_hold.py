"""End to end in GPT-Live mode, a 60 s hold: the GPT-Live session clock moves only with input
audio and the simulator ends a session after `idle_expire_s` (30 s, its default, as measured of
the real service) without any. The caller holds the call (re-INVITE a=inactive, no RTP) for 60 s:
the gateway must append silence all along so the session lives through it, and the turn after
the resume must work in the same session.

The one long test of the issue's must-show (about 75 s); deliberately not marked soak.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.caller_audio import Utterances, silence_ms, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.live_gateway import LiveSimulatorThread, client_types, output_audio
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.sipp import Sipp
from tests.tools.wire import gateway_rtp, locate

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]

HOLD_MS = 60_000
IDLE_EXPIRE_S = 30.0  # the simulator's default, stated so a change of default shows here


def test_live_session_survives_a_60_s_hold_on_appended_silence_and_the_next_turn_works(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    sim = live_sim_factory(idle_expire_s=IDLE_EXPIRE_S)
    gw = live_gateway(sim)
    before, after = tmp_path / "before.pcap", tmp_path / "after.pcap"
    echo_ms = len(utterances.hello) // 8 + 800
    talk1 = write_caller_pcap(before, silence_ms(600) + utterances.hello + silence_ms(600))
    talk2 = write_caller_pcap(after, silence_ms(400) + utterances.question + silence_ms(600))
    tshark.start(max_duration_s=150)
    result = sipp.run(
        "uac_live_hold_resume.xml",
        timeout_s=120,
        substitutions={
            "PCAP1": str(before),
            "TALK1_MS": str(talk1 + echo_ms),
            "HOLD_MS": str(HOLD_MS),
            "PCAP2": str(after),
            "TALK2_MS": str(talk2 + len(utterances.question) // 8 + 1500),
        },
    )
    tshark.stop()
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    print(
        f"\ncall.ended: cause={ended['cause']} duration={ended['duration_s']} s "
        f"silence_filled={ended['silence_filled_bytes'] / 8000:.1f} s "
        f"reconnects={ended['reconnects']}"
    )
    assert ended["cause"] == "remote_bye", ended
    assert ended["reconnects"] == 0, ended
    # The hold was filled with silence: at least the 60 s without RTP, less the fill threshold.
    assert ended["silence_filled_bytes"] >= (HOLD_MS - 1000) * 8, ended

    # One session for the whole call: it did not expire (idle) and was closed by the gateway.
    assert sim.live_count() == 1
    reason = sim.live(0, lambda s: s.close_reason)
    assert reason == "close_requested", reason
    session_ms = sim.live(0, lambda s: s.now_ms)
    print(f"session clock {session_ms / 1000:.1f} s over a {ended['duration_s']} s call")
    assert session_ms >= (ended["duration_s"] - 1.0) * 1000
    client = sim.live_client_events(0)
    assert client_types(client) == ["session.start", "session.close"], client_types(client)
    # Appends never stopped for long: the largest gap between two is far below the expiry.
    appends = [r.t for r in client if r.type == "session.input_audio.append"]
    gap = max(b - a for a, b in itertools.pairwise(appends))
    print(f"{len(appends)} appends, largest gap {gap * 1000:.0f} ms")
    assert gap < 1.0, gap

    # Both turns answered; the one after the resume is on the wire.
    heard = sim.live(0, lambda s: [u.audio for u in s.utterances])
    assert len(heard) == 2, [len(a) for a in heard]
    track = output_audio(sim.live_server_events(0))
    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    for index, audio in enumerate(heard):
        assert audio in track
        where = locate(audio, packets)
        print(f"turn {index + 1}: {len(audio) // 8} ms echoed, on the wire at {where}")
        assert where is not None, f"turn {index + 1}'s echo is not on the wire"
