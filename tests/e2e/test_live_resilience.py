"""End to end in GPT-Live mode, long calls and failures: the WebSocket killed mid-call (the
simulator cuts the TCP connection: no close frame, no session.closed) and a rollover before a
short simulated `expires_at`. Either way the call goes on in a new session seeded with the
conversation so far (its session.start carries the history in `input`), the next turn works and
the caller's audio keeps flowing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tools.caller_audio import Utterances, silence_ms, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.live_gateway import LiveSimulatorThread, output_audio
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.sipp import Sipp, captured_media_call
from tests.tools.wire import gateway_rtp, locate, one_paced_gateway_stream

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]

FIRST = "hello can you hear me"
SECOND = "what time is it now"


def _two_turns_with_room(utterances: Utterances, pause_ms: int) -> bytes:
    """Greeting, a pause long enough for its echo and `pause_ms` more, the question, and room
    for the question's echo."""
    echo_ms = len(utterances.hello) // 8 + 800  # prefix 300 + utterance + 500 of silence
    return (
        silence_ms(600)
        + utterances.hello
        + silence_ms(500 + echo_ms + pause_ms)
        + utterances.question
        + silence_ms(len(utterances.question) // 8 + 2500)
    )


def _history_texts(start: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (item["role"], " ".join(part["text"] for part in item["content"]))
        for item in start["session"].get("input", [])
    ]


def _start_event(sim: LiveSimulatorThread, index: int) -> dict[str, Any]:
    first = sim.live_client_events(index)[0].event
    assert first["type"] == "session.start", first
    return first


def _assert_echoes_on_the_wire(
    sim: LiveSimulatorThread, tshark: Capture, ports: InteropPorts
) -> None:
    """Each utterance any session heard came back verbatim, and the outbound stream ran
    unbroken across the sessions (one SSRC, no sequence errors, 20 ms packets)."""
    datagrams = read_udp(tshark.pcap)
    packets = gateway_rtp(datagrams, ports, ports.sipp_media)
    heard = [
        (index, u.audio)
        for index in range(sim.live_count())
        for u in sim.live(index, lambda s: list(s.utterances))
    ]
    assert len(heard) == 2, [(i, len(a)) for i, a in heard]
    for index, audio in heard:
        assert audio in output_audio(sim.live_server_events(index))
        where = locate(audio, packets)
        print(f"session {index + 1}: {len(audio) // 8} ms utterance echoed, on the wire at {where}")
        assert where is not None, f"session {index + 1}'s echo is not on the wire"
    one_paced_gateway_stream(datagrams, ports, frames_of_160=False)


def test_live_websocket_killed_mid_call_then_a_seeded_session_takes_the_next_turn(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    sim = live_sim_factory(transcripts=(FIRST, SECOND))
    gw = live_gateway(sim)
    pcap = tmp_path / "caller.pcap"
    play_ms = write_caller_pcap(pcap, _two_turns_with_room(utterances, 1500))
    tshark.start()
    caller = sipp.start(
        "uac_media_dtmf.xml",
        f"127.0.0.1:{ports.gateway_sip}",
        timeout_s=40,
        substitutions={"PCAP": str(pcap), "PLAY_MS": str(play_ms)},
    )

    # Kill the socket once the first turn's echo has played out (the track is silent again).
    def first_turn_answered(sessions: list[Any]) -> bool:
        if len(sessions) != 1 or len(sessions[0].utterances) != 1:
            return False
        track = sessions[0].track
        return track is not None and not track.speaking

    sim.wait_live("the first turn answered", first_turn_answered, timeout=20)
    dropped = sim.drop_live(0)
    sim.wait_live("a second session", lambda sessions: len(sessions) == 2, timeout=10)
    result = caller.wait()
    tshark.stop()
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    print(
        f"\ndropped {dropped}; call.ended: cause={ended['cause']} reconnects={ended['reconnects']}"
    )
    assert ended["cause"] == "remote_bye", ended
    assert ended["reconnects"] == 1, ended
    assert sim.live_count() == 2
    assert sim.live(0, lambda s: s.dropped and s.close_reason is None)
    history = _history_texts(_start_event(sim, 1))
    print(f"session 2 seeded with {history}")
    assert ("user", FIRST) in history and ("assistant", FIRST) in history, history
    assert sim.live(1, lambda s: len(s.utterances)) == 1, "the next turn did not reach session 2"
    _assert_echoes_on_the_wire(sim, tshark, ports)


SESSION_MAX_S = 8.0  # the simulated expires_at; the gateway rolls over at half of it


def test_live_rollover_before_expires_at_seeds_the_next_session_and_audio_keeps_flowing(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    sim = live_sim_factory(transcripts=(FIRST, SECOND), session_max_s=SESSION_MAX_S)
    gw = live_gateway(sim)
    pcap = tmp_path / "caller.pcap"
    # The question comes after the first rollover (about 4 s into the call).
    play_ms = write_caller_pcap(pcap, _two_turns_with_room(utterances, 1500))
    call_id = captured_media_call(sipp, tshark, gw, pcap, play_ms, 40)
    ended = gw.wait_event("call.ended", call_id=call_id)
    sessions = sim.live_count()
    reasons = [sim.live(i, lambda s: s.close_reason) for i in range(sessions)]
    print(
        f"\n{play_ms} ms call: {sessions} sessions, closed {reasons}; call.ended {ended['cause']}"
    )
    assert ended["cause"] == "remote_bye", ended
    assert sessions >= 2, "no rollover"
    # Each old session was closed by the gateway before it expired; none expired.
    assert "expired" not in reasons, reasons
    assert all(r == "close_requested" for r in reasons[:-1]), reasons
    assert ended["reconnects"] == 0, ended  # every new session planned, none a reconnect
    # The session that took the second turn was seeded with the first.
    asked = next(i for i in range(sessions) if sim.live(i, lambda s: len(s.utterances)) and i)
    history = _history_texts(_start_event(sim, asked))
    print(f"session {asked + 1} seeded with {history}")
    assert ("user", FIRST) in history and ("assistant", FIRST) in history, history
    _assert_echoes_on_the_wire(sim, tshark, ports)
