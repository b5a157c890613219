"""Call-level decisions that go through the state machine, driven from the product: a real
Gateway (real SIP and RTP sockets) bridged to the in-process simulator, a raw UAC.

Each test checks what the machine decides (the bot's queued words are played out before the
BYE) and that the one end cause reaches the BYE's Reason header, `call.ended`, the call
record and the `srg_calls_total` outcome. Waits are on conditions (SIP messages, RTP
packets, log events), never on sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config import ControlConfig, GatewayConfig
from gateway.realtime.simulator import SimulatorOptions
from gateway.serve import GatewayControl
from sip.timers import TimerConfig
from tests.test_app import (
    TIMEOUT,
    EventLog,
    body_of,
    header,
    offer_sdp,
    status_of,
)
from tests.test_product import (
    SILENCE_FRAME,
    Product,
    invite,
    running_product,
    sample,
    tone,
)
from tests.tools.eventlog import captured_events

BOT_REPLY_MS = 4000  # the greeting: long enough to be still playing when the decision comes
BOT_FRAMES = BOT_REPLY_MS // 20


@pytest.fixture
def events() -> Iterator[EventLog]:
    # DEBUG: `call.state` between the active states (bot_speaking, awaited below) is a DEBUG
    # line since issue 14 (gateway/call/session.py `dispatch`).
    with captured_events(logging.DEBUG) as handler:
        yield handler


async def _bench(
    port_block: int, tmp_path: Path, media: dict[str, Any], calls: dict[str, Any]
) -> AsyncIterator[Product]:
    """The product (tests/test_product.py) with a greeting long enough to be still playing when
    the decision comes, no control API, and these [media] / [calls] settings."""
    options = SimulatorOptions(reply_audio=tone(BOT_REPLY_MS), reply_format="audio/pcmu")

    def adjust(config: GatewayConfig) -> GatewayConfig:
        return dataclasses.replace(
            config,
            media=dataclasses.replace(config.media, **media),
            calls=dataclasses.replace(config.calls, **calls),
            realtime=dataclasses.replace(config.realtime, greeting="Greet the caller."),
            control=ControlConfig(enabled=False),
        )

    async with running_product(port_block, tmp_path, options, adjust) as bench:
        yield bench


async def _bye_after_bot_audio(bench: Product) -> tuple[bytes, int]:
    """Wait for the gateway's BYE while counting the bot's (non-silent) RTP frames that
    reached the caller before it; answer the BYE."""
    loud = 0

    async def count() -> None:
        nonlocal loud
        while True:
            packet = await bench.rtp.queue.get()
            if len(packet) == 172 and packet[12:] != SILENCE_FRAME:
                loud += 1

    counting = asyncio.create_task(count())
    try:
        bye = await asyncio.wait_for(bench.uac.expect_request("BYE"), 3 * TIMEOUT)
    finally:
        counting.cancel()
    bench.uac.respond(bye, 200, "OK")
    return bye, loud


async def _place_silent_call(bench: Product) -> None:
    """A caller that answers nothing and sends no RTP: only the bot's greeting plays."""
    final = await invite(bench.uac, offer_sdp(bench.rtp_port))
    assert status_of(final) == 200
    bench.uac.ack(final)


def _record(bench: Product, call_id: str) -> dict[str, Any]:
    (path,) = bench.records.glob("*.json")
    document = orjson.loads(path.read_bytes())
    assert document["call_id"] == call_id
    return document


@pytest.fixture
async def rtp_timeout_bench(port_block: int, tmp_path: Path) -> AsyncIterator[Product]:
    async for bench in _bench(port_block, tmp_path, {"rtp_timeout_s": 2.0}, {}):
        yield bench


async def test_rtp_timeout_drains_playout_then_byes_with_408(
    rtp_timeout_bench: Product, events: EventLog
) -> None:
    bench = rtp_timeout_bench
    await _place_silent_call(bench)
    bye, loud = await _bye_after_bot_audio(bench)
    call_id = bench.uac.call_id
    assert header(bye, "Reason") == 'SIP;cause=408;text="RTP timeout"'
    timed_out = events.find("call.rtp_timeout", call_id=call_id)
    assert timed_out, "the BYE came before the RTP timeout"
    # The machine moved to ENDING and waited: the whole greeting reached the caller first.
    assert events.find("call.state", call_id=call_id, state="ending")
    assert loud >= BOT_FRAMES * 0.9, f"only {loud} of {BOT_FRAMES} bot frames played"
    ended = await events.wait("call.ended", call_id=call_id)
    assert ended["cause"] == "rtp_timeout"
    assert _record(bench, call_id)["hangup"]["cause"] == "rtp_timeout"
    metrics = bench.gateway.prometheus.render()[0].decode()
    assert sample(metrics, "srg_calls_total", route="default", outcome="rtp_timeout") == 1
    assert sample(metrics, "srg_calls_total", route="default", outcome="other") == 0


@pytest.fixture
async def max_duration_bench(port_block: int, tmp_path: Path) -> AsyncIterator[Product]:
    async for bench in _bench(port_block, tmp_path, {}, {"max_duration_s": 1.0}):
        yield bench


async def test_max_duration_lets_the_bot_finish_then_byes(
    max_duration_bench: Product, events: EventLog
) -> None:
    bench = max_duration_bench
    await _place_silent_call(bench)
    bye, loud = await _bye_after_bot_audio(bench)
    call_id = bench.uac.call_id
    assert header(bye, "Reason") == 'SIP;cause=200;text="max duration"'
    assert events.find("call.state", call_id=call_id, state="ending")
    assert loud >= BOT_FRAMES * 0.9, f"only {loud} of {BOT_FRAMES} bot frames played"
    ended = await events.wait("call.ended", call_id=call_id)
    assert ended["cause"] == "max_duration"
    assert _record(bench, call_id)["hangup"]["cause"] == "max_duration"
    metrics = bench.gateway.prometheus.render()[0].decode()
    assert sample(metrics, "srg_calls_total", route="default", outcome="max_duration") == 1


@pytest.fixture
async def plain_bench(port_block: int, tmp_path: Path) -> AsyncIterator[Product]:
    async for bench in _bench(port_block, tmp_path, {}, {}):
        yield bench


async def test_operator_hangup_is_the_machines_bye_at_once(
    plain_bench: Product, events: EventLog
) -> None:
    """DELETE /calls/{id} on an answered call: the machine ends it now (no drain), Reason
    'operator hangup', one cause (local_bye) in call.ended, the record and the metrics."""
    bench = plain_bench
    await _place_silent_call(bench)
    call_id = bench.uac.call_id
    await events.wait("call.state", call_id=call_id, state="bot_speaking")
    assert GatewayControl(bench.gateway).hangup(call_id) is True
    bye, loud = await _bye_after_bot_audio(bench)
    assert header(bye, "Reason") == 'SIP;cause=200;text="operator hangup"'
    assert loud < BOT_FRAMES * 0.9, "the greeting was played out before the operator's BYE"
    ended = await events.wait("call.ended", call_id=call_id)
    assert ended["cause"] == "local_bye" and ended["hangup_cause"] == "operator hangup"
    assert _record(bench, call_id)["hangup"]["cause"] == "local_bye"
    metrics = bench.gateway.prometheus.render()[0].decode()
    assert sample(metrics, "srg_calls_total", route="default", outcome="local_bye") == 1


async def test_hold_and_resume_are_decided_by_the_machine(
    plain_bench: Product, events: EventLog
) -> None:
    """A re-INVITE to sendonly on a call bridged to a voice session: the machine logs
    call.hold (and keeps the call in its state), the resume call.resumed; the SDP answers are
    the call object's (recvonly, then sendrecv)."""
    bench = plain_bench
    uac = bench.uac
    await _place_silent_call(bench)
    await events.wait("realtime.connected", call_id=uac.call_id)
    held = offer_sdp(bench.rtp_port).replace(b"a=sendrecv", b"a=sendonly")
    uac.send(uac.request("INVITE", held, "application/sdp"))
    reply = await uac.final_response("INVITE")
    assert status_of(reply) == 200 and b"a=recvonly" in body_of(reply)
    uac.ack(reply)
    hold = await events.wait("call.hold", call_id=uac.call_id)
    assert hold["direction"] == "recvonly"
    session = bench.gateway.calls[uac.call_id].session
    assert session is not None and session.ctx.on_hold  # the machine knows
    uac.send(uac.request("INVITE", offer_sdp(bench.rtp_port), "application/sdp"))
    reply = await uac.final_response("INVITE")
    assert status_of(reply) == 200 and b"a=sendrecv" in body_of(reply)
    uac.ack(reply)
    await events.wait("call.resumed", call_id=uac.call_id)
    assert not session.ctx.on_hold
    assert not events.find("call.ended", call_id=uac.call_id)
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")


async def test_a_late_offers_answer_switches_the_session_to_its_law(
    plain_bench: Product, events: EventLog
) -> None:
    """INVITE without SDP: the 200 offers PCMU first, the ACK's answer picks PCMA; the machine
    decides SwitchCodec and the voice session is reconfigured to audio/pcma (no transcoding)."""
    bench = plain_bench
    uac = bench.uac
    final = await uac.invite(b"")
    assert status_of(final) == 200
    answer = offer_sdp(bench.rtp_port, payloads="8 101").replace(b"a=rtpmap:0 PCMU/8000\r\n", b"")
    uac.ack(final, answer)
    session = await bench.simulator.wait_session(1)

    async def formats() -> list[str]:
        while True:
            updates = session.client_events_of("session.update")
            found = [u["session"]["audio"]["input"]["format"]["type"] for u in updates]
            if "audio/pcma" in found:
                return found
            await asyncio.sleep(0.02)  # polling the simulator's record of client events

    found = await asyncio.wait_for(formats(), TIMEOUT)
    assert found[0] == "audio/pcmu" and found[-1] == "audio/pcma"
    live = bench.gateway.calls[uac.call_id]
    assert live.media is not None and live.media.queue is not None
    assert live.media.queue.codec == "PCMA"
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    assert (await events.wait("call.ended", call_id=uac.call_id))["cause"] == "remote_bye"


async def test_ack_timeout_is_the_machines_bye_with_one_cause(
    plain_bench: Product, events: EventLog
) -> None:
    """Timer H (no ACK for our 200): the user agent reports it, the machine decides. One BYE
    with the cause's Reason header, `ack_timeout` in call.ended, the record and the metrics.
    T1 is shortened so that H (64*T1) comes after 3.2 s instead of 32 s."""
    bench = plain_bench
    bench.gateway.ua.timers = TimerConfig(t1=0.05)
    final = await invite(bench.uac, offer_sdp(bench.rtp_port))
    assert status_of(final) == 200  # and no ACK, ever
    bye = await asyncio.wait_for(bench.uac.expect_request("BYE"), 3 * TIMEOUT)
    bench.uac.respond(bye, 200, "OK")
    call_id = bench.uac.call_id
    assert header(bye, "Reason") == 'SIP;cause=200;text="no ACK"'
    ended = await events.wait("call.ended", call_id=call_id)
    assert ended["cause"] == "ack_timeout"
    assert _record(bench, call_id)["hangup"]["cause"] == "ack_timeout"
    metrics = bench.gateway.prometheus.render()[0].decode()
    assert sample(metrics, "srg_calls_total", route="default", outcome="ack_timeout") == 1
    assert sample(metrics, "srg_calls_total", route="default", outcome="other") == 0
