"""Media attacks against `sip-realtime-gateway run` bridged to the simulator (issue 9).

- An INVITE flood that never ACKs and never sends RTP costs no Realtime audio, and every such
  call ends at Timer H (64*T1 = 32 s) with its Realtime session closed.
- Port prediction: an attacker spraying RTP over the whole port range before and while the
  real caller starts gets no RTP from the gateway and none of its audio reaches the model.
- Relatch: mid-call, while the caller is silent, in-sequence RTP from another address with
  another SSRC is dropped and counted; the gateway keeps sending to the caller.
- Flood from the caller's own source at 10x real time: no more than real time (+ the burst)
  is appended; the excess is counted.

Every caller here is raw SIP over UDP (tests/tools/raw_uac.py): the attacks need packets no
real phone sends. INVITEs come from many loopback addresses (127.0.0.2 ...), so per-source
admission limits do not stand in for the defence under test.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.tools.ports import InteropPorts, free_port_block
from tests.tools.raw_uac import RawUac, RtpSink, answer_media, rtp
from tests.tools.realtime_gateway import SimulatorThread
from tests.tools.wait import wait_until

CALLER_IP = "127.0.0.1"
ATTACKER_IP = "127.0.0.5"
CALLER_BYTE = 0x11  # every caller payload byte (not silence, not the attacker's)
ATTACKER_BYTE = 0x2B
ATTACK_RUN = bytes([ATTACKER_BYTE]) * 40  # 5 ms of the attacker's pattern
RTP_PAIRS = 120  # 100 simultaneous calls, and the quarantine of a few ended ones


class WidePorts(InteropPorts):
    """The interop layout, with a gateway RTP range wide enough for 100 calls."""

    def __init__(self, base: int, rtp_base: int) -> None:
        super().__init__(base)
        self._rtp_base = rtp_base

    @property
    def gateway_rtp(self) -> tuple[int, int]:
        return self._rtp_base, self._rtp_base + 2 * RTP_PAIRS - 1


@pytest.fixture
def ports(port_block: int) -> WidePorts:
    return WidePorts(port_block, free_port_block(2 * RTP_PAIRS))


def gateway_config(max_calls: int = 20) -> dict[str, Any]:
    return {
        "sip": {"max_calls": max_calls, "allow_networks": ["127.0.0.0/8"]},
        "log": {"level": "INFO"},
    }


def appends(sim: SimulatorThread, session: int | None = None) -> list[bytes]:
    """Decoded `input_audio_buffer.append` audio, of one session or all of them."""
    records = sim.all_client_events() if session is None else sim.client_events(session)
    return [
        base64.b64decode(r.event["audio"]) for r in records if r.type == "input_audio_buffer.append"
    ]


@pytest.fixture
def threads() -> Iterator[list[Callable[[], None]]]:
    """Stop functions of background senders, all called at teardown."""
    stops: list[Callable[[], None]] = []
    yield stops
    for stop in stops:
        stop()


def start_sender(
    stops: list[Callable[[], None]], loop: Callable[[threading.Event], None]
) -> threading.Thread:
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=5)

    stops.append(halt)
    return thread


def call_up(gw: Any, sink: RtpSink, local_ip: str = CALLER_IP) -> tuple[RawUac, tuple[str, int]]:
    uac = RawUac(local_ip, (CALLER_IP, gw.ports.gateway_sip), sink)
    uac.invite()
    final = uac.final_response()
    assert final.startswith(b"SIP/2.0 200"), final[:80]
    uac.ack()
    return uac, answer_media(final)


def send_paced(
    sink: RtpSink,
    dest: tuple[str, int],
    seq0: int,
    packets: int,
    ssrc: int,
    payload: bytes,
    per_tick: int = 1,
) -> int:
    """`packets` RTP packets, `per_tick` every 20 ms (1 = real time); returns the next seq."""
    start = time.monotonic()
    seq = seq0
    for i in range(packets):
        sink.send(rtp(seq, seq * 160, ssrc, payload), dest)
        seq += 1
        if (i + 1) % per_tick == 0:
            delay = start + (i + 1) // per_tick * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return seq


# -- 1. INVITE flood without ACK or RTP --------------------------------------------------------


def test_unacknowledged_invites_append_nothing_and_end_at_timer_h(
    realtime_gateway: Callable[..., Any], sim_factory: Callable[..., SimulatorThread]
) -> None:
    sim = sim_factory()
    config = gateway_config(max_calls=150)
    # T1 = 200 ms (sip.timer_t1_ms): Timer H at 64 x T1 = 12.8 s instead of the default 32 s;
    # what is tested is the same (the timer derived from T1 ends every unacknowledged call).
    config["sip"]["timer_t1_ms"] = 200
    # The RTP timeout must not end these calls before Timer H: this test is about H.
    config["media"] = {"rtp_timeout_s": 60}
    gw = realtime_gateway(sim.url, config)
    calls = 100
    sinks = [RtpSink(f"127.0.0.{2 + i}") for i in range(calls)]
    uacs = [
        RawUac(f"127.0.0.{2 + i}", (CALLER_IP, gw.ports.gateway_sip), s)
        for i, s in enumerate(sinks)
    ]
    try:
        for uac in uacs:
            uac.invite()  # and never an ACK, never a packet of RTP
        answered = gw.wait_events("call.answered", calls, timeout=60)
        assert len(answered) == calls
        assert sim.session_count() == calls
        # Our outbound streams run from the 200 on (silence keeps NATs open): once every
        # caller got a second of it, hold-filling would long have appended silence if audio
        # time had started without the caller.
        for sink in sinks:
            assert sink.wait_for(50, timeout=30), "the gateway sends no RTP to a caller"
        assert appends(sim) == []
        # Timer H (64*T1 = 12.8 s after the 200): every call ends, its session is closed.
        ended = gw.wait_events("call.ended", calls, timeout=60, cause="ack_timeout")
        assert len(ended) == calls
        assert all(e["audio_appended_bytes"] == 0 for e in ended)
        sim.wait_until(
            "every Realtime session closed",
            lambda: all(s.closed.is_set() for s in sim.sim.sessions.values()),
            timeout=15,
        )
        assert appends(sim) == []
    finally:
        for uac in uacs:
            uac.close()
        for sink in sinks:
            sink.close()


# -- 2. Port prediction race -------------------------------------------------------------------


def test_rtp_sprayed_over_the_port_range_is_never_latched(
    realtime_gateway: Callable[..., Any],
    sim_factory: Callable[..., SimulatorThread],
    threads: list[Callable[[], None]],
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, gateway_config())
    low, high = gw.ports.gateway_rtp
    attacker = RtpSink(ATTACKER_IP)
    caller_rtp = RtpSink(CALLER_IP)
    sprayed = [0]

    def spray(stop: threading.Event) -> None:
        # In-sequence RTP with one SSRC to every port (RTP and RTCP), round after round:
        # exactly what a prober needs to win a first-packet latch.
        seq = 0
        while not stop.is_set():
            packet = rtp(seq, seq * 160, 0xBAD, bytes([ATTACKER_BYTE]) * 160)
            for port in range(low, high + 1):
                attacker.send(packet, (CALLER_IP, port))
            sprayed[0] += 1
            seq += 1
            time.sleep(0.01)

    start_sender(threads, spray)
    try:
        wait_until(lambda: sprayed[0] >= 5, 10, "the spray on before the call starts")
        uac, media = call_up(gw, caller_rtp)
        assert caller_rtp.wait_for(25, timeout=10)  # the gateway talks to the caller...
        send_paced(caller_rtp, media, 1, 75, 0x5EED, bytes([CALLER_BYTE]) * 160)
        assert caller_rtp.wait_for(75, timeout=10)
        uac.bye()
        ended = gw.wait_event("call.ended", timeout=15)
    finally:
        for stop in threads:
            stop()
        attacker.close()
        caller_rtp.close()
    assert attacker.received == 0, f"the gateway sent {attacker.received} packets to the attacker"
    audio = b"".join(appends(sim, 0))
    assert bytes([CALLER_BYTE]) * 160 in audio  # the caller was heard...
    assert ATTACK_RUN not in audio  # ...the attacker never
    assert ended["rtp"]["dropped_foreign_source"] >= 100
    assert ended["rtp"]["rtcp_dropped_foreign"] >= 1


# -- 3. Relatch attempt mid-call ---------------------------------------------------------------


def test_a_second_source_cannot_take_over_a_silent_call(
    realtime_gateway: Callable[..., Any], sim_factory: Callable[..., SimulatorThread]
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, gateway_config())
    attacker = RtpSink(ATTACKER_IP)
    caller_rtp = RtpSink(CALLER_IP)
    try:
        uac, media = call_up(gw, caller_rtp)
        seq = send_paced(caller_rtp, media, 1, 50, 0x5EED, bytes([CALLER_BYTE]) * 160)
        # The caller goes silent; 3 s of in-sequence RTP with another SSRC from another
        # address (longer than the 2 s after which the gateway used to follow a new source),
        # and RTCP to the RTCP port.
        before = caller_rtp.received
        send_paced(attacker, media, 7000, 150, 0xBAD, bytes([ATTACKER_BYTE]) * 160)
        for _ in range(5):
            attacker.send(b"\x80\xc9\x00\x01\x00\x00\x0b\xad", (media[0], media[1] + 1))
        assert caller_rtp.received >= before + 100  # still sent to the caller meanwhile
        send_paced(caller_rtp, media, seq, 25, 0x5EED, bytes([CALLER_BYTE]) * 160)
        assert caller_rtp.wait_for(before + 175, timeout=10)
        uac.bye()
        ended = gw.wait_event("call.ended", timeout=15)
    finally:
        attacker.close()
        caller_rtp.close()
    assert attacker.received == 0
    rtp_stats = ended["rtp"]
    assert rtp_stats["dropped_foreign_source"] == 150
    assert rtp_stats["rtcp_dropped_foreign"] == 5
    assert rtp_stats["relatched"] == 0
    assert rtp_stats["packets_received"] >= 70  # the caller, before and after
    audio = b"".join(appends(sim, 0))
    assert ATTACK_RUN not in audio
    assert bytes([CALLER_BYTE]) * 160 in audio


# -- 4. Flood from the latched source ----------------------------------------------------------


def test_a_flood_from_the_callers_own_source_is_cut_to_real_time(
    realtime_gateway: Callable[..., Any], sim_factory: Callable[..., SimulatorThread]
) -> None:
    sim = sim_factory()
    gw = realtime_gateway(sim.url, gateway_config())
    caller_rtp = RtpSink(CALLER_IP)
    try:
        uac, media = call_up(gw, caller_rtp)
        first_packet = time.monotonic()
        # 10x real time for 2 s: 1000 valid, in-sequence 20 ms packets, 10 every 20 ms.
        send_paced(caller_rtp, media, 1, 1000, 0x5EED, bytes([CALLER_BYTE]) * 160, per_tick=10)
        uac.bye()
        bye_sent = time.monotonic()
        ended = gw.wait_event("call.ended", timeout=15)
    finally:
        caller_rtp.close()
    appended = sum(len(a) for a in appends(sim, 0))
    # Whatever the host's speed: never more than the real time the call lasted (measured
    # around it from the outside, so generous) plus the 200 ms burst and a frame.
    real_time = (bye_sent - first_packet) * 8000
    assert appended <= real_time + 1600 + 160, (appended, real_time)
    assert appended < 1000 * 160 / 3  # far from the 20 s of audio offered
    dropped = ended["rtp"]["dropped_rate"] * 160 + ended["input_rate_dropped_bytes"]
    assert dropped > 0
    assert ended["audio_appended_bytes"] == appended


# -- 5. Timestamps running ahead of real time from the latched source --------------------------


def test_tiny_packets_with_timestamp_gaps_conceal_no_more_than_real_time(
    realtime_gateway: Callable[..., Any], sim_factory: Callable[..., SimulatorThread]
) -> None:
    """The caller's own source sends 1-byte packets whose timestamps each jump just under a
    second. Before: each gap was concealed one sample per frame (~7000 frames per datagram), so
    a few thousand datagrams stalled the whole process for seconds. Now the rate bound charges
    each at least 5 ms, concealment steps 10 ms and never runs ahead of real time: the call ends
    on the BYE with at most its real time (+ 1 s of credit) concealed."""
    sim = sim_factory()
    gw = realtime_gateway(sim.url, gateway_config())
    caller_rtp = RtpSink(CALLER_IP)
    try:
        uac, media = call_up(gw, caller_rtp)
        first_packet = time.monotonic()
        seq = send_paced(caller_rtp, media, 1, 25, 0x5EED, bytes([CALLER_BYTE]) * 160)
        ts = seq * 160
        for i in range(4000):  # as fast as the socket takes them
            caller_rtp.send(rtp(seq + i, ts, 0x5EED, b"\xff"), media)
            ts += 7000
        uac.bye()
        bye_sent = time.monotonic()
        ended = gw.wait_event("call.ended", timeout=15)
    finally:
        caller_rtp.close()
    rtp_stats = ended["rtp"]
    call_ms = (bye_sent - first_packet) * 1000
    assert rtp_stats["concealed_ms"] <= call_ms + 1000 + 20, (rtp_stats, call_ms)
    assert rtp_stats["dropped_rate"] > 0 and rtp_stats["concealment_skipped"] > 0, rtp_stats
