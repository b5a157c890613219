"""End to end in GPT-Live mode (`[realtime] api = "live"`), audio: the caller's utterance comes
back from the simulator byte for byte on the wire, with SIPp (each G.711 law) and with baresip.

Evidence: the tshark capture (what went on the wire) and the simulator's recorded events (the
utterance it heard and the output track it sent). GPT-Live sends one continuous track, silence
included, so the echo is found verbatim inside the gateway's outbound RTP payloads.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tools.baresip import Baresip
from tests.tools.caller_audio import (
    PAYLOAD_TYPE,
    Utterances,
    silence_ms,
    ulaw_to_alaw,
    write_caller_pcap,
)
from tests.tools.capture import Capture
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.live_gateway import LiveSimulatorThread, client_types, output_audio
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.sipp import Sipp, codec_play_call
from tests.tools.wire import gateway_rtp, is_silent, level_dbfs, locate, one_paced_gateway_stream

pytestmark = pytest.mark.interop

# What a failure here has been (on a loaded machine, before the playout had its 40 ms start
# margin): a delta that comes late leaves an idle frame inside the speech, and the late delta
# with the next one overflows the shallow bound and is trimmed.
_PLAYOUT_JITTER = (
    " (call.ended playout_trimmed_bytes={}: a delta that came late shows as an idle frame "
    "inside the echo, two that came together as trimmed bytes)"
)


def _needs_raw_socket() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("SIPp play_pcap_audio needs a raw socket (root or CAP_NET_RAW)")


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_live_caller_hears_its_utterance_back_byte_for_byte(
    codec: str,
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The caller offers one law, so the GPT-Live session runs in it (audio/pcmu or audio/pcma,
    8000 Hz): the simulator echoes the utterance it heard and those bytes reach the wire."""
    _needs_raw_socket()
    sim = live_sim_factory()
    gw = live_gateway(sim)
    pcap = tmp_path / "caller.pcap"
    speech = utterances.hello if codec == "PCMU" else ulaw_to_alaw(utterances.hello)
    play_ms = write_caller_pcap(
        pcap, silence_ms(600, codec) + speech + silence_ms(1500, codec), codec=codec
    )
    # The echo starts after 500 ms of silence ends the utterance and lasts as long.
    codec_play_call(sipp, tshark, pcap, play_ms + len(speech) // 8 + 1500, codec)
    call_id = gw.wait_event("call.offered")["call_id"]
    assert gw.wait_event("call.answered", call_id=call_id)["codec"] == codec
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended
    jitter = _PLAYOUT_JITTER.format(ended["playout_trimmed_bytes"])

    assert sim.live_count() == 1
    started = sim.live_client_events(0)[0].event
    assert started["type"] == "session.start"
    fmt = started["session"]["audio"]["format"]
    assert fmt == {"type": f"audio/{codec.lower()}", "rate": 8000}, fmt
    utterances_heard = sim.live(0, lambda s: list(s.utterances))
    assert len(utterances_heard) == 1, utterances_heard
    heard = utterances_heard[0].audio
    track = output_audio(sim.live_server_events(0))
    assert heard in track, "the simulator did not send the utterance back"
    print(f"\nutterance heard: {len(heard) // 8} ms; output track sent: {len(track) // 8} ms")

    datagrams = read_udp(tshark.pcap)
    packets = gateway_rtp(datagrams, ports, ports.sipp_media)
    assert packets, "no RTP from the gateway in the capture"
    where = locate(heard, packets)
    assert where is not None, "the echo is not on the wire verbatim" + jitter
    assert level_dbfs(heard, codec) > -30.0
    assert all(p.rtp.payload_type == PAYLOAD_TYPE[codec] for p in packets)
    # Nothing was transcoded: every wire payload byte is an output-track byte, in track order.
    wire = b"".join(p.rtp.payload for p in packets)
    assert heard in wire
    one_paced_gateway_stream(datagrams, ports)
    # GPT-Live has no commit, response or truncate: only audio, then the close.
    client = sim.live_client_events(0)
    assert client_types(client) == ["session.start", "session.close"], client_types(client)
    appended = sum(
        len(base64.b64decode(r.event["audio"]))
        for r in client
        if r.type == "session.input_audio.append" and r.event["audio"]
    )
    assert appended >= play_ms * 8 * 0.9, (appended, play_ms)


def test_live_baresip_caller_hears_its_utterance_back(
    live_sim_factory: Callable[..., LiveSimulatorThread],
    live_gateway: Callable[..., GatewayProcess],
    baresip: Baresip,
    tshark: Capture,
    ports: InteropPorts,
    utterances: Utterances,
) -> None:
    """baresip (libre's RTP stack and timing) speaks a sentence; the simulator's echo of what it
    heard goes back to baresip verbatim."""
    sim = live_sim_factory()
    gw = live_gateway(sim)
    tshark.start()
    result = baresip.call(
        f"sip:gateway@{LOOPBACK}:{ports.gateway_sip}", audio_wav=utterances.hello_wav, duration_s=7
    )
    tshark.stop()
    assert "Call established" in result.log, result.log[-3000:]
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id, timeout=15)
    jitter = _PLAYOUT_JITTER.format(ended["playout_trimmed_bytes"])
    heard = sim.live(0, lambda s: [u.audio for u in s.utterances])
    assert heard, "the simulator heard no utterance"
    track = output_audio(sim.live_server_events(0))
    low, high = ports.baresip_rtp
    datagrams = read_udp(tshark.pcap)
    packets = [p for port in range(low, high + 1) for p in gateway_rtp(datagrams, ports, port)]
    assert packets, "no RTP from the gateway to baresip"
    for index, audio in enumerate(heard):
        assert audio in track
        where = locate(audio, packets)
        print(f"\nutterance {index + 1}: {len(audio) // 8} ms, on the wire at {where}")
        assert where is not None, f"the echo of utterance {index + 1} is not on the wire{jitter}"


def test_live_run_without_a_key_uses_the_built_in_simulator(
    gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """As a user first runs it: `run` with `api = "live"`, no key and no URL serves GPT-Live
    calls from the simulator inside the gateway process (defaults otherwise, uvloop): the call
    is answered and the caller's speech comes back verbatim."""
    _needs_raw_socket()
    gw = gateway({"realtime": {"api": "live"}}, echo=False)
    started = gw.wait_event("gateway.started")
    print(f"\ngateway.started: { ({k: started.get(k) for k in ('api', 'live', 'simulator')}) }")
    pcap = tmp_path / "caller.pcap"
    play_ms = write_caller_pcap(pcap, silence_ms(600) + utterances.hello + silence_ms(1500))
    codec_play_call(sipp, tshark, pcap, play_ms + len(utterances.hello) // 8 + 1500)
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended
    print(f"playout_trimmed_bytes={ended['playout_trimmed_bytes']}")
    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    # Every 20 ms frame of the speech is on the wire verbatim and in order. Not as one run:
    # here the simulator shares the gateway's event loop, so a delta can come later than the
    # playout's 40 ms start margin (gateway/call/session.py LIVE_PLAYOUT_START_DELAY_FRAMES) and
    # an idle frame is played inside the echo; such inserted frames are counted, must be silence.
    wire = [p.rtp.payload for p in packets]
    hello = utterances.hello
    frames = [hello[i : i + 160] for i in range(0, len(hello) - 159, 160)]
    start = next((k for k, payload in enumerate(wire) if payload == frames[0]), None)
    assert start is not None, "the built-in simulator's echo is not on the wire"
    position, inserted = start, []
    for frame in frames:
        while position < len(wire) and wire[position] != frame:
            inserted.append(wire[position])
            position += 1
        assert position < len(wire), "a frame of the speech is missing from the echo"
        position += 1
    print(f"the speech on the wire from packet {start}; {len(inserted)} frame(s) inserted")
    assert all(is_silent(frame) for frame in inserted), "the echo differs from the speech"
    assert len(inserted) <= 3, len(inserted)
