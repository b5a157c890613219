"""bench/rtp_sink.py, the phones' receive side of the load benches: both modes count exactly
what was sent to the ports they hold, RTP and RTCP apart."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.test_bench import _load
from tests.tools.ports import free_port_block

rtp_sink = _load("rtp_sink")


@pytest.mark.parametrize("mode", ["hold", "drain"])
def test_the_sink_counts_what_the_phones_were_sent(tmp_path: Path, mode: str) -> None:
    first = free_port_block(4 * 5)
    with rtp_sink.RtpSink(tmp_path, "127.0.0.1", first, 5, mode=mode) as sink:
        assert sink.sockets == 8  # RTP and RTCP of calls 2-5 (SIPp holds the first's)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sender:
            for i in range(600):  # far more than a minimal receive buffer holds
                for call in range(1, 5):
                    sender.sendto(bytes(172), ("127.0.0.1", first + 4 * call))
                if i % 100 == 0:
                    sender.sendto(bytes(52), ("127.0.0.1", first + 4 + 1))
            sender.sendto(bytes(172), ("127.0.0.1", first))  # not a port the sink holds
        time.sleep(0.2)  # drain mode: let the reader catch up before it is stopped
    counts = sink.counts()
    assert counts["mode"] == mode
    assert counts["packets"] == 2400 and counts["rtcp_packets"] == 6, counts


def test_kernel_drops_reads_the_drops_column(tmp_path: Path) -> None:
    table = tmp_path / "udp"
    table.write_text(
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode ref pointer drops\n"
        "  1: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 11 2"
        " 0000000000000000 17\n"
        "  2: 0200007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 12 2"
        " 0000000000000000 5\n"
        "  3: 0100007F:9C44 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 13 2"
        " 0000000000000000 0\n"
    )
    drops = rtp_sink.kernel_drops("127.0.0.1", {40000, 40004, 40008}, str(table))
    assert drops == {40000: 17, 40004: 0}  # 127.0.0.2 is another host's socket


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        rtp_sink.RtpSink(tmp_path, "127.0.0.1", 40000, 2, mode="fast")
