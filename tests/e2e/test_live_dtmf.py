"""End to end in GPT-Live mode, DTMF from the caller: digits reach the model as text, with the
collection rules of the Realtime test (tests/e2e/test_dtmf.py: `#` ends the collection and the
digits go at once, as one text "The caller pressed 1 2 3 #").

GPT-Live has no DTMF event (gpt-live-protocol.md section 8): the digits are a
`session.thinking.append` (what the model is told), placed on the timeline (the simulator's
`session.thinking.appended`), and, with Responses delegation, the same text as a user message
for the backend. Two transports: RFC 4733 in the RTP stream and SIP INFO.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.caller_audio import silence_ms, write_caller_pcap
from tests.tools.gateway_process import GatewayProcess
from tests.tools.live_gateway import LiveSimulatorThread, client_types
from tests.tools.sipp import Sipp, digits_call

pytestmark = pytest.mark.interop

DIGITS = "123#"
EXPECTED_TEXT = "The caller pressed 1 2 3 #"


def _assert_digits_reached_the_model(sim: LiveSimulatorThread) -> None:
    assert sim.live_count() == 1
    # What the model was given, in order (the simulator's record of accepted appends).
    texts = sim.live(0, lambda s: s.model_texts())
    print(f"\nmodel got: {texts}")
    assert [t for t in texts if "pressed" in t] == [EXPECTED_TEXT], texts
    thinking = [r.event for r in sim.live_client_events(0) if r.type == "session.thinking.append"]
    assert thinking == [
        {**thinking[0], "type": "session.thinking.append", "content": EXPECTED_TEXT}
    ], thinking
    assert thinking[0]["delegation_id"] is None  # Responses delegation takes no id (SDK)
    # Placed on the timeline (acknowledged once input audio carried the clock past it).
    server = sim.live_server_events(0)
    assert any(r.type == "session.thinking.appended" for r in server), [r.type for r in server]
    assert not [r.event for r in server if r.type == "error"]
    types = client_types(sim.live_client_events(0))
    print(f"client events: {types}")
    # The digits are one sequence: one append (not one per digit), nothing before the start.
    assert types[0] == "session.start" and types.count("session.thinking.append") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="SIPp play_pcap_audio needs a raw socket")
def test_live_rfc4733_digits_reach_the_model_as_text(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tmp_path: Path,
) -> None:
    sim = live_sim_factory()
    gw = live_gateway(sim)
    pcap = tmp_path / "digits.pcap"
    # The append is placed 0.6-1 s of input audio after it was sent: keep the call up past it.
    play_ms = write_caller_pcap(pcap, silence_ms(600), DIGITS)
    call_id = digits_call(
        sipp,
        gw,
        "uac_media_dtmf.xml",
        {"PCAP": str(pcap), "PLAY_MS": str(play_ms + 2000)},
        DIGITS,
        "rfc4733",
    )
    gw.wait_event("call.ended", call_id=call_id)
    _assert_digits_reached_the_model(sim)


def test_live_sip_info_digits_reach_the_model_as_text(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
) -> None:
    sim = live_sim_factory()
    gw = live_gateway(sim)
    call_id = digits_call(
        sipp, gw, "uac_info_dtmf.xml", {"LEAD_MS": "800", "TAIL_MS": "2000"}, DIGITS, "info"
    )
    gw.wait_event("call.ended", call_id=call_id)
    _assert_digits_reached_the_model(sim)
