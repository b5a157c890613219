"""End to end in GPT-Live mode, the built-in tools through Responses delegation: the simulator's
backend calls `end_call` (the gateway returns its result, lets the final words play, closes the
session, then sends BYE) or `transfer_call` (a REFER that a SIPp caller accepts).

Times: the capture's are wall-clock; the simulator's records are monotonic, put on the wall clock
by the offset between the two clocks read in this process (the simulator runs in it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.live.simulator.options import LiveToolCallRule
from tests.tools.caller_audio import Utterances, silence_ms, write_caller_pcap
from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.live_gateway import LiveSimulatorThread, client_types
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.sipp import Sipp, captured_run
from tests.tools.wire import gateway_rtp, is_silent, locate, sip_messages, transfer_on_the_wire

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket"),
]

FINAL_WORDS_MS = 2000  # the backend's continuation after end_call, spoken by the Live model
FINAL_WORDS_HZ = 660.0  # the simulator's continuation tone (gateway/live/simulator/delegation.py)


def _function_outputs(sim: LiveSimulatorThread) -> list[dict]:
    return [
        r.event["item"]
        for r in sim.live_client_events(0)
        if r.type == "response.item.create" and r.event["item"]["type"] == "function_call_output"
    ]


def test_live_end_call_sends_bye_after_the_final_words_and_the_closed_session(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The caller says hello; the backend answers it with end_call; the gateway returns the
    result and the Live model speaks 2 s of final words. The BYE must come after the last of
    them on the wire and after session.close -> session.closed."""
    sim = live_sim_factory(
        tool_calls=(LiveToolCallRule("end_call", on_utterance=1, continuation_text="Goodbye."),),
        continuation_ms=FINAL_WORDS_MS,
    )
    gw = live_gateway(sim)
    pcap = tmp_path / "caller.pcap"
    write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(800))
    result = captured_run(
        sipp, tshark, "uac_play_wait_bye.xml", 40, {"PCAP": str(pcap), "BYE_TIMEOUT_MS": "25000"}
    )
    wall_offset = time.time() - time.monotonic()
    assert 'SIP;cause=200;text="end_call"' in result.logs, result.logs  # the BYE's Reason
    call_id = gw.wait_event("call.offered")["call_id"]
    assert gw.wait_event("call.hangup", call_id=call_id)["cause"] == "end_call"
    assert gw.wait_event("call.ended", call_id=call_id)["cause"] == "end_call"

    # The model's view: the delegated call, its result, the continuation, then the close.
    server = sim.live_server_events(0)
    calls = [
        r.event["event"]["item"]
        for r in server
        if r.type == "response.event"
        and r.event["event"]["type"] == "response.output_item.done"
        and r.event["event"]["item"]["type"] == "function_call"
    ]
    assert [c["name"] for c in calls] == ["end_call"], calls
    outputs = _function_outputs(sim)
    assert [o["call_id"] for o in outputs] == [calls[0]["call_id"]], outputs
    json.loads(outputs[0]["output"])  # a JSON string, as the protocol asks
    types = client_types(sim.live_client_events(0))
    print(f"\nclient events: {types}")
    assert types[-3:] == ["response.item.create", "response.create", "session.close"], types
    closed = [r for r in server if r.type == "session.closed"]
    assert [r.event["reason"] for r in closed] == ["close_requested"], closed
    close_sent = next(r.t for r in sim.live_client_events(0) if r.type == "session.close")

    # The wire's view: the final words whole, then the BYE.
    final_words = sim.live(0, lambda s: s.tone(FINAL_WORDS_MS, FINAL_WORDS_HZ))
    datagrams = read_udp(tshark.pcap)
    packets = gateway_rtp(datagrams, ports, ports.sipp_media)
    where = locate(final_words, packets)
    assert where is not None, "the final words did not play out whole"
    last_words = packets[where.last].time
    byes = sip_messages(datagrams, "BYE ")
    assert byes and byes[0].src[1] == ports.gateway_sip, "no BYE from the gateway"
    bye_at = byes[0].time
    closed_at = closed[0].t + wall_offset
    print(
        f"last final-words packet {last_words:.3f}, session.close sent "
        f"{close_sent + wall_offset:.3f}, session.closed {closed_at:.3f}, BYE {bye_at:.3f} "
        f"({1000 * (bye_at - last_words):+.0f} ms after the last words)"
    )
    assert last_words < bye_at, "BYE sent before the caller heard the final words"
    assert close_sent + wall_offset < closed_at < bye_at, "BYE before session.closed"
    assert not [p for p in packets[where.last + 1 :] if not is_silent(p.rtp.payload)]


ANNOUNCE_MS = 1500  # the Live model's announcement after the "transferring" result


def test_live_transfer_call_sends_refer_that_the_caller_accepts(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The backend calls transfer_call(operator). In the order of the reference (section 6):
    function_call_output {"status": "transferring"} + response.create at once, the model's
    announcement plays out whole, then REFER (gateway -> caller), 202, NOTIFY 200, then
    session.close -> session.closed, then BYE (the scenario of tests/e2e/test_tools.py)."""
    operator = f"sip:op@127.0.0.1:{ports.base + 35}"
    sim = live_sim_factory(
        tool_calls=(
            LiveToolCallRule(
                "transfer_call",
                {"target": "operator"},
                on_utterance=1,
                continuation_text="I am transferring you now.",
            ),
        ),
        continuation_ms=ANNOUNCE_MS,
    )
    gw = live_gateway(sim, {"calls": {"transfer_targets": [{"name": "operator", "uri": operator}]}})
    pcap = tmp_path / "caller.pcap"
    write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(1500))
    result = captured_run(
        sipp,
        tshark,
        "uac_play_accept_refer.xml",
        40,
        {"PCAP": str(pcap), "REFER_TIMEOUT_MS": "20000", "BYE_TIMEOUT_MS": "15000"},
    )
    wall_offset = time.time() - time.monotonic()
    assert f"Refer-To: {operator}" in result.logs, result.logs
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    print(f"\ncall.ended: cause={ended['cause']} hangup_cause={ended.get('hangup_cause')}")
    assert ended["cause"] == "transferred", ended

    # The model's view: the delegated call, its result at once, then (after the NOTIFY) close.
    server = sim.live_server_events(0)
    calls = [
        r.event["event"]["item"]
        for r in server
        if r.type == "response.event"
        and r.event["event"]["type"] == "response.output_item.done"
        and r.event["event"]["item"]["type"] == "function_call"
    ]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("transfer_call", {"target": "operator"})
    ]
    outputs = _function_outputs(sim)
    assert [o["call_id"] for o in outputs] == [calls[0]["call_id"]], outputs
    assert json.loads(outputs[0]["output"]) == {"status": "transferring", "target": "operator"}
    types = client_types(sim.live_client_events(0))
    print(f"client events: {types}")
    assert types == [
        "session.start",
        "response.item.create",
        "response.create",
        "session.close",
    ], types
    closed = [r for r in server if r.type == "session.closed"]
    assert [r.event["reason"] for r in closed] == ["close_requested"], closed
    client = sim.live_client_events(0)
    output_sent = next(r.t for r in client if r.type == "response.item.create") + wall_offset
    close_sent = next(r.t for r in client if r.type == "session.close") + wall_offset
    closed_at = closed[0].t + wall_offset

    # The wire's view: the announcement whole, then REFER / 202 / NOTIFY, then the BYE.
    datagrams = read_udp(tshark.pcap)
    refer, _, notify, bye = transfer_on_the_wire(datagrams, ports)
    announcement = sim.live(0, lambda s: s.tone(ANNOUNCE_MS, FINAL_WORDS_HZ))
    packets = gateway_rtp(datagrams, ports, ports.sipp_media)
    where = locate(announcement, packets)
    assert where is not None, "the transfer announcement did not play out whole"
    last_words = packets[where.last].time
    print(
        f"function_call_output {output_sent:.3f}, last announcement packet {last_words:.3f}, "
        f"REFER {refer.time:.3f}, NOTIFY {notify.time:.3f}, session.close {close_sent:.3f}, "
        f"session.closed {closed_at:.3f}, BYE {bye.time:.3f}"
    )
    assert output_sent < packets[where.first].time, "announcement before the result"
    assert last_words < refer.time, "REFER sent before the announcement played out"
    assert notify.time < close_sent < closed_at < bye.time, "BYE before session.closed"


@pytest.mark.parametrize(
    ("scenario", "status"),
    [("uac_play_refuse_refer.xml", 603), ("uac_play_refer_notify_503.xml", 503)],
    ids=["refer-603", "notify-503"],
)
def test_live_transfer_refused_by_the_caller_tells_the_model_and_keeps_the_call(
    scenario: str,
    status: int,
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The caller answers the REFER with 603, or accepts it and reports 503 in the final
    NOTIFY: the call's output ("transferring") is already given, so the model learns of the failure as a thinking append and is asked to tell the
    caller (an instructions append); the call goes on until the caller hangs up."""
    operator = f"sip:op@127.0.0.1:{ports.base + 35}"
    sim = live_sim_factory(
        tool_calls=(LiveToolCallRule("transfer_call", {"target": "operator"}, on_utterance=1),)
    )
    gw = live_gateway(sim, {"calls": {"transfer_targets": [{"name": "operator", "uri": operator}]}})
    pcap = tmp_path / "caller.pcap"
    write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(1500))
    result = sipp.run(
        scenario,
        timeout_s=40,
        substitutions={"PCAP": str(pcap), "REFER_TIMEOUT_MS": "20000", "PLAY_MS": "3000"},
    )
    assert result.rc == 0, result.describe()
    call_id = gw.wait_event("call.offered")["call_id"]
    failed = gw.wait_event("transfer.failed", call_id=call_id)
    assert failed["status"] == status, failed
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended  # the caller hung up; the gateway did not

    outputs = _function_outputs(sim)
    assert len(outputs) == 1, outputs  # no second output for the same call
    assert json.loads(outputs[0]["output"])["status"] == "transferring"
    client = [r.event for r in sim.live_client_events(0)]
    types = client_types(sim.live_client_events(0))
    print(f"\nclient events: {types}")
    thinking = [e["content"] for e in client if e["type"] == "session.thinking.append"]
    assert f"The transfer failed (SIP {status})." in thinking, thinking
    told = types.index("session.thinking.append")
    assert types.index("response.create") < told
    assert types[told + 1] == "session.instructions.append", types
    assert types[-1] == "session.close", types  # only once the caller left
