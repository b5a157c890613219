"""Media interop (issue 3): G.711 + RFC 4733 from SIPp, the gateway's outbound RTP on the wire.

Depends on media wiring in the app (H4/H5/H8: RTP stream, pacer, DTMF receiver reporting
`dtmf.received`). These tests are not skipped while that work lands: they fail with the
gateway log attached, which is the signal the owners need.

SIPp plays a project-made pcap (speech, then digits 1 2 3 #, one SSRC, PT 101) with
play_pcap_audio (raw socket: root or CAP_NET_RAW). The gateway runs in echo mode so it has
audio to send back for the whole call; tshark captures loopback and tests/tools measures the
gateway's stream.
"""

from __future__ import annotations

import os

import pytest

from tests.tools.capture import Capture
from tests.tools.gateway_process import GatewayProcess
from tests.tools.media import MediaFiles
from tests.tools.ports import InteropPorts
from tests.tools.rtp import StreamStats
from tests.tools.sipp import Sipp

pytestmark = pytest.mark.interop

# The pcap lasts ~6.8 s; keep the call up a little longer so the tail is echoed too.
PLAY_MARGIN_MS = 1500


def _needs_raw_socket() -> None:
    if os.geteuid() != 0:
        pytest.skip("SIPp play_pcap_audio needs a raw socket (root or CAP_NET_RAW)")


def _gateway_stream(streams: list[StreamStats], ports: InteropPorts) -> StreamStats:
    low, high = ports.gateway_rtp
    outbound = [s for s in streams if low <= s.src[1] <= high and s.dst[1] == ports.sipp_media]
    assert outbound, "no RTP from the gateway in the capture:\n" + "\n".join(
        s.summary() for s in streams
    )
    # One call, one SSRC (RFC 3550 8: the SSRC stays for the session).
    assert len(outbound) == 1, "\n".join(s.summary() for s in outbound)
    return outbound[0]


def _play_ms(media: MediaFiles) -> int:
    return media.rtp_packets * 20 + PLAY_MARGIN_MS


def test_g711_and_rfc4733_digits_reach_the_gateway(
    gateway, sipp: Sipp, tshark: Capture, media_dir: MediaFiles, ports: InteropPorts
) -> None:
    _needs_raw_socket()
    gw: GatewayProcess = gateway(echo=True)
    tshark.start()
    result = sipp.run(
        "uac_media_dtmf.xml",
        timeout_s=30,
        substitutions={"PCAP": str(media_dir.rtp_pcap), "PLAY_MS": str(_play_ms(media_dir))},
    )
    tshark.stop()
    assert result.rc == 0, result.describe()
    offered = gw.wait_event("call.offered")
    call_id = offered["call_id"]
    gw.wait_event("call.ended", call_id=call_id)

    # What SIPp sent is what we think we sent (guards the harness itself).
    streams = tshark.streams()
    inbound = [s for s in streams if s.src[1] == ports.sipp_media]
    assert inbound and inbound[0].digits == media_dir.digits, [s.summary() for s in streams]

    digits = gw.wait_events("dtmf.received", 4, timeout=5, call_id=call_id)
    assert [d["digit"] for d in digits] == list(media_dir.digits), digits
    assert all(d["source"] == "rfc4733" for d in digits), digits

    stream = _gateway_stream(streams, ports)
    print(f"\ngateway outbound RTP: {stream.summary()}")
    print(
        f"figures: packets={stream.packets} seq_errors={stream.seq_errors} "
        f"interval_mean_ms={stream.interval_ms_mean:.3f} interval_max_ms="
        f"{stream.interval_ms_max:.3f} jitter_mean_ms={stream.jitter_ms_mean:.3f} "
        f"jitter_max_ms={stream.jitter_ms_max:.3f}"
    )
    assert stream.seq_errors == 0, stream.summary()
    assert set(stream.audio_payload_sizes) == {160}, stream.summary()
    assert 19.5 <= stream.interval_ms_mean <= 20.5, stream.summary()
    assert stream.jitter_ms_mean < 1.0, stream.summary()
    # Never send received DTMF events back (Asterisk loops on echoed RFC 4733).
    assert stream.digits == "", stream.summary()
