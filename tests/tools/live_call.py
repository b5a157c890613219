"""One CallSession with the GPT-Live backend against the in-test Live server
(tests/tools/fake_live.py), answered and with audio time running: the shared start of the
`live_call` fixtures of tests/live/test_session_live.py and tests/security/test_live_session.py
(each keeps its own teardown checks), and the G.711 test audio they feed it."""

from __future__ import annotations

import math
import struct
from typing import Any

from gateway.call import machine as m
from gateway.call.session import CallSession, SessionSettings
from gateway.live import protocol as lp
from gateway.live.backend import LiveBackend
from gateway.media import g711
from gateway.media.jitter import Frame
from gateway.media.playout import PlayoutQueue
from gateway.wsock import Endpoint
from tests.tools.wait import async_wait_until


def tone(ms: int, law: str = "PCMU") -> bytes:
    """`ms` of a 440 Hz tone in G.711 `law`."""
    pcm = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(ms * 8)
    )
    return g711.encode(law, pcm)


def silence(ms: int) -> bytes:
    """`ms` of PCMU silence."""
    return b"\xff" * (ms * 8)


def live_session(
    server_url: str,
    call_id: str,
    control: Any,
    queue: PlayoutQueue,
    tools: tuple[lp.LiveFunctionTool, ...],
    policy: dict[str, Any],
    **settings_options: Any,
) -> CallSession:
    """A CallSession, not started, for the Live server at `server_url` (continuous output
    unless `policy` says otherwise; `settings_options` go to SessionSettings)."""
    policy.setdefault("continuous_output", True)
    settings = SessionSettings(
        Endpoint(server_url),
        lp.LiveSessionConfig(tools=tools, instructions="Be brief."),
        m.CallPolicy(**policy),
        input_burst_s=3600.0,
        backend=LiveBackend(),
        **settings_options,
    )
    return CallSession(call_id, settings, control, queue)


async def begin_live_call(session: CallSession, control: Any, answer: bool = True) -> None:
    """Start `session`; with `answer`, once the call is answered or rejected: the ACK, then
    20 ms of caller silence so that audio time starts and appends flow."""
    session.start()
    if answer:
        await async_wait_until(
            lambda: "answer" in control.names() or "reject" in control.names(),
            5.0,
            "the call answered or rejected",
        )
        if "answer" in control.names():
            session.on_ack()
            session.on_audio([Frame(silence(20), 0)])
