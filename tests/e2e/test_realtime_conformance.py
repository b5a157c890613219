"""End to end, what the real service does that the fast simulator did not (issue 10): audio
deltas streamed near real time, still arriving after speech_started (barge-in), and an idle
caller hung up on politely. Real callers (SIPp) through `python -m gateway run`; the
simulator's client events are validated against openai.types.realtime at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.call.machine import CallPolicy
from tests.tools.caller_audio import Utterances, silence_ms, sweep, two_turns, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp, captured_media_call
from tests.tools.wire import gateway_rtp, is_silent, reply_audio, sip_messages

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]

# The answer streams near real time (pace 1.1: about 3.6 s of generation for 4 s of audio); the
# caller talks over it about 1.5 s in, while it is still generating, as the test needs.
BOT_REPLY_MS = 4000
BARGE_GAP_MS = 2000
FRAME_MS = 20
LATE_DELTAS = 3


def test_barge_in_with_late_deltas_in_real_time_mode(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The simulator streams the 4 s answer near real time (as the service does), so it is
    still generating when the caller talks over it 2 s in; the server cancels it
    (interrupt_response) but deltas already in flight still arrive after speech_started.
    The gateway must drop them by response id: after the barge-in the caller hears only the
    second answer, and the truncate says what was heard."""
    reply = sweep(BOT_REPLY_MS)
    sim = sim_factory(reply_audio=reply, realtime_pace=1.1, late_deltas=LATE_DELTAS)
    gw = realtime_gateway(sim.url)
    pcap = tmp_path / "caller.pcap"
    caller = two_turns(utterances, BARGE_GAP_MS)
    play_ms = write_caller_pcap(pcap, caller)
    call_id = captured_media_call(sipp, tshark, gw, pcap, play_ms + BOT_REPLY_MS + 1500, 45)
    truncate_log = gw.wait_event("call.truncate", call_id=call_id)

    server = sim.server_events(0)
    client = sim.client_events(0)
    replies = list(reply_audio(server).items())
    first_item, first_audio = replies[0]
    assert reply.startswith(first_audio) and len(first_audio) < len(reply)
    first_response = next(
        r.event["response_id"]
        for r in server
        if r.type == "response.output_audio.delta" and r.event["item_id"] == first_item
    )
    speech2 = [i for i, r in enumerate(server) if r.type == "input_audio_buffer.speech_started"][1]
    late = [
        r
        for r in server[speech2:]
        if r.type == "response.output_audio.delta" and r.event["response_id"] == first_response
    ]
    assert len(late) == LATE_DELTAS, "the simulator sent no deltas after speech_started"
    done = next(
        r.event["response"]
        for r in server
        if r.type == "response.done" and r.event["response"]["id"] == first_response
    )
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"
    assert not [r for r in client if r.type == "response.cancel"]  # the server cancelled
    assert not [r.event["error"] for r in server if r.type == "error"]
    truncates = [r.event for r in client if r.type == "conversation.item.truncate"]
    assert len(truncates) == 1 and truncates[0]["item_id"] == first_item
    assert truncate_log["audio_end_ms"] == truncates[0]["audio_end_ms"]

    # The wire: the first answer's frames up to the barge-in, then only the second answer.
    assert len(replies) == 2 and replies[1][1] == reply
    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    starts = [i for i, p in enumerate(packets) if p.rtp.payload == reply[:160]]
    assert len(starts) == 2, "expected the first and the second answer to start once each"
    first, second = starts
    heard = b"".join(p.rtp.payload for p in packets[first:second] if not is_silent(p.rtp.payload))
    assert heard == reply[: len(heard)], "bot audio on the wire differs from what was sent"
    late_audio_from = len(first_audio) - sum(len(r.event["delta"]) * 3 // 4 for r in late)
    assert len(heard) <= late_audio_from, "a late delta of the interrupted answer was played"
    assert abs(truncates[0]["audio_end_ms"] - len(heard) / 8) <= FRAME_MS
    after = b"".join(p.rtp.payload for p in packets[second:] if not is_silent(p.rtp.payload))
    assert after == reply
    print(
        f"\nreal-time barge-in: {len(late)} late deltas dropped; heard {len(heard) // 8} ms, "
        f"truncate audio_end_ms={truncates[0]['audio_end_ms']}"
    )


def test_an_idle_caller_is_prompted_then_hung_up_on_with_bye(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    tmp_path: Path,
) -> None:
    """semantic_vad (no server idle timer): the gateway's own watchdog prompts the silent
    caller once, then says goodbye and sends BYE (Reason text "idle caller")."""
    sim = sim_factory(default_reply_ms=800, realtime_pace=2.0)
    gw = realtime_gateway(sim.url, {"calls": {"idle_prompt_s": 1.0, "idle_prompts_max": 1}})
    pcap = tmp_path / "silence.pcap"
    write_caller_pcap(pcap, silence_ms(10000))
    tshark.start()
    result = sipp.run(
        "uac_play_wait_bye.xml",
        timeout_s=40,
        substitutions={"PCAP": str(pcap), "BYE_TIMEOUT_MS": "20000"},
    )
    tshark.stop()
    assert result.rc == 0, result.describe()
    assert 'text="idle caller"' in result.logs, result.logs
    call_id = gw.wait_event("call.offered")["call_id"]
    assert gw.wait_event("call.idle_prompt", call_id=call_id)["prompt"] == 1
    gw.wait_event("call.idle_hangup", call_id=call_id)
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "idle_caller", ended  # the end cause as a token
    client = sim.client_events(0)
    creates = [r.event for r in client if r.type == "response.create"]
    assert len(creates) == 2  # the prompt, then the goodbye
    server = sim.server_events(0)
    goodbye = list(reply_audio(server).values())[-1]
    assert goodbye, "the goodbye was not spoken"
    byes = sip_messages(read_udp(tshark.pcap), "BYE ")
    assert byes, "no BYE from the gateway"


GREETING_MS = 4000  # still generating (pace 1.1) when the digit comes 1.5 s into the call


def test_dtmf_barge_in_cancels_before_truncating_while_deltas_still_stream(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """A gateway-initiated barge-in (DTMF, and interrupt_response off so the server cancels
    nothing itself) while the greeting is still being generated near real time: the gateway
    sends response.cancel first, then the truncate; the deltas still in flight after the
    cancel are dropped, so the caller hears the greeting up to the digit, then the answer."""
    greeting = sweep(GREETING_MS)
    sim = sim_factory(reply_audio=greeting, realtime_pace=1.1, late_deltas=LATE_DELTAS)
    gw = realtime_gateway(
        sim.url,
        {"realtime": {"greeting": "Greet the caller.", "interrupt_response": False}},
    )
    pcap = tmp_path / "digits.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(1500), "5#")
    call_id = captured_media_call(sipp, tshark, gw, pcap, play_ms + GREETING_MS + 2000, 40)
    assert gw.wait_event("barge_in", call_id=call_id)["trigger"] == "dtmf"

    client = [r for r in sim.client_events(0) if r.type != "input_audio_buffer.append"]
    wire = [
        r.type
        for r in client
        if r.type in ("response.cancel", "conversation.item.truncate", "conversation.item.delete")
    ]
    assert wire[:2] == ["response.cancel", "conversation.item.truncate"], wire
    server = sim.server_events(0)
    first = next(r.event["response"]["id"] for r in server if r.type == "response.created")
    done = next(
        r.event["response"]
        for r in server
        if r.type == "response.done" and r.event["response"]["id"] == first
    )
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    cancel_at = next(r.t for r in sim.client_events(0) if r.type == "response.cancel")
    late = [
        r
        for r in server
        if r.type == "response.output_audio.delta"
        and r.event["response_id"] == first
        and r.t > cancel_at
    ]
    assert late, "no delta of the greeting arrived after the cancel"
    assert not [r.event["error"] for r in server if r.type == "error"]

    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    starts = [i for i, p in enumerate(packets) if p.rtp.payload == greeting[:160]]
    assert len(starts) == 2, f"expected the greeting and the answer to start, got {starts}"
    heard = b"".join(
        p.rtp.payload for p in packets[starts[0] : starts[1]] if not is_silent(p.rtp.payload)
    )
    assert heard == greeting[: len(heard)] and 0 < len(heard) < len(greeting)
    truncate = next(r.event for r in client if r.type == "conversation.item.truncate")
    assert abs(truncate["audio_end_ms"] - len(heard) / 8) <= FRAME_MS
    answer = b"".join(p.rtp.payload for p in packets[starts[1] :] if not is_silent(p.rtp.payload))
    assert answer == greeting, "the answer to the digits did not play in full"


def test_replay_after_a_drop_is_in_item_order_without_a_configured_transcription_model(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """Two caller turns whose transcriptions arrive after the answer's response.created (as
    the service sometimes sends them), no transcription model configured; the socket is then
    cut. The new session gets the conversation as text in item order: caller, bot, caller,
    bot (the gateway turned transcription on for replay only)."""
    transcripts = ("hello can you hear me", "what time is it now")
    sim = sim_factory(transcription_timing="after", transcripts=transcripts, reply_text="an answer")
    gw = realtime_gateway(sim.url)
    pcap = tmp_path / "caller.pcap"
    first = silence_ms(600) + utterances.hello
    caller = first + silence_ms(5000 - len(first) // 8) + utterances.question + silence_ms(6000)
    play_ms = write_caller_pcap(pcap, caller)
    run = sipp.start(
        "uac_media_dtmf.xml",
        f"127.0.0.1:{ports.gateway_sip}",
        timeout_s=40,
        substitutions={"PCAP": str(pcap), "PLAY_MS": str(play_ms)},
    )
    sim.wait_until(
        "the second answer's response.done",
        lambda: (
            bool(sim.sim.sessions)
            and sum(
                r.type == "response.done"
                for r in next(iter(sim.sim.sessions.values())).server_events
            )
            >= 2
        ),
        timeout=20,
    )
    sim.drop_session(0)
    result = run.wait()
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    gw.wait_event("realtime.reconnected", call_id=call_id)
    gw.wait_event("call.ended", call_id=call_id)
    assert not gw.find("transcript.caller", call_id=call_id)  # replay-only: never logged
    server = sim.server_events(0)
    order = [r.type for r in server]
    assert order.index("conversation.item.input_audio_transcription.completed") > order.index(
        "response.created"
    )
    update = next(r.event for r in sim.client_events(0) if r.type == "session.update")
    assert update["session"]["audio"]["input"]["transcription"]["model"]
    replayed = [
        (r.event["item"]["role"], r.event["item"]["content"][0]["text"])
        for r in sim.client_events(1)
        if r.type == "conversation.item.create"
    ]
    assert replayed == [
        ("user", transcripts[0]),
        ("assistant", "an answer"),
        ("user", transcripts[1]),
        ("assistant", "an answer"),
    ], replayed


def test_a_failed_greeting_is_retried_so_the_caller_hears_the_bot(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The first response (the greeting) ends with response.done status failed: the gateway
    logs it, asks again, and the caller hears the second one instead of silence."""
    greeting = sweep(2000)
    sim = sim_factory(reply_audio=greeting, response_outcomes=("failed",))
    gw = realtime_gateway(sim.url, {"realtime": {"greeting": "Greet the caller."}})
    pcap = tmp_path / "silence.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(4000))
    tshark.start()
    result = sipp.run(
        "uac_media_dtmf.xml",
        timeout_s=30,
        substitutions={"PCAP": str(pcap), "PLAY_MS": str(play_ms + 500)},
    )
    tshark.stop()
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    failed = gw.wait_event("realtime.response_status", call_id=call_id)
    assert failed["status"] == "failed" and failed["error"].startswith("server_error")
    gw.wait_event("call.ended", call_id=call_id)
    creates = [r.event for r in sim.client_events(0) if r.type == "response.create"]
    assert [c["response"]["instructions"] for c in creates] == [
        "Greet the caller.",
        CallPolicy().failed_response_instructions,  # the default calls.* settings
    ]
    statuses = [
        r.event["response"]["status"] for r in sim.server_events(0) if r.type == "response.done"
    ]
    assert statuses == ["failed", "completed"]
    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    heard = b"".join(p.rtp.payload for p in packets if not is_silent(p.rtp.payload))
    assert heard == greeting, "the retried greeting did not play"
