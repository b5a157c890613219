"""End to end, built-in tools called by the model: `end_call` (BYE once the caller heard the bot's
last words) and `transfer_call` (blind REFER that the caller's UA accepts, then BYE)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.realtime.simulator import ToolCallRule, tone
from tests.tools.caller_audio import Utterances, silence_ms, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp, captured_run
from tests.tools.wire import (
    gateway_rtp,
    is_silent,
    locate,
    reply_audio,
    sip_messages,
    transfer_on_the_wire,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]

GREETING_MS = 3000


def test_end_call_sends_bye_after_the_playout(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The bot greets the caller (3 s of audio, generated in a few ms); while the greeting still
    plays the caller presses 1 # (DTMF barge-in off, so the greeting keeps playing); that is the
    model's first user turn and it answers with end_call. The BYE must wait for the greeting's
    last packet: hanging up on generation time would cut the bot off mid-sentence."""
    greeting = tone(GREETING_MS, "audio/pcmu", hz=600.0)
    sim = sim_factory(reply_audio=greeting, tool_calls=(ToolCallRule("end_call", on_turn=1),))
    gw = realtime_gateway(
        sim.url,
        {
            "realtime": {"greeting": "Greet the caller."},
            "calls": {"dtmf_barge_in": False},
        },
    )
    pcap = tmp_path / "digits.pcap"
    write_caller_pcap(pcap, silence_ms(800), "1#")
    result = captured_run(
        sipp, tshark, "uac_play_wait_bye.xml", 30, {"PCAP": str(pcap), "BYE_TIMEOUT_MS": "15000"}
    )
    assert 'SIP;cause=200;text="end_call"' in result.logs, result.logs  # the BYE's Reason
    call_id = gw.wait_event("call.offered")["call_id"]
    hangup = gw.wait_event("call.hangup", call_id=call_id)
    assert hangup["cause"] == "end_call", hangup
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "end_call", ended

    server = sim.server_events(0)
    calls = [r.event for r in server if r.type == "response.function_call_arguments.done"]
    assert [c["name"] for c in calls] == ["end_call"], calls
    # The digits were the turn that triggered it, and they came while the greeting played.
    assert reply_audio(server) == {next(iter(reply_audio(server))): greeting}

    datagrams = read_udp(tshark.pcap)
    packets = gateway_rtp(datagrams, ports, ports.sipp_media)
    where = locate(greeting, packets)
    assert where is not None, "the greeting did not play out completely"
    last_bot = packets[where.last].time
    byes = sip_messages(datagrams, "BYE ")
    assert byes, "no BYE in the capture"
    bye_at = byes[0].time
    tool_at = next(r.t for r in server if r.type == "response.function_call_arguments.done")
    greeting_done_at = next(r.t for r in server if r.type == "response.done")
    print(
        f"\ngreeting generated in {1000 * (tool_at - greeting_done_at):.0f} ms before the "
        f"tool call; last greeting packet {last_bot:.3f}, BYE {bye_at:.3f} "
        f"({1000 * (bye_at - last_bot):+.0f} ms)"
    )
    assert bye_at >= last_bot, "BYE sent before the caller heard the bot's last words"
    assert all(is_silent(p.rtp.payload) for p in packets[where.last + 1 :])


def test_transfer_call_sends_refer_that_the_caller_accepts(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    operator = f"sip:op@127.0.0.1:{ports.base + 35}"
    sim = sim_factory(
        tool_calls=(ToolCallRule("transfer_call", {"target": "operator"}, on_turn=1),)
    )
    gw = realtime_gateway(
        sim.url, {"calls": {"transfer_targets": [{"name": "operator", "uri": operator}]}}
    )
    pcap = tmp_path / "caller.pcap"
    write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(1500))
    result = captured_run(
        sipp,
        tshark,
        "uac_play_accept_refer.xml",
        30,
        {"PCAP": str(pcap), "REFER_TIMEOUT_MS": "15000", "BYE_TIMEOUT_MS": "10000"},
    )
    assert f"Refer-To: {operator}" in result.logs, result.logs
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    print(f"\ncall.ended: cause={ended['cause']} hangup_cause={ended.get('hangup_cause')}")
    assert ended["cause"] == "transferred", ended

    server = sim.server_events(0)
    calls = [r.event for r in server if r.type == "response.function_call_arguments.done"]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("transfer_call", '{"target":"operator"}')
    ]
    # On the wire, in order: REFER (gateway -> caller), 202, NOTIFY 200 sipfrag, BYE.
    datagrams = read_udp(tshark.pcap)
    transfer_on_the_wire(datagrams, ports)


def test_refused_transfer_is_reported_to_the_model_and_the_call_goes_on(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The caller's UA answers the REFER with 603: the model gets a function_call_output saying
    the transfer failed, then a response.create (so it can tell the caller), and the gateway
    does not hang up."""
    operator = f"sip:op@127.0.0.1:{ports.base + 35}"
    sim = sim_factory(
        tool_calls=(ToolCallRule("transfer_call", {"target": "operator"}, on_turn=1),)
    )
    gw = realtime_gateway(
        sim.url, {"calls": {"transfer_targets": [{"name": "operator", "uri": operator}]}}
    )
    pcap = tmp_path / "caller.pcap"
    write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(1500))
    result = sipp.run(
        "uac_play_refuse_refer.xml",
        timeout_s=30,
        substitutions={"PCAP": str(pcap), "REFER_TIMEOUT_MS": "15000", "PLAY_MS": "3000"},
    )
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended  # the caller hung up; the gateway did not

    server = sim.server_events(0)
    call = next(r.event for r in server if r.type == "response.function_call_arguments.done")
    assert call["name"] == "transfer_call"
    client = [r.event for r in sim.client_events(0) if r.type != "input_audio_buffer.append"]
    outputs = [
        (i, e["item"])
        for i, e in enumerate(client)
        if e["type"] == "conversation.item.create"
        and e["item"].get("type") == "function_call_output"
    ]
    print(f"\nfunction_call_output(s): {[item['output'] for _, item in outputs]}")
    assert len(outputs) == 1, outputs
    index, item = outputs[0]
    assert item["call_id"] == call["call_id"]
    assert '"ok": false' in item["output"] and "603" in item["output"], item["output"]
    assert [e["type"] for e in client[index + 1 : index + 2]] == ["response.create"]
    # The model answered that (audio), the turn after the tool call.
    assert sum(1 for r in server if r.type == "response.done") == 2
