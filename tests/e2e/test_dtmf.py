"""End to end, DTMF: digits pressed by a real caller reach the model as text, then a response.

Two transports: RFC 4733 telephone-events in the RTP stream (SIPp plays a pcap) and SIP INFO
application/dtmf-relay (a SIPp scenario). `#` ends the collection, so the digits go to the model
at once: `conversation.item.create` (user text "The caller pressed 1 2 3 #"), `response.create`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.realtime.simulator import Recorded
from tests.tools.caller_audio import silence_ms, sweep, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp, captured_media_call, digits_call
from tests.tools.wire import gateway_rtp, is_silent, iso_to_epoch, reply_audio

pytestmark = pytest.mark.interop

DIGITS = "123#"
EXPECTED_TEXT = "The caller pressed 1 2 3 #"


def _item_text(event: dict) -> str:
    item = event.get("item") or {}
    if item.get("type") != "message" or item.get("role") != "user":
        return ""
    return " ".join(str(part.get("text", "")) for part in item.get("content", []))


def _assert_digits_reached_the_model(sim: SimulatorThread, expected: str = EXPECTED_TEXT) -> None:
    assert sim.session_count() == 1
    # Audio appends interleave with everything else; the order of the rest is what matters.
    events: list[Recorded] = [
        r for r in sim.client_events(0) if r.type != "input_audio_buffer.append"
    ]
    texts = [
        (index, _item_text(r.event))
        for index, r in enumerate(events)
        if r.type == "conversation.item.create"
    ]
    digit_items = [(index, text) for index, text in texts if "pressed" in text]
    print(f"\nmodel got: {[text for _, text in digit_items]}")
    assert [text for _, text in digit_items] == [expected], texts
    index = digit_items[0][0]
    following = [r.type for r in events[index + 1 : index + 2]]
    assert following == ["response.create"], [r.type for r in events[index:]]
    # And the model answered it.
    server_types = [r.type for r in sim.server_events(0)]
    assert "response.done" in server_types


@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket")
def test_rfc4733_digits_reach_the_model_as_text(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tmp_path: Path,
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url)
    pcap = tmp_path / "digits.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(600), DIGITS)
    call_id = digits_call(
        sipp,
        gw,
        "uac_media_dtmf.xml",
        {"PCAP": str(pcap), "PLAY_MS": str(play_ms + 1500)},
        DIGITS,
        "rfc4733",
    )
    ended = gw.wait_event("call.ended", call_id=call_id)
    rtp = ended["rtp"]
    print(
        f"\ncall.ended rtp: received={rtp['packets_received']} dtmf={rtp['dtmf_packets']} "
        f"lost={rtp['lost']} concealed={rtp['concealed']}"
    )
    # The events share the audio's sequence space: they are not loss (nothing is lost on
    # loopback), or every key press would show up in the call's loss figures and RTCP.
    assert rtp["lost"] == 0, rtp
    _assert_digits_reached_the_model(sim)


def test_sip_info_digits_reach_the_model_as_text(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url)
    call_id = digits_call(
        sipp, gw, "uac_info_dtmf.xml", {"LEAD_MS": "800", "TAIL_MS": "1500"}, DIGITS, "info"
    )
    gw.wait_event("call.ended", call_id=call_id)
    _assert_digits_reached_the_model(sim)


GREETING_MS = 4000  # the digits come 1.5 s in: 2.5 s of greeting still to play


@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket")
def test_digit_while_the_bot_speaks_interrupts_it(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """DTMF barge-in (calls.dtmf_barge_in, on by default): the caller presses 5 # during a
    4 s greeting. The greeting stops at once, is truncated at what went out on the wire (the
    server's VAD never saw this interruption, so only the gateway can do it), and the digits
    then reach the model, whose answer plays in full."""
    greeting = sweep(GREETING_MS)
    sim = sim_factory(reply_audio=greeting)
    gw = realtime_gateway(sim.url, {"realtime": {"greeting": "Greet the caller."}})
    pcap = tmp_path / "digits.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(1500), "5#")
    call_id = captured_media_call(sipp, tshark, gw, pcap, play_ms + GREETING_MS + 1000, 30)
    barge = gw.wait_event("barge_in", call_id=call_id)
    assert barge["trigger"] == "dtmf", barge
    truncate = next(r.event for r in sim.client_events(0) if r.type == "conversation.item.truncate")
    replies = list(reply_audio(sim.server_events(0)).items())
    assert [audio == greeting for _, audio in replies] == [True, True], "greeting + answer"
    assert truncate["item_id"] == replies[0][0]
    _assert_digits_reached_the_model(sim, "The caller pressed 5 #")

    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    starts = [i for i, p in enumerate(packets) if p.rtp.payload == greeting[:160]]
    assert len(starts) == 2, f"expected the greeting and the answer to start, got {starts}"
    played = [p for p in packets[starts[0] : starts[1]] if not is_silent(p.rtp.payload)]
    sent = b"".join(p.rtp.payload for p in played)
    assert sent == greeting[: len(sent)] and 0 < len(sent) < len(greeting)
    stop_ms = (played[-1].time - iso_to_epoch(barge["ts"])) * 1000
    print(
        f"greeting: {len(sent) // 8} ms of {GREETING_MS} ms on the wire, truncate "
        f"audio_end_ms={truncate['audio_end_ms']}; last greeting packet {stop_ms:+.1f} ms "
        "from the barge_in log line"
    )
    assert abs(truncate["audio_end_ms"] - len(sent) / 8) <= 20
    assert stop_ms <= 25
    answer = b"".join(p.rtp.payload for p in packets[starts[1] :] if not is_silent(p.rtp.payload))
    assert answer == greeting, "the answer to the digits did not play in full"
