"""The order of a call's teardown: once SIP is over, its media goes at once; the voice session's
close (GPT-Live drains the service's output first: seconds) comes after and does not hold the
RTP ports, sockets or clock slot. The call is still counted until that close ends."""

from __future__ import annotations

import asyncio

import pytest

from gateway.call.session import CallSession
from gateway.realtime.simulator import Simulator
from tests.test_app import TIMEOUT, EventLog, Uac, offer_sdp, status_of
from tests.test_call_freed import (  # noqa: F401 (fixtures)
    events,
    simulator,
    start,
    uac,
    voice_config,
)
from tests.tools.wait import async_wait_until


@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_media_is_released_while_the_voice_session_still_closes(
    port_block: int,
    simulator: Simulator,  # noqa: F811
    uac: Uac,  # noqa: F811
    events: EventLog,  # noqa: F811
    api: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = await start(port_block, voice_config(api, simulator))
    release = asyncio.Event()
    closing: list[bool] = []
    real_close = CallSession.close

    async def slow_close(self: CallSession) -> None:
        # A voice service that takes its time draining (GPT-Live: up to ~10 s).
        closing.append(True)
        await release.wait()
        await real_close(self)

    monkeypatch.setattr(CallSession, "close", slow_close)
    try:
        final = await uac.invite(offer_sdp(port_block + 2))
        assert status_of(final) == 200
        uac.ack(final)
        await events.wait("call.answered", call_id=uac.call_id)
        call = gateway.calls[uac.call_id]
        assert call.media is not None
        stream = call.media.stream
        assert gateway.ports.in_use == 1 and not stream.closed  # one pair
        uac.send(uac.request("BYE"))
        assert status_of(await uac.final_response("BYE")) == 200
        await async_wait_until(lambda: closing, TIMEOUT, "the voice session's close began")
        # The close is still under way: the RTP pair is back (quarantined), the sockets shut.
        assert stream.closed
        assert gateway.ports.in_use == 0
        assert not events.find("call.ended", call_id=uac.call_id)
        assert uac.call_id in gateway.calls, "counted until its voice session is closed"
        release.set()
        await events.wait("call.ended", call_id=uac.call_id)
        assert uac.call_id not in gateway.calls
    finally:
        release.set()
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)
