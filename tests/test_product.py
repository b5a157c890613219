"""The product surface against a real in-process Gateway bridged to the in-process simulator:
routes, control API, metrics, call records, stereo recording, drain, originate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.config import (
    CallsConfig,
    ControlConfig,
    GatewayConfig,
    MediaConfig,
    RealtimeConfig,
    RecordsConfig,
    RouteConfig,
    RouteMatchConfig,
    Secret,
    SipConfig,
    ToolConfig,
)
from gateway.media import g711
from gateway.realtime.simulator import Simulator, SimulatorOptions, ToolCallRule
from gateway.serve import Gateway
from tests.test_app import (
    TIMEOUT,
    EventLog,
    Uac,
    _Proto,
    body_of,
    header,
    offer_sdp,
    rtp_packet,
    status_of,
)
from tests.tools.control import TEST_CONTROL_TOKEN
from tests.tools.eventlog import captured_events
from tests.tools.wait import async_wait_until

SALES_INSTRUCTIONS = "You sell phones. Route: sales."


@pytest.fixture
def events() -> Iterator[EventLog]:
    # INFO, not DEBUG: websockets would log every audio frame.
    with captured_events(logging.INFO) as handler:
        yield handler


# -- helpers -------------------------------------------------------------------------------------
async def http(
    url_base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TEST_CONTROL_TOKEN,
) -> tuple[int, bytes]:
    """One HTTP/1.1 request to the control API (no client library needed)."""
    host, port = url_base.removeprefix("http://").rsplit(":", 1)
    payload = b"" if body is None else orjson.dumps(body)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), TIMEOUT)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        raw = await asyncio.wait_for(reader.read(), 35.0)
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def tone(ms: int, hz: float = 600.0, level: float = 0.4) -> bytes:
    t = np.arange(ms * 8) / 8000.0
    pcm = (np.sin(2 * math.pi * hz * t) * level * 32767).astype("<i2")
    return g711.encode("PCMU", pcm.tobytes())


SILENCE_FRAME = b"\xff" * 160


async def send_audio(
    transport: asyncio.DatagramTransport, dest: tuple[str, int], audio: bytes, seq0: int
) -> int:
    """Send `audio` (PCMU) as 20 ms RTP packets, paced on the loop clock; returns next seq.

    The sleep paces what the caller sends (a real phone's 20 ms ptime); it does not wait for
    the gateway."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    seq = seq0
    for i in range(0, len(audio), 160):
        transport.sendto(rtp_packet(0, seq & 0xFFFF, seq * 160, audio[i : i + 160]), dest)
        seq += 1
        delay = start + (i // 160 + 1) * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return seq


def answered_rtp(final: bytes) -> tuple[str, int]:
    port = re.search(rb"^m=audio (\d+) ", body_of(final), re.M)
    host = re.search(rb"^c=IN IP4 (\S+)", body_of(final), re.M)
    assert port and host
    return host.group(1).decode(), int(port.group(1))


async def invite(uac: Uac, sdp: bytes, extra_headers: str = "") -> bytes:
    """uac.invite with extra header lines (e.g. "X-Route: sales\\r\\n")."""
    uac.cseq = 1
    request = uac.request("INVITE", sdp, "application/sdp", cseq=1)
    request = request.replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + extra_headers.encode()
    )
    uac.send(request)
    final = await uac.final_response("INVITE")
    tag = re.search(r"tag=([^;>\s]+)", header(final, "To"))
    uac.to_tag = tag.group(1) if tag else ""
    return final


@dataclasses.dataclass
class Product:
    gateway: Gateway
    simulator: Simulator
    uac: Uac
    rtp: _Proto
    rtp_transport: asyncio.DatagramTransport
    rtp_port: int
    records: Path

    @property
    def api(self) -> str:
        assert self.gateway.control is not None
        return self.gateway.control.url


def product_config(port_block: int, sim_url: str, tmp_path: Path, **changes: Any) -> GatewayConfig:
    sales = RouteConfig(
        name="sales",
        match=RouteMatchConfig(header="X-Route", header_value="sales"),
        realtime={
            "instructions": SALES_INSTRUCTIONS,
            "voice": "cedar",
            "turn_detection": "server_vad",
            "silence_duration_ms": 300,
            "transcription_model": "gpt-4o-mini-transcribe",
        },
        tools=("crm_lookup",),
        recording="on",
    )
    config = GatewayConfig(
        sip=SipConfig(host="127.0.0.1", port=port_block, transports=("udp",)),
        media=MediaConfig(rtp_port_min=port_block + 10, rtp_port_max=port_block + 29),
        calls=CallsConfig(),
        realtime=RealtimeConfig(url=sim_url, simulator="never", instructions="Global default."),
        tools=(
            ToolConfig("crm_lookup", "Look up the caller", "http://127.0.0.1:9/crm"),
            ToolConfig("weather", "Weather", "http://127.0.0.1:9/weather"),
        ),
        routes=(sales,),
        # The API requires a token (issue 9); http() sends this one.
        control=ControlConfig(host="127.0.0.1", port=0, token=Secret(TEST_CONTROL_TOKEN)),
        records=RecordsConfig(dir=str(tmp_path / "records")),
    )
    return dataclasses.replace(config, **changes)


@contextlib.asynccontextmanager
async def running_product(
    port_block: int,
    tmp_path: Path,
    options: SimulatorOptions,
    adjust: Callable[[GatewayConfig], GatewayConfig] | None = None,
) -> AsyncIterator[Product]:
    """The simulator, the Gateway bridged to it (product_config, then `adjust`), and a raw UAC
    with its RTP socket on the next two ports of the block; everything stopped on exit."""
    simulator = Simulator("127.0.0.1", 0, options)
    await simulator.start()
    config = product_config(port_block, simulator.url, tmp_path)
    if adjust is not None:
        config = adjust(config)
    gateway = Gateway(config)
    await asyncio.wait_for(gateway.start(), TIMEOUT)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 1)
    )
    rtp_transport, rtp_proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 2)
    )
    try:
        yield Product(
            gateway,
            simulator,
            Uac(transport, proto, port_block),
            rtp_proto,
            rtp_transport,
            port_block + 2,
            tmp_path / "records",
        )
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)
        await simulator.stop()
        transport.close()
        rtp_transport.close()


@pytest.fixture
async def product(
    port_block: int, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Product]:
    options = getattr(request, "param", None) or SimulatorOptions(
        transcripts=("I want a phone",), reply_text="Sure, here is a phone."
    )
    async with running_product(port_block, tmp_path, options) as running:
        yield running


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if "{" in series:
            metric, _, rest = series.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(",")))
        else:
            metric, got = series, ""
        if metric == name and got == want:
            return float(value)
    return 0.0


async def answer_bye(uac: Uac) -> bytes:
    bye = await uac.expect_request("BYE")
    uac.respond(bye, 200, "OK")
    return bye


# -- tests -----------------------------------------------------------------------------------------
async def test_route_chooses_instructions_and_tools(product: Product, events: EventLog) -> None:
    uac = product.uac
    final = await invite(uac, offer_sdp(product.rtp_port), "X-Route: sales\r\n")
    assert status_of(final) == 200
    uac.ack(final)
    session = await product.simulator.wait_session(1)
    update = session.client_events_of("session.update")[0]["session"]
    assert update["instructions"] == SALES_INSTRUCTIONS
    assert update["audio"]["output"]["voice"] == "cedar"
    assert update["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    tools = {tool["name"] for tool in update["tools"]}
    assert "crm_lookup" in tools and "weather" not in tools
    offered = await events.wait("call.offered", call_id=uac.call_id)
    assert offered["route"] == "sales"
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["route"] == "sales"


async def test_unmatched_call_takes_the_default_route(product: Product, events: EventLog) -> None:
    uac = product.uac
    final = await invite(uac, offer_sdp(product.rtp_port), "X-Route: support\r\n")
    assert status_of(final) == 200
    uac.ack(final)
    session = await product.simulator.wait_session(1)
    update = session.client_events_of("session.update")[0]["session"]
    assert update["instructions"] == "Global default."
    assert {"crm_lookup", "weather"} <= {tool["name"] for tool in update["tools"]}
    assert (await events.wait("call.offered", call_id=uac.call_id))["route"] == "default"
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")


async def test_call_moves_metrics_and_writes_record_and_recording(
    product: Product, events: EventLog
) -> None:
    """A whole conversation: the caller speaks a tone, the bot (the simulator plays the
    caller's utterance back) answers; then the record, the WAV and /metrics are checked."""
    status, body = await http(product.api, "GET", "/metrics")
    assert status == 200
    assert sample(body.decode(), "srg_calls_total", route="sales", outcome="remote_bye") == 0

    uac = product.uac
    final = await invite(uac, offer_sdp(product.rtp_port), "X-Route: sales\r\n")
    assert status_of(final) == 200
    uac.ack(final)
    await events.wait("realtime.connected", call_id=uac.call_id)
    gw_rtp = answered_rtp(final)

    # /calls shows the live call with its route.
    status, body = await http(product.api, "GET", "/calls")
    listed = orjson.loads(body)["calls"]
    assert status == 200 and [c["call_id"] for c in listed] == [uac.call_id]
    assert listed[0]["route"] == "sales" and listed[0]["codec"] == "PCMU"

    # 0.4 s silence, 0.8 s tone (the caller speaks), then silence while the bot answers.
    seq = await send_audio(product.rtp_transport, gw_rtp, SILENCE_FRAME * 20, 1)
    seq = await send_audio(product.rtp_transport, gw_rtp, tone(800), seq)
    loud_bot = 0

    async def listen() -> None:
        nonlocal loud_bot
        while loud_bot < 20:
            packet = await product.rtp.queue.get()
            payload = packet[12:]
            if len(payload) == 160 and payload != SILENCE_FRAME:
                loud_bot += 1

    listening = asyncio.create_task(listen())
    silence_until = asyncio.get_running_loop().time() + TIMEOUT
    while not listening.done() and asyncio.get_running_loop().time() < silence_until:
        seq = await send_audio(product.rtp_transport, gw_rtp, SILENCE_FRAME * 10, seq)
    assert listening.done(), "no bot audio reached the caller"
    seq = await send_audio(product.rtp_transport, gw_rtp, SILENCE_FRAME * 40, seq)

    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "remote_bye"

    # /metrics moved.
    status, body = await http(product.api, "GET", "/metrics")
    text = body.decode()
    assert sample(text, "srg_calls_total", route="sales", outcome="remote_bye") == 1
    assert sample(text, "srg_calls_active", route="sales") == 0
    assert sample(text, "srg_rtp_packets_total", direction="in") > 50
    assert sample(text, "srg_rtp_packets_total", direction="out") > 50
    assert sample(text, "srg_call_setup_seconds_count") == 1
    assert sample(text, "srg_realtime_connect_seconds_count") == 1
    assert sample(text, "srg_response_latency_seconds_count") >= 1
    assert sample(text, "srg_pacer_lateness_seconds_count") > 0
    assert sample(text, "srg_realtime_tokens_total", kind="output_audio") > 0
    assert sample(text, "srg_sip_requests_total", direction="in", method="INVITE") == 1
    assert sample(text, "srg_sip_requests_total", direction="in", method="BYE") == 1
    assert sample(text, "srg_sip_responses_total", direction="out", status_class="2xx") >= 2
    assert sample(text, "srg_sip_responses_total", direction="out", status_class="1xx") >= 1

    # The call record.
    files = list(product.records.glob("*.json"))
    assert len(files) == 1
    record = orjson.loads(files[0].read_bytes())
    assert record["call_id"] == uac.call_id and record["route"] == "sales"
    assert "uac@127.0.0.1" in record["caller"] and "gw@127.0.0.1" in record["callee"]
    assert record["sip"]["remote_tag"] == uac.from_tag
    assert record["codec"] == "PCMU" and record["answered"] is True
    assert record["hangup"]["cause"] == "remote_bye"
    states = [entry["state"] for entry in record["timeline"]]
    assert states[:3] == ["offered", "connecting", "answering"] and "bot_speaking" in states
    spoken = [(t["speaker"], t["text"]) for t in record["transcript"]]
    assert ("caller", "I want a phone") in spoken
    assert ("bot", "Sure, here is a phone.") in spoken
    assert all(t["t_ms"] > 0 and t["ts"].endswith("Z") for t in record["transcript"])
    assert record["rtp"]["packets_received"] > 50
    assert record["usage"]["output_audio"] > 0
    wav_path = Path(record["hangup"]["recording"])

    # The stereo WAV: caller left, bot right, on one clock.
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert abs(len(frames) / 8000 - record["duration_s"]) < 1.0
    windows = len(frames) // 800  # 100 ms
    rms = np.sqrt(
        (frames[: windows * 800].astype(np.float64) ** 2).reshape(windows, 800, 2).mean(axis=1)
    )
    caller_loud = np.flatnonzero(rms[:, 0] > 1000)
    bot_loud = np.flatnonzero(rms[:, 1] > 1000)
    assert 6 <= len(caller_loud) <= 10, caller_loud  # the 0.8 s tone
    assert caller_loud[0] >= 3  # after the 0.4 s of silence
    assert len(bot_loud) >= 4
    # The bot answers after the caller stopped; the caller is silent while the bot speaks.
    assert bot_loud[0] > caller_loud[-1]
    assert rms[bot_loud, 0].max() < 100


async def wait_bot_audio(product: Product, frames: int, gw_rtp: tuple[str, int], seq: int) -> int:
    """Keep sending caller silence until `frames` non-silent bot frames arrived."""
    loud = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while loud < frames and loop.time() < deadline:
        seq = await send_audio(product.rtp_transport, gw_rtp, SILENCE_FRAME * 5, seq)
        while not product.rtp.queue.empty():
            payload = product.rtp.queue.get_nowait()[12:]
            if len(payload) == 160 and payload != SILENCE_FRAME:
                loud += 1
    assert loud >= frames, "no bot audio reached the caller"
    return seq


@pytest.mark.parametrize(
    "product",
    [
        SimulatorOptions(
            transcripts=("look me up", "stop talking"),
            tool_calls=(ToolCallRule(name="crm_lookup", arguments={"who": "caller"}, on_turn=1),),
            reply_audio=tone(4000, hz=400),
            reply_text="Here is a long answer.",
        )
    ],
    indirect=True,
)
async def test_record_has_tool_calls_barge_ins_and_dtmf(product: Product, events: EventLog) -> None:
    uac = product.uac
    final = await invite(uac, offer_sdp(product.rtp_port), "X-Route: sales\r\n")
    assert status_of(final) == 200
    uac.ack(final)
    await events.wait("realtime.connected", call_id=uac.call_id)
    gw_rtp = answered_rtp(final)
    seq = await send_audio(product.rtp_transport, gw_rtp, SILENCE_FRAME * 10 + tone(600), 1)
    # Turn 1: the model calls crm_lookup (its URL refuses: an error output goes back to the
    # model), then speaks 4 s. The caller talks over it: a barge-in.
    seq = await wait_bot_audio(product, 25, gw_rtp, seq)
    seq = await send_audio(product.rtp_transport, gw_rtp, tone(600), seq)
    truncate = await events.wait("call.truncate", call_id=uac.call_id)
    assert truncate["audio_end_ms"] > 0
    uac.send(uac.request("INFO", b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay"))
    assert status_of(await uac.final_response("INFO")) == 200
    await send_audio(product.rtp_transport, gw_rtp, SILENCE_FRAME * 10, seq)
    uac.send(uac.request("BYE"))
    await uac.final_response("BYE")
    await events.wait("call.ended", call_id=uac.call_id)

    record = orjson.loads(next(product.records.glob("*.json")).read_bytes())
    tool = record["tool_calls"][0]
    assert tool["name"] == "crm_lookup" and tool["arguments"] == {"who": "caller"}
    assert tool["result"] == "error" and "false" in tool["output"]
    barge = record["barge_ins"][0]
    assert barge["action"] == "truncate" and barge["audio_end_ms"] == truncate["audio_end_ms"]
    assert record["dtmf"][0]["digit"] == "5" and record["dtmf"][0]["source"] == "info"
    assert record["dtmf"][0]["t_ms"] > barge["t_ms"]

    _, body = await http(product.api, "GET", "/metrics")
    text = body.decode()
    assert sample(text, "srg_tool_calls_total", tool="crm_lookup", result="error") == 1
    assert sample(text, "srg_barge_ins_total", action="truncate") == 1
    assert sample(text, "srg_dtmf_digits_total", source="info") == 1


async def test_control_say_and_hangup(product: Product, events: EventLog) -> None:
    uac = product.uac
    final = await invite(uac, offer_sdp(product.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    await events.wait("realtime.connected", call_id=uac.call_id)
    session = await product.simulator.wait_session(1)
    quoted = uac.call_id.replace("@", "%40")

    status, _ = await http(
        product.api, "POST", f"/calls/{quoted}/say", {"text": "Tell the caller the taxi is here."}
    )
    assert status == 202
    await async_wait_until(
        lambda: (
            session.client_events_of("conversation.item.create")
            and session.client_events_of("response.create")
        ),
        5,
        "conversation.item.create and response.create after say",
    )
    item = session.client_events_of("conversation.item.create")[-1]["item"]
    assert item["role"] == "system"
    assert item["content"][0]["text"] == "Tell the caller the taxi is here."

    status, _ = await http(product.api, "POST", "/calls/nope/say", {"text": "x"})
    assert status == 404

    answering = asyncio.create_task(answer_bye(uac))
    status, _ = await http(product.api, "DELETE", f"/calls/{quoted}")
    assert status == 204
    bye = await asyncio.wait_for(answering, TIMEOUT)
    assert "operator hangup" in header(bye, "Reason")
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "local_bye"
    status, body = await http(product.api, "GET", "/calls")
    assert orjson.loads(body)["calls"] == []


async def test_drain_lets_the_call_finish_and_refuses_new_ones(
    product: Product, events: EventLog, port_block: int
) -> None:
    uac = product.uac
    final = await invite(uac, offer_sdp(product.rtp_port))
    assert status_of(final) == 200
    uac.ack(final)
    status, _ = await http(product.api, "GET", "/readyz")
    assert status == 200

    stopping = asyncio.create_task(product.gateway.stop(drain_timeout=30.0))
    await events.wait("gateway.draining")
    status, body = await http(product.api, "GET", "/readyz")
    assert status == 503 and b"draining" in body
    status, _ = await http(product.api, "GET", "/healthz")
    assert status == 200  # alive while draining: liveness probes must not kill it

    # A new call during the drain: 503.
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 3)
    )
    try:
        second = Uac(transport, proto, port_block)
        refused = await second.invite(offer_sdp(port_block + 4))
        assert status_of(refused) == 503
        second.ack(refused)
    finally:
        transport.close()

    # The live call is not cut: still listed while stop() waits (the 503 above was sent after
    # the drain began), the caller hangs up when done, and stop() then completes.
    status, body = await http(product.api, "GET", "/calls")
    assert [c["call_id"] for c in orjson.loads(body)["calls"]] == [uac.call_id]
    assert not stopping.done()
    uac.send(uac.request("BYE"))
    assert status_of(await uac.final_response("BYE")) == 200
    await asyncio.wait_for(stopping, TIMEOUT)
    ended = await events.wait("call.ended", call_id=uac.call_id)
    assert ended["cause"] == "remote_bye"
    assert not events.find("call.hangup", call_id=uac.call_id)  # no BYE from us


class Uas(asyncio.DatagramProtocol):
    """Answers one INVITE with 200 + PCMA SDP, then answers BYE; records what it got."""

    def __init__(self, rtp_port: int) -> None:
        self.rtp_port = rtp_port
        self.transport: asyncio.DatagramTransport | None = None
        self.requests: list[bytes] = []
        self.got_ack = asyncio.Event()
        self.got_bye = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.requests.append(data)
        method = data.split(b" ", 1)[0]
        if method in (b"INVITE", b"BYE"):
            lines = ["SIP/2.0 200 OK"]
            for name in ("Via", "From", "Call-ID", "CSeq"):
                lines.append(f"{name}: {header(data, name)}")
            to = header(data, "To")
            lines.append(f"To: {to}" if "tag=" in to else f"To: {to};tag=uas1")
            body = b""
            if method == b"INVITE":
                lines.append(
                    f"Contact: <sip:uas@127.0.0.1:{self.transport.get_extra_info('sockname')[1]}>"
                )
                body = (
                    "v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    f"m=audio {self.rtp_port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
                    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
                ).encode()
                lines.append("Content-Type: application/sdp")
            else:
                self.got_bye.set()
            lines.append(f"Content-Length: {len(body)}")
            self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body, addr)
        elif method == b"ACK":
            self.got_ack.set()


async def test_originate_bridges_the_callee_to_a_session(
    product: Product, events: EventLog, port_block: int
) -> None:
    loop = asyncio.get_running_loop()
    uas = Uas(port_block + 5)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: uas, local_addr=("127.0.0.1", port_block + 4)
    )
    rtp_transport, rtp = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 5)
    )
    try:
        status, body = await http(
            product.api,
            "POST",
            "/calls",
            {"to": f"sip:alice@127.0.0.1:{port_block + 4}", "instructions": "Remind Alice."},
        )
        assert status == 202, body
        call_id = orjson.loads(body)["call_id"]
        await asyncio.wait_for(uas.got_ack.wait(), TIMEOUT)
        invite_sent = uas.requests[0]
        assert b"m=audio" in body_of(invite_sent)  # we offered
        session = await product.simulator.wait_session(1)
        await events.wait("realtime.connected", call_id=call_id)
        update = session.client_events_of("session.update")[0]["session"]
        assert update["instructions"] == "Remind Alice."
        # The callee answered PCMA: the session runs on it, untranscoded.
        assert update["audio"]["input"]["format"]["type"] == "audio/pcma"
        packet = await asyncio.wait_for(rtp.queue.get(), TIMEOUT)
        assert packet[1] & 0x7F == 8  # RTP flows to the callee in PCMA
        status, body = await http(product.api, "GET", "/calls")
        listed = orjson.loads(body)["calls"]
        assert listed[0]["direction"] == "outbound" and listed[0]["state"] == "listening"

        status, _ = await http(product.api, "DELETE", f"/calls/{call_id.replace('@', '%40')}")
        assert status == 204
        await asyncio.wait_for(uas.got_bye.wait(), TIMEOUT)
        ended = await events.wait("call.ended", call_id=call_id)
        assert ended["cause"] == "local_bye" and ended["route"] == "outbound"
    finally:
        transport.close()
        rtp_transport.close()


async def test_originate_errors_are_clear(product: Product) -> None:
    status, body = await http(
        product.api, "POST", "/calls", {"to": "+15551234", "instructions": "x"}
    )
    assert status == 422 and b"registration" in body
    status, body = await http(
        product.api,
        "POST",
        "/calls",
        {"to": "sip:a@127.0.0.1:5", "instructions": "x", "registration": "nope"},
    )
    assert status == 422 and b"nope" in body


class HookServer:
    """A tiny HTTP server that records JSON POST bodies (the webhook receiver)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        self.bodies.append(orjson.loads(body))
        self.changed.set()
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def wait(self, count: int) -> None:
        async def poll() -> None:
            while len(self.bodies) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(poll(), TIMEOUT)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_webhooks_post_started_and_ended_with_the_record(
    port_block: int, tmp_path: Path, events: EventLog
) -> None:
    from gateway.config import WebhooksConfig

    hooks = HookServer()
    url = await hooks.start()
    simulator = Simulator("127.0.0.1", 0)
    await simulator.start()
    config = product_config(
        port_block,
        simulator.url,
        tmp_path,
        webhooks=WebhooksConfig(
            call_started_url=url + "/started",
            # Nothing listens on port 9 (discard): the failure must be logged, not felt.
            call_ended_url="http://127.0.0.1:9/ended",
            timeout_s=2.0,
        ),
        records=RecordsConfig(),
    )
    gateway = Gateway(config)
    await asyncio.wait_for(gateway.start(), TIMEOUT)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=("127.0.0.1", port_block + 1)
    )
    try:
        uac = Uac(transport, proto, port_block)
        final = await invite(uac, offer_sdp(port_block + 2), "X-Route: sales\r\n")
        assert status_of(final) == 200
        uac.ack(final)
        await hooks.wait(1)
        started = hooks.bodies[0]
        assert started["event"] == "call_started" and started["call_id"] == uac.call_id
        assert started["route"] == "sales" and started["direction"] == "inbound"
        uac.send(uac.request("BYE"))
        await uac.final_response("BYE")
        failed = await events.wait("webhook.failed", call_id=uac.call_id)
        assert failed["url"] == "http://127.0.0.1:9/ended"
        assert (await events.wait("call.ended", call_id=uac.call_id))["cause"] == "remote_bye"

        # Now a working call_ended hook: it carries the whole record.
        gateway.webhooks.config = dataclasses.replace(
            gateway.webhooks.config, call_ended_url=url + "/ended"
        )
        uac2 = Uac(transport, proto, port_block)
        final = await invite(uac2, offer_sdp(port_block + 2))
        uac2.ack(final)
        uac2.send(uac2.request("BYE"))
        await uac2.final_response("BYE")
        await hooks.wait(3)
        ended = next(b for b in hooks.bodies if b["event"] == "call_ended")
        assert ended["call_id"] == uac2.call_id and ended["cause"] == "remote_bye"
        assert ended["record"]["call_id"] == uac2.call_id
        assert ended["record"]["route"] == "default"
        assert ended["record"]["timeline"][0]["state"] == "offered"
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)
        await simulator.stop()
        transport.close()
        hooks.close()


async def test_readyz_names_an_unregistered_registration(port_block: int, tmp_path: Path) -> None:
    from gateway.config import RegistrationConfig

    config = product_config(
        port_block,
        "ws://127.0.0.1:9/v1/realtime",
        tmp_path,
        # Nobody answers REGISTER here: the registration stays unconfirmed.
        registrations=(
            RegistrationConfig(
                registrar=f"sip:127.0.0.1:{port_block + 6}", username="u1", name="pbx", expires=60
            ),
        ),
    )
    gateway = Gateway(config)
    await asyncio.wait_for(gateway.start(), TIMEOUT)
    try:
        assert gateway.control is not None
        status, body = await http(gateway.control.url, "GET", "/readyz")
        assert status == 503
        assert "registration pbx" in orjson.loads(body)["reason"]
        status, body = await http(gateway.control.url, "GET", "/metrics")
        assert sample(body.decode(), "srg_registration_up", registration="pbx") == 0
        status, _ = await http(gateway.control.url, "GET", "/healthz")
        assert status == 200
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0), TIMEOUT)


async def test_garbage_on_the_sip_port_is_counted_at_scrape_time(product: Product) -> None:
    """Datagrams that are not SIP are dropped and counted, all at once when /metrics is read."""
    for payload in (b"\x00\x01garbage", b"GET / HTTP/1.1\r\n\r\n", b"not sip at all"):
        product.uac.transport.sendto(payload, product.uac.gw)

    async def parse_errors() -> float:
        _, body = await http(product.api, "GET", "/metrics")
        return sample(body.decode(), "srg_sip_parse_errors_total")

    async def three_counted() -> bool:
        return await parse_errors() >= 3

    await async_wait_until(three_counted, 5, "3 parse errors counted", interval=0.05)
    assert await parse_errors() == 3
    _, body = await http(product.api, "GET", "/metrics")  # nothing counted twice
    assert sample(body.decode(), "srg_sip_parse_errors_total") == 3
