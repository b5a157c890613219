"""End to end, long calls and failures: the Realtime WebSocket killed mid-call (reconnect with the
conversation replayed) and the session cap reached (rollover to a new session at a silence).

Both tests prove the call goes on the only way a caller would notice: the next turn after the new
session is answered with bot audio on the wire, and the gateway never hangs up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.caller_audio import Utterances, silence_ms, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp, captured_run
from tests.tools.wire import gateway_rtp, locate, reply_audio

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]

TRANSCRIPTS = ("hello can you hear me", "what time is it now")
TRANSCRIBE = {"transcription_model": "gpt-4o-mini-transcribe"}  # caller turns go into history


def _replayed_texts(sim: SimulatorThread, session: int) -> list[tuple[str, str]]:
    """(role, text) of the conversation.item.create messages a session received."""
    out = []
    for record in sim.client_events(session):
        if record.type != "conversation.item.create":
            continue
        item = record.event["item"]
        if item.get("type") == "message":
            text = " ".join(str(p.get("text", "")) for p in item.get("content", []))
            out.append((item["role"], text))
    return out


def _assert_new_session_set_up_and_replayed(sim: SimulatorThread, bot_turn: bool = True) -> None:
    types = [r.type for r in sim.client_events(1) if r.type != "input_audio_buffer.append"]
    assert types[0] == "session.update", types[:5]
    replayed = _replayed_texts(sim, 1)
    print(f"replayed into the new session: {replayed}")
    # The first turn, as text: what the caller said and (when it completed) the bot's answer.
    assert ("user", TRANSCRIPTS[0]) in replayed, replayed
    bot_replayed = any(role == "assistant" and TRANSCRIPTS[0] in t for role, t in replayed)
    if bot_turn:
        assert bot_replayed, replayed
    # The replay comes before the caller's new audio, so the next turn follows the history.
    events = [r.type for r in sim.client_events(1)]
    last_replay = max(i for i, t in enumerate(events) if t == "conversation.item.create")
    assert last_replay < events.index("input_audio_buffer.append"), events[:10]
    updated = sim.session_config(1)
    assert updated["audio"]["input"]["format"]["type"] == "audio/pcmu"
    assert updated["audio"]["output"]["format"]["type"] == "audio/pcmu"


def _assert_second_turn_answered_on_the_wire(
    sim: SimulatorThread, capture: Capture, ports: InteropPorts, after: float, gw: GatewayProcess
) -> None:
    replies = reply_audio(sim.server_events(1))
    assert len(replies) == 1, f"the new session answered {len(replies)} turns"
    reply = next(iter(replies.values()))
    packets = [
        p for p in gateway_rtp(read_udp(capture.pcap), ports, ports.sipp_media) if p.time > after
    ]
    where = locate(reply, packets)
    assert where is not None, "the new session's answer is not on the wire"
    states = [e["state"] for e in gw.find("call.state") if "previous" in e]
    print(f"states: {states}")
    print(
        f"new session's answer: {len(reply) // 8} ms on the wire at "
        f"{packets[where.first].time - after:.1f} s after the switch"
    )


def _two_turn_pcap(tmp_path: Path, utterances: Utterances, second_at_ms: int) -> tuple[Path, int]:
    """The caller's side: "hello" after 600 ms, the question at `second_at_ms`, 1.5 s of
    silence; returns the pcap and the PLAY_MS for uac_media_dtmf.xml (play time + 2.5 s)."""
    pcap = tmp_path / "caller.pcap"
    first = silence_ms(600) + utterances.hello
    caller = (
        first + silence_ms(second_at_ms - len(first) // 8) + utterances.question + silence_ms(1500)
    )
    return pcap, write_caller_pcap(pcap, caller) + 2500


def _call_ended_by_the_caller(gw: GatewayProcess) -> str:
    """The call's id, once it ended with the caller's BYE (never the gateway's)."""
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended
    assert not gw.find("call.hangup", call_id=call_id)
    return call_id


@pytest.mark.parametrize("when", ["after_response", "mid_response"])
def test_websocket_killed_mid_call_next_turn_still_works(
    when: str,
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """`after_response`: killed while the bot's answer plays out (generation finished).
    `mid_response`: killed while the answer is still being generated (deltas at about twice
    real time), so the gateway holds a partial item of a response that will never finish."""
    slow = {"delta_interval_s": 0.08} if when == "mid_response" else {}
    sim = sim_factory(transcripts=TRANSCRIPTS, **slow)
    gw = realtime_gateway(sim.url, {"realtime": TRANSCRIBE})
    pcap, play_ms = _two_turn_pcap(tmp_path, utterances, 600 + len(utterances.hello) // 8 + 4000)
    tshark.start()
    run = sipp.start(
        "uac_media_dtmf.xml",
        f"127.0.0.1:{ports.gateway_sip}",
        timeout_s=40,
        substitutions={"PCAP": str(pcap), "PLAY_MS": str(play_ms)},
    )
    # Kill the connection during the first answer, well before the second turn starts.
    trigger = "response.done" if when == "after_response" else "response.output_audio.delta"
    sim.wait_until(
        f"first {trigger}",
        lambda: (
            bool(sim.sim.sessions)
            and any(r.type == trigger for r in next(iter(sim.sim.sessions.values())).server_events)
        ),
        timeout=15,
    )
    dropped = sim.drop_session(0)
    dropped_at = time.time()
    result = run.wait()
    tshark.stop()
    assert result.rc == 0, result.describe()
    call_id = _call_ended_by_the_caller(gw)
    lost = gw.wait_event("realtime.lost", call_id=call_id)
    reconnected = gw.wait_event("realtime.reconnected", call_id=call_id)
    print(f"\ndropped {dropped}; gateway: lost={lost['reason']!r}, reconnected {reconnected}")
    assert sim.session_count() == 2
    _assert_new_session_set_up_and_replayed(sim, bot_turn=when == "after_response")
    _assert_second_turn_answered_on_the_wire(sim, tshark, ports, dropped_at, gw)


# The first turn (hello from 0.6 s, its answer) is over by about 5 s; the rollover may start at
# cap - margin = 9 s at a silence; the second turn comes after it, before the cap, and the call
# (about 16 s) ends before the new session reaches its own rollover point (9 s after it opened).
SESSION_CAP_S = 15
ROLLOVER_MARGIN_S = 6
SECOND_TURN_AT_MS = 10_500


def test_rollover_before_the_session_cap_keeps_the_call(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    sim = sim_factory(session_max_s=SESSION_CAP_S, transcripts=TRANSCRIPTS)
    gw = realtime_gateway(
        sim.url,
        {
            "realtime": {
                **TRANSCRIBE,
                "session_cap_s": SESSION_CAP_S,
                "rollover_margin_s": ROLLOVER_MARGIN_S,
            }
        },
    )
    pcap, play_ms = _two_turn_pcap(tmp_path, utterances, SECOND_TURN_AT_MS)
    captured_run(
        sipp, tshark, "uac_media_dtmf.xml", 60, {"PCAP": str(pcap), "PLAY_MS": str(play_ms)}
    )
    call_id = _call_ended_by_the_caller(gw)
    rolled = gw.wait_event("realtime.rolled_over", call_id=call_id)
    assert not gw.find("realtime.lost", call_id=call_id)
    assert sim.session_count() == 2
    opened = sim.call(lambda: [s.client_events[0].t for s in sim.sim.sessions.values()])
    after_s = opened[1] - opened[0]
    print(f"\nsecond session opened {after_s:.1f} s after the first (cap {SESSION_CAP_S} s)")
    assert SESSION_CAP_S - ROLLOVER_MARGIN_S - 1 <= after_s < SESSION_CAP_S
    # The first session never reached its cap: no session_expired error was needed.
    expired = [r for r in sim.server_events(0) if r.type == "error" and "expired" in str(r.event)]
    assert not expired, expired
    _assert_new_session_set_up_and_replayed(sim)
    rolled_at = time.time() - (time.monotonic() - opened[1])
    _assert_second_turn_answered_on_the_wire(sim, tshark, ports, rolled_at, gw)
    print(f"rolled over: {rolled['ts']}")


SERVER_CAP_S = 8  # the server's limit, which the gateway was not told about
AFTER_EXPIRY_TURN_AT_MS = 11_000


def test_session_expired_by_the_server_reconnects_once(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """No rollover configured (the default 60 min cap) but the server ends the session early:
    `error` session_expired, then the server closes the WebSocket. That is one failure, so one
    new session: the expiry error and the close that follows must not both reconnect."""
    sim = sim_factory(session_max_s=SERVER_CAP_S, transcripts=TRANSCRIPTS)
    gw = realtime_gateway(sim.url, {"realtime": TRANSCRIBE})
    pcap, play_ms = _two_turn_pcap(tmp_path, utterances, AFTER_EXPIRY_TURN_AT_MS)
    captured_run(
        sipp, tshark, "uac_media_dtmf.xml", 40, {"PCAP": str(pcap), "PLAY_MS": str(play_ms)}
    )
    call_id = _call_ended_by_the_caller(gw)
    expired = [r for r in sim.server_events(0) if r.type == "error" and "expired" in str(r.event)]
    assert expired, "the simulator never expired the first session"
    reconnects = gw.find("realtime.reconnected", call_id=call_id)
    print(
        f"\nsessions opened: {sim.session_count()}; realtime.reconnected logged "
        f"{len(reconnects)} time(s): {[r.get('reason') for r in reconnects]}"
    )
    # The call may outlive more than one (short) server cap: each expiry is one failure and
    # must open exactly one new session.
    expiries = sum(
        1
        for i in range(sim.session_count())
        for r in sim.server_events(i)
        if r.type == "error" and "session_expired" in str(r.event)
    )
    assert sim.session_count() == 1 + expiries, "one expiry must open exactly one new session"
    assert len(reconnects) == expiries, reconnects
    _assert_new_session_set_up_and_replayed(sim)
    expired_at = time.time() - (time.monotonic() - expired[0].t)
    _assert_second_turn_answered_on_the_wire(sim, tshark, ports, expired_at, gw)
