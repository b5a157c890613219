"""End to end, audio: a caller speaks through `sip-realtime-gateway run` to the simulator and hears
the bot; the caller interrupts the bot (barge-in).

Evidence comes from three independent records: the tshark capture of loopback (what really went
on the wire, with kernel timestamps), the simulator's recorded events (what the model saw) and the
gateway's JSON log (when it decided). The capture and the log share the machine's wall clock.
"""

from __future__ import annotations

import base64
import itertools
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.call.session import HOLD_FILL_AFTER_S
from tests.tools.baresip import Baresip
from tests.tools.caller_audio import (
    PAYLOAD_TYPE,
    Utterances,
    silence_ms,
    sweep,
    two_turns,
    ulaw_to_alaw,
    write_caller_pcap,
)
from tests.tools.capture import Capture
from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.sipp import Sipp, captured_media_call, codec_play_call
from tests.tools.wire import (
    gateway_rtp,
    is_silent,
    iso_to_epoch,
    level_dbfs,
    locate,
    one_paced_gateway_stream,
    reply_audio,
)

pytestmark = pytest.mark.interop

# Simulated semantic_vad (eagerness auto): 300 ms prefix padding, 500 ms of silence ends a turn.
PREFIX_MS = 300
SILENCE_MS = 500
FRAME_MS = 20


def _needs_raw_socket() -> None:
    if os.geteuid() != 0:
        pytest.skip("SIPp play_pcap_audio needs a raw socket (root or CAP_NET_RAW)")


def _check_paced(packets: list, first: int, last: int) -> None:
    """Packets first..last: consecutive sequence numbers, RTP timestamps 160 apart (20 ms of
    G.711 each), one SSRC, and a mean send interval of 20 ms."""
    run = packets[first : last + 1]
    for a, b in itertools.pairwise(run):
        assert (b.rtp.sequence - a.rtp.sequence) & 0xFFFF == 1, (a.rtp, b.rtp)
        assert (b.rtp.timestamp - a.rtp.timestamp) & 0xFFFFFFFF == 160, (a.rtp, b.rtp)
        assert b.rtp.ssrc == a.rtp.ssrc
    if len(run) >= 20:
        mean_ms = statistics.fmean((b.time - a.time) * 1000 for a, b in itertools.pairwise(run))
        print(f"bot audio: {len(run)} packets, mean interval {mean_ms:.3f} ms")
        assert 19.0 <= mean_ms <= 21.0, mean_ms


@pytest.mark.parametrize(
    ("codec", "append_ms"),
    [("PCMU", 20), ("PCMA", 20), ("PCMU", 60)],
    ids=["PCMU", "PCMA", "PCMU-append60"],
)
def test_caller_speaks_and_hears_the_bot(
    codec: str,
    append_ms: int,
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The caller offers one law only, so the Realtime session must run in that law both ways
    (audio/pcmu or audio/pcma): the bot's audio then reaches the wire byte for byte. With
    media.append_ms = 60 the caller's audio goes in 60 ms appends and the model hears it whole
    all the same."""
    _needs_raw_socket()
    sim = sim_factory()  # default: the bot plays the caller's utterance back
    gw = realtime_gateway(sim.url, {"media": {"append_ms": append_ms}})
    pcap = tmp_path / "caller.pcap"
    speech = utterances.hello if codec == "PCMU" else ulaw_to_alaw(utterances.hello)
    play_ms = write_caller_pcap(
        pcap, silence_ms(600, codec) + speech + silence_ms(1500, codec), codec=codec
    )
    reply_ms_expected = len(utterances.hello) // 8 + PREFIX_MS + SILENCE_MS
    codec_play_call(sipp, tshark, pcap, play_ms + reply_ms_expected + 500, codec)
    call_id = gw.wait_event("call.offered")["call_id"]
    ended = gw.wait_event("call.ended", call_id=call_id)
    assert ended["cause"] == "remote_bye", ended
    assert gw.wait_event("call.answered", call_id=call_id)["codec"] == codec

    assert sim.session_count() == 1
    fmt = f"audio/{codec.lower()}"
    config = sim.session_config(0)
    assert config["audio"]["input"]["format"]["type"] == fmt
    assert config["audio"]["output"]["format"]["type"] == fmt
    server = sim.server_events(0)
    started = [r.event for r in server if r.type == "input_audio_buffer.speech_started"]
    stopped = [r.event for r in server if r.type == "input_audio_buffer.speech_stopped"]
    assert len(started) == len(stopped) == 1, (started, stopped)
    replies = reply_audio(server)
    assert len(replies) == 1, list(replies)
    ((item_id, reply),) = replies.items()
    heard_ms = stopped[0]["audio_end_ms"] - started[0]["audio_start_ms"]
    print(
        f"\nutterance {len(utterances.hello) // 8} ms; simulator heard {heard_ms} ms and sent "
        f"{len(reply) // 8} ms back (item {item_id})"
    )
    assert len(reply) == heard_ms * 8  # the simulator echoes exactly what it heard
    # The caller's speech reached the model whole: the VAD window is the utterance plus the
    # prefix padding and the silence that ended the turn (one 20 ms frame of slack each side).
    assert abs(heard_ms - reply_ms_expected) <= 2 * FRAME_MS, (heard_ms, reply_ms_expected)

    datagrams = read_udp(tshark.pcap)
    packets = gateway_rtp(datagrams, ports, ports.sipp_media)
    assert packets, "no RTP from the gateway in the capture"
    where = locate(reply, packets)
    assert where is not None, "the bot's audio is not on the wire verbatim"
    bot = b"".join(p.rtp.payload for p in packets[where.first : where.last + 1])
    print(
        f"on the wire: packets {where.first}..{where.last} of {len(packets)}, offset "
        f"{where.offset}, level {level_dbfs(reply, codec):.1f} dBFS"
    )
    # Every byte the simulator sent went out once, in 20 ms frames from a frame boundary.
    assert where.offset == 0
    assert where.last - where.first + 1 == -(-len(reply) // 160)
    assert bot[: len(reply)] == reply
    assert level_dbfs(reply, codec) > -30.0  # speech, not silence
    assert all(p.rtp.payload_type == PAYLOAD_TYPE[codec] for p in packets)
    assert not all(is_silent(p.rtp.payload, codec) for p in packets[where.first : where.last + 1])
    # The marker bit opens the talkspurt (RFC 3551 4.1).
    assert packets[where.first].rtp.marker
    _check_paced(packets, where.first, where.last)
    appends = [r for r in sim.client_events(0) if r.type == "input_audio_buffer.append"]
    sizes = [len(base64.b64decode(r.event["audio"])) for r in appends]
    appended_ms = sum(sizes) / 8
    # Appends are whole packets gathered to append_ms of audio. The tick sends a shorter one
    # when the next packet is late (RTP stops, or a loaded machine delays it: how often depends
    # on timing, so it is not counted here), and hold-filling silence can make one longer; but
    # at 60 ms most carry the full three packets and on average at least two (one per packet:
    # 160 bytes each, without gathering).
    assert all(size % 160 == 0 for size in sizes), sizes
    assert sum(size == append_ms * 8 for size in sizes) * 2 > len(sizes), sizes
    assert sum(sizes) >= min(append_ms * 8, 320) * len(sizes), sizes
    span_ms = (appends[-1].t - appends[0].t) * 1000 + FRAME_MS
    print(f"caller audio appended: {appended_ms:.0f} ms over {span_ms:.0f} ms of wall time")
    # Audio time never runs ahead of the wall clock (no frame appended twice), and trails it by
    # at most the hold-fill threshold when the caller's RTP stops (then silence keeps it going).
    assert appended_ms <= span_ms + 2 * FRAME_MS
    assert appended_ms >= span_ms - (HOLD_FILL_AFTER_S * 1000 + 2 * FRAME_MS)
    # The whole outbound stream: one SSRC, no sequence errors, 20 ms frames throughout.
    one_paced_gateway_stream(datagrams, ports)


def test_baresip_caller_hears_the_bot(
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    baresip: Baresip,
    tshark: Capture,
    ports: InteropPorts,
    utterances: Utterances,
) -> None:
    """baresip (libre's RTP stack, its own jitter buffer and timing) speaks a sentence from a
    WAV file; the bot's echo of it goes back to baresip verbatim, paced at 20 ms."""
    sim = sim_factory()
    gw = realtime_gateway(sim.url)
    tshark.start()
    result = baresip.call(
        f"sip:gateway@{LOOPBACK}:{ports.gateway_sip}", audio_wav=utterances.hello_wav, duration_s=8
    )
    tshark.stop()
    assert "Call established" in result.log, result.log[-3000:]
    call_id = gw.wait_event("call.offered")["call_id"]
    gw.wait_event("call.ended", call_id=call_id, timeout=15)
    replies = reply_audio(sim.server_events(0))
    assert replies, "the simulator never answered (no speech detected?)"
    baresip_low, baresip_high = ports.baresip_rtp
    datagrams = read_udp(tshark.pcap)
    packets = [
        p
        for port in range(baresip_low, baresip_high + 1)
        for p in gateway_rtp(datagrams, ports, port)
    ]
    assert packets, "no RTP from the gateway to baresip"
    for item_id, reply in replies.items():
        where = locate(reply, packets)
        print(f"\nitem {item_id}: {len(reply) // 8} ms of bot audio, on the wire at {where}")
        assert where is not None, f"bot audio of {item_id} not on the wire"
        assert level_dbfs(reply) > -30.0
        _check_paced(packets, where.first, where.last)


# Barge-in: how long the caller lets the bot talk before interrupting (audio time).
BARGE_GAP_MS = 2000
BOT_REPLY_MS = 6000
LOG_TOLERANCE_MS = 5  # `ts` is truncated to the ms, and the log line is written after the flush


@pytest.mark.parametrize("generation", ["tail", "mid_response"])
def test_barge_in_stops_the_bot_within_one_packet_and_truncates_at_what_was_heard(
    generation: str,
    sim_factory: Callable[..., SimulatorThread],
    realtime_gateway: Callable[..., GatewayProcess],
    sipp: Sipp,
    tshark: Capture,
    utterances: Utterances,
    ports: InteropPorts,
    tmp_path: Path,
) -> None:
    """The caller asks, the bot answers with 6 s of audio and the caller speaks again 2 s into
    the answer. `tail`: the answer is generated far faster than real time, so the barge-in lands
    after response.done (nothing to cancel server-side; the case most gateways get wrong).
    `mid_response`: deltas come at about twice real time, so the response is still generating
    and the server cancels it (interrupt_response); its late deltas must not be played."""
    _needs_raw_socket()
    reply = sweep(BOT_REPLY_MS)
    slow = {"delta_interval_s": 0.08} if generation == "mid_response" else {}
    sim = sim_factory(reply_audio=reply, **slow)
    gw = realtime_gateway(sim.url)
    pcap = tmp_path / "caller.pcap"
    caller = two_turns(utterances, BARGE_GAP_MS)
    play_ms = write_caller_pcap(pcap, caller)
    # Long enough for the second answer to play out completely.
    call_id = captured_media_call(sipp, tshark, gw, pcap, play_ms + BOT_REPLY_MS + 500, 40)

    # The gateway's view: when speech_started was handled (`barge_in` is logged in the same
    # dispatch, when the flush is executed; the caller_speaking `call.state` line before it
    # is DEBUG since issue 14, used when the gateway logs at DEBUG) and what it truncated.
    barge = gw.wait_event("barge_in", call_id=call_id)
    truncate_log = gw.wait_event("call.truncate", call_id=call_id)
    speaking = [
        iso_to_epoch(e["ts"])
        for e in gw.find("call.state", call_id=call_id, state="caller_speaking")
        if iso_to_epoch(e["ts"]) <= iso_to_epoch(barge["ts"])
    ]
    got_speech_started = min([*speaking[-1:], iso_to_epoch(barge["ts"])])

    # The model's view: the first answer item and the truncate the gateway sent for it.
    server = sim.server_events(0)
    client = sim.client_events(0)
    replies = list(reply_audio(server).items())
    first_item, first_audio = replies[0]
    # Whole in the tail case; what was generated before the cancel in the other.
    assert reply.startswith(first_audio) and len(first_audio) >= 160
    if generation == "tail":
        assert first_audio == reply
    truncates = [r.event for r in client if r.type == "conversation.item.truncate"]
    assert len(truncates) == 1, truncates
    truncate = truncates[0]
    assert truncate["item_id"] == first_item and truncate["content_index"] == 0
    assert truncate_log["item_id"] == first_item
    assert truncate_log["audio_end_ms"] == truncate["audio_end_ms"]
    done_at = next(
        r.t
        for r in server
        if r.type == "response.done" and r.event["response"]["output"][0]["id"] == first_item
    )
    first_done = next(
        r.event["response"]
        for r in server
        if r.type == "response.done" and r.event["response"]["output"][0]["id"] == first_item
    )
    speech2_at = [r.t for r in server if r.type == "input_audio_buffer.speech_started"][1]
    if generation == "tail":
        assert done_at < speech2_at, "expected the barge-in in the tail after response.done"
        assert first_done["status"] == "completed"
    else:
        assert done_at > speech2_at, "expected the barge-in while the response generated"
        assert first_done["status"] == "cancelled", first_done["status_details"]
    # The server cancels on speech_started itself (interrupt_response), and in the tail there
    # is nothing to cancel: a response.cancel would only earn response_cancel_not_active.
    assert not [r for r in client if r.type == "response.cancel"]
    errors = [r.event["error"] for r in server if r.type == "error"]
    assert not errors, errors
    assert any(
        r.type == "conversation.item.truncated" and r.event["item_id"] == first_item for r in server
    )

    # The wire's view. The reply is a sweep, so no two of its frames are alike: the first
    # answer runs from its first frame to the second answer's first frame, and every bot frame
    # in it must be the next piece of the reply (idle frames from underruns aside).
    assert len(replies) == 2, [item for item, _ in replies]
    assert replies[1][1] == reply
    packets = gateway_rtp(read_udp(tshark.pcap), ports, ports.sipp_media)
    start = locate(reply[:160], packets)
    assert start is not None and start.offset == 0, "the bot's answer never went out"
    first = start.first
    second = next(
        (i for i in range(first + 1, len(packets)) if packets[i].rtp.payload == reply[:160]),
        None,
    )
    assert second is not None, "the second answer never went out"
    indexes = [i for i in range(first, second) if not is_silent(packets[i].rtp.payload)]
    bot = [packets[i] for i in indexes]
    sent = b"".join(p.rtp.payload for p in bot)
    assert sent == reply[: len(sent)], "bot audio on the wire differs from what the model sent"
    assert len(sent) < len(reply), "the whole answer played: the barge-in did not stop it"
    if generation == "tail":  # generated ahead of playout: no underrun, one talkspurt
        assert indexes == list(range(first, first + len(bot))), "gaps in the bot's talkspurt"
        _check_paced(packets, first, first + len(bot) - 1)
    last_bot = bot[-1].time
    stop_ms = (last_bot - got_speech_started) * 1000
    wire_ms = len(sent) / 8
    print(
        f"\nbarge-in ({generation}): gateway got speech_started at {got_speech_started:.3f} "
        f"(log ts), last bot packet at {last_bot:.6f} (capture): {stop_ms:+.1f} ms; "
        f"bot audio on the wire {len(sent)} B = {wire_ms:.0f} ms of {len(reply) // 8} ms, "
        f"truncate audio_end_ms={truncate['audio_end_ms']} "
        f"(difference {truncate['audio_end_ms'] - wire_ms:+.0f} ms)"
    )
    # (a) bot RTP stops within one packet time of the moment speech_started was handled.
    assert stop_ms <= FRAME_MS + LOG_TOLERANCE_MS, stop_ms
    # (b) the model is told exactly what the caller heard (bytes on the wire / 8), +-20 ms.
    assert abs(truncate["audio_end_ms"] - wire_ms) <= FRAME_MS
    # The call goes on: the second answer plays in full, and nothing of the interrupted
    # answer is played after the barge-in (its late deltas are dropped).
    later = [p for p in packets[second:] if not is_silent(p.rtp.payload)]
    print(f"after the barge-in: {len(later)} bot packets (second answer: {len(reply) // 160})")
    assert b"".join(p.rtp.payload for p in later) == reply
