"""An ended call is freed by reference counting alone (issue 14): when a call ends, its teardown
breaks the reference cycles between its objects (the media leg's callbacks into the call and
its session, the session's `control`, the WebSocket link's callbacks into the voice client, the
UA's call and its INVITE transaction), so the whole call goes the moment the gateway drops it,
with the cyclic collector switched off.

Each test runs a real call through the in-process Gateway and simulator with `gc.disable()`,
holds only weak references to the call's objects, ends the call and waits for them to die
without any `gc.collect()`. On failure the message names what still holds each one."""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import re
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.config import (
    CallsConfig,
    ControlConfig,
    DigitActionConfig,
    GatewayConfig,
    MediaConfig,
    RealtimeConfig,
    Secret,
    SipConfig,
    TransferTargetConfig,
)
from gateway.realtime.simulator import Simulator, SimulatorOptions
from gateway.serve import Gateway
from sip.calls import CallState
from sip.timers import TimerConfig
from tests.test_app import TIMEOUT, EventLog, Uac, _Proto, header, offer_sdp, status_of
from tests.test_product import Uas, http, running_product
from tests.tools.eventlog import captured_events
from tests.tools.refcount import RefcountOnly, collector_off, holders, loop_policy
from tests.tools.wait import async_wait_until


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Both loops: `run` uses uvloop (gateway/cli.py), whose transports are not asyncio's."""
    return loop_policy(request.param)


@pytest.fixture
def events() -> Iterator[EventLog]:
    with captured_events(logging.INFO) as handler:
        yield handler


@pytest.fixture
def no_cyclic_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefcountOnly]:
    yield from collector_off(monkeypatch)


class CallRefs:
    """Weak references to one call's objects, taken while it is live."""

    def __init__(self, gateway: Gateway, call_id: str) -> None:
        self.gateway = gateway
        call = gateway.calls[call_id]
        self.refs: dict[str, weakref.ref[Any]] = {"LiveCall": weakref.ref(call)}
        if call.session is not None:
            self.refs["CallSession"] = weakref.ref(call.session)
            client = call.session._client
            if client is not None:
                self.refs[type(client).__name__] = weakref.ref(client)
        if call.media is not None:
            self.refs["MediaLeg"] = weakref.ref(call.media)
            self.refs["RtpStream"] = weakref.ref(call.media.stream)
        # The UA's side of the call: gone once its transactions end (Timer L/H, shortened).
        self.refs[type(call.sip).__name__] = weakref.ref(call.sip)
        del call

    def drop_ended_call_deadlines(self) -> None:
        """The UA keeps ended calls' deadlines (an answer deadline, a session clock) in its
        heap until they pass or the heap outgrows 2 x calls + 64 (sip/ua_core.py): a bounded
        hold, not a cycle. Pruned here as the UA prunes, so only a cycle could keep the call."""
        ua = self.gateway.ua
        assert ua is not None
        ua._call_deadlines = [
            entry for entry in ua._call_deadlines if entry[2].state != CallState.TERMINATED
        ]
        heapq.heapify(ua._call_deadlines)

    def alive(self) -> list[str]:
        return [name for name, ref in self.refs.items() if ref() is not None]

    def report(self) -> str:
        parts = []
        for name, ref in self.refs.items():
            obj = ref()
            if obj is not None:
                parts.append(f"{name} still held by:\n{holders(obj)}")
            del obj
        return "\n".join(parts)


async def wait_freed(refs: CallRefs, refcount: RefcountOnly, tcp_self_cycles: int = 0) -> None:
    """The call's objects die by refcount once the gateway's clean-up tasks are done (the
    collector is off), and the call left nothing for the collector either."""
    try:
        await async_wait_until(
            lambda: refs.drop_ended_call_deadlines() or not refs.alive(),
            TIMEOUT,
            "the call's objects freed",
        )
    except AssertionError:
        pytest.fail(f"freed only by the cyclic collector: {refs.alive()}\n{refs.report()}")
    assert not gc.isenabled()
    assert refcount.collections == [], "freed without any gc.collect()"
    garbage = refcount.cyclic_garbage(tcp_self_cycles=tcp_self_cycles)
    assert not garbage, f"the call left reference cycles: {Counter(garbage).most_common()}"


def voice_config(api: str, sim: Simulator) -> RealtimeConfig:
    if api == "live":
        return RealtimeConfig(
            api="live", url=sim.live_url, simulator="never", api_key=Secret("sk-test")
        )
    return RealtimeConfig(url=sim.url, simulator="never")


async def start(port_block: int, realtime: RealtimeConfig, **calls: Any) -> Gateway:
    config = GatewayConfig(
        sip=SipConfig(host="127.0.0.1", port=port_block, transports=("udp",)),
        media=MediaConfig(rtp_port_min=port_block + 10, rtp_port_max=port_block + 29),
        calls=CallsConfig(**calls),
        realtime=realtime,
        control=ControlConfig(enabled=False),
    )
    gateway = Gateway(config)
    await asyncio.wait_for(gateway.start(), TIMEOUT)
    short_sip_timers(gateway)
    return gateway


def short_sip_timers(gateway: Gateway) -> None:
    """T1 = 10 ms: the UA forgets a call's transactions 0.64 s (64 x T1) after its end."""
    assert gateway.ua is not None
    gateway.ua.timers = TimerConfig(t1=0.01)


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator("127.0.0.1", 0, SimulatorOptions(transcripts=("hello",), reply_text="Hi."))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def uac(port_block: int) -> AsyncIterator[Uac]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 1)
    )
    rtp_transport, _ = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 2)
    )
    try:
        yield Uac(transport, proto, port_block)
    finally:
        transport.close()
        rtp_transport.close()


async def settle(gateway: Gateway) -> None:
    await async_wait_until(lambda: not gateway._owned_tasks, TIMEOUT, "clean-ups done")


@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_a_call_ended_by_bye_is_freed_by_refcount(
    port_block: int,
    simulator: Simulator,
    uac: Uac,
    events: EventLog,
    no_cyclic_gc: RefcountOnly,
    api: str,
    event_loop_policy: asyncio.AbstractEventLoopPolicy,
) -> None:
    loop = "uvloop" if "uvloop" in type(event_loop_policy).__module__ else "asyncio"
    gateway = await start(port_block, voice_config(api, simulator))
    try:
        no_cyclic_gc.mark()
        final = await uac.invite(offer_sdp(port_block + 2))
        assert status_of(final) == 200
        uac.ack(final)
        await events.wait("call.answered", call_id=uac.call_id)
        refs = CallRefs(gateway, uac.call_id)
        loop_module = type(asyncio.get_running_loop()).__module__
        assert loop_module.startswith("uvloop") == (loop == "uvloop"), loop_module
        assert {"LiveCall", "CallSession", "MediaLeg", "RtpStream"} <= set(refs.refs)
        assert len(refs.refs) == 6, "the voice client is live"
        uac.send(uac.request("BYE"))
        assert status_of(await uac.final_response("BYE")) == 200
        await events.wait("call.ended", call_id=uac.call_id)
        await settle(gateway)
        await wait_freed(refs, no_cyclic_gc)
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)


@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_a_call_whose_voice_session_fails_is_freed_by_refcount(
    port_block: int, uac: Uac, events: EventLog, no_cyclic_gc: RefcountOnly, api: str
) -> None:
    """No voice service at the URL: the setup fails, the caller gets 503, and nothing of the
    call stays behind."""
    dead = f"ws://127.0.0.1:{port_block + 5}/v1/" + ("live/sessions" if api == "live" else "x")
    realtime = RealtimeConfig(url=dead, simulator="never", api=api)
    gateway = await start(port_block, realtime)
    try:
        no_cyclic_gc.mark()
        uac.send(uac.request("INVITE", offer_sdp(port_block + 2), "application/sdp", cseq=1))
        await events.wait("call.offered", call_id=uac.call_id)
        refs = CallRefs(gateway, uac.call_id)
        final = await uac.final_response("INVITE")
        assert status_of(final) == 503
        uac.ack(final)
        await events.wait("call.ended", call_id=uac.call_id)
        await settle(gateway)
        await wait_freed(refs, no_cyclic_gc)
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)


async def test_a_call_cancelled_while_ringing_is_freed_by_refcount(
    port_block: int, simulator: Simulator, uac: Uac, events: EventLog, no_cyclic_gc: RefcountOnly
) -> None:
    gateway = await start(port_block, voice_config("realtime", simulator), answer_delay_ms=3000)
    try:
        no_cyclic_gc.mark()
        invite = uac.request("INVITE", offer_sdp(port_block + 2), "application/sdp", cseq=1)
        uac.send(invite)
        while status_of(await uac.recv()) != 180:
            pass
        await async_wait_until(
            lambda: (
                (call := gateway.calls.get(uac.call_id)) is not None
                and call.session is not None
                and call.session._client is not None
            ),
            TIMEOUT,
            "the voice session is up while the phone rings",
        )
        refs = CallRefs(gateway, uac.call_id)
        assert len(refs.refs) == 6
        cancel = re.sub(rb"^INVITE ", b"CANCEL ", invite.split(b"\r\n\r\n")[0], flags=re.M)
        cancel = re.sub(rb"CSeq: 1 INVITE", b"CSeq: 1 CANCEL", cancel)
        cancel = re.sub(rb"Content-Type: [^\r]*\r\n", b"", cancel)
        cancel = re.sub(rb"Content-Length: \d+", b"Content-Length: 0", cancel) + b"\r\n\r\n"
        uac.send(cancel)
        statuses: set[int | None] = set()
        while 487 not in statuses:
            message = await uac.recv()
            statuses.add(status_of(message))
            if status_of(message) == 487:
                uac.ack(message)
        ended = await events.wait("call.ended", call_id=uac.call_id)
        assert ended["cause"] == "cancelled"
        await settle(gateway)
        await wait_freed(refs, no_cyclic_gc)
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)


async def test_an_outbound_call_hung_up_by_the_operator_is_freed_by_refcount(
    port_block: int, tmp_path: Path, events: EventLog, no_cyclic_gc: RefcountOnly
) -> None:
    """Originated through the control API (with the call record the product writes), hung
    up with DELETE /calls/{id}."""
    options = SimulatorOptions(transcripts=("hello",), reply_text="Hi.")
    async with running_product(port_block, tmp_path, options) as product:
        short_sip_timers(product.gateway)
        loop = asyncio.get_running_loop()
        uas = Uas(port_block + 5)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: uas, local_addr=("127.0.0.1", port_block + 4)
        )
        rtp_transport, _ = await loop.create_datagram_endpoint(
            _Proto, local_addr=("127.0.0.1", port_block + 5)
        )
        try:
            no_cyclic_gc.mark()
            status, body = await http(
                product.api,
                "POST",
                "/calls",
                {"to": f"sip:alice@127.0.0.1:{port_block + 4}", "instructions": "Remind Alice."},
            )
            assert status == 202, body
            call_id = orjson.loads(body)["call_id"]
            await asyncio.wait_for(uas.got_ack.wait(), TIMEOUT)
            await events.wait("realtime.connected", call_id=call_id)
            refs = CallRefs(product.gateway, call_id)
            assert len(refs.refs) == 6
            path = f"/calls/{call_id.replace('@', '%40')}"
            status, _ = await http(product.api, "DELETE", path)
            assert status == 204
            await asyncio.wait_for(uas.got_bye.wait(), TIMEOUT)
            ended = await events.wait("call.ended", call_id=call_id)
            assert ended["cause"] == "local_bye"
            await settle(product.gateway)
            # Two control API requests: each one's client and server transports.
            await wait_freed(refs, no_cyclic_gc, tcp_self_cycles=4)
        finally:
            transport.close()
            rtp_transport.close()


@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_a_call_transferred_by_refer_is_freed_by_refcount(
    port_block: int,
    simulator: Simulator,
    uac: Uac,
    events: EventLog,
    no_cyclic_gc: RefcountOnly,
    api: str,
) -> None:
    """A digit action transfers the caller (REFER, 202, NOTIFY 200, then our BYE)."""
    calls: dict[str, Any] = {
        "transfer_targets": (TransferTargetConfig("operator", "sip:op@127.0.0.1:9"),),
        "digit_actions": (DigitActionConfig("9", "transfer", "operator"),),
    }
    gateway = await start(port_block, voice_config(api, simulator), **calls)
    try:
        no_cyclic_gc.mark()
        final = await uac.invite(offer_sdp(port_block + 2))
        assert status_of(final) == 200
        uac.ack(final)
        await events.wait("realtime.connected", call_id=uac.call_id)
        refs = CallRefs(gateway, uac.call_id)
        assert len(refs.refs) == 6
        uac.send(uac.request("INFO", b"Signal=9\r\nDuration=160\r\n", "application/dtmf-relay"))
        refer = await uac.expect_request("REFER")
        assert "sip:op@127.0.0.1:9" in header(refer, "Refer-To")
        uac.respond(refer, 202, "Accepted")
        notify = uac.request("NOTIFY", b"SIP/2.0 200 OK\r\n", "message/sipfrag;version=2.0")
        notify = notify.replace(
            b"Max-Forwards: 70\r\n",
            b"Max-Forwards: 70\r\nEvent: refer\r\nSubscription-State: terminated;reason=noresource\r\n",
        )
        uac.send(notify)
        bye = await uac.expect_request("BYE")
        uac.respond(bye, 200, "OK")
        ended = await events.wait("call.ended", call_id=uac.call_id)
        assert ended["cause"] == "transferred", ended
        await settle(gateway)
        await wait_freed(refs, no_cyclic_gc)
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)
