"""dumpcap (tshark's capture engine, wireshark-common) capturing one test's UDP port range on
loopback, analysed with tests.tools.pcap/rtp; tshark itself dissects TLS records."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tools.gateway_process import LOOPBACK
from tests.tools.pcap import read_udp
from tests.tools.peers import which_peer
from tests.tools.process import ManagedProcess
from tests.tools.rtp import StreamStats, analyse_streams

CAPTURE_PROBE = b"\x00capture-probe"
PCAP_GLOBAL_HEADER_SIZE = 24


@dataclass
class Capture:
    """A capture on loopback of a UDP port range; analysed with tests.tools.

    Captured by dumpcap, the program tshark runs to capture: the same libpcap filter and file,
    without tshark's start-up (loading every dissector, about 0.4 s of each test's set-up),
    which a capture written straight to a file does not use."""

    work_dir: Path
    port_range: tuple[int, int]
    processes: list[ManagedProcess]
    pcap: Path = field(init=False)
    process: ManagedProcess | None = None
    # Also TCP (SIP over TLS/TCP): tls_records() reads it; the UDP readers skip it.
    tcp: bool = False

    def __post_init__(self) -> None:
        self.pcap = self.work_dir / "capture.pcap"

    def start(self, timeout: float = 15.0, max_duration_s: int = 120) -> None:
        low, high = self.port_range
        self.process = ManagedProcess(
            "dumpcap",
            [
                which_peer("dumpcap"), "-q", "-i", "lo",
                "-f", f"{'' if self.tcp else 'udp '}portrange {low}-{high}",
                "-P", "-w", str(self.pcap),  # -P: pcap, not pcapng (tests.tools.pcap reads it)
                "-a", f"duration:{max_duration_s}",  # a bound even if nobody stops it
            ],
            cwd=self.work_dir,
            log_path=self.work_dir / "dumpcap.log",
            stop_signal=signal.SIGINT,  # SIGINT makes dumpcap flush and close the file
        )  # fmt: skip
        self.processes.append(self.process)
        self._wait_capturing(timeout)

    def _wait_capturing(self, timeout: float) -> None:
        """Return once a probe datagram sent into the range is in the capture file.

        dumpcap prints "Capturing on" before its capture loop runs, and datagrams sent right
        after it can be missed (seen here: the first 50 ms); the file only grows when dumpcap
        flushes (up to about 1 s). The probe goes to the top port of the range, which no party
        of InteropPorts uses, and starts with a 0 byte: not RTP (version 2), RTCP or SIP, so
        every reader of the capture (tests.tools.rtp, tests.tools.wire) skips it."""
        _, high = self.port_range
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            while not self._has_packets():
                assert self.process is not None
                if self.process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dumpcap is not capturing:\n{self.process.output()}")
                probe.sendto(CAPTURE_PROBE, (LOOPBACK, high))
                time.sleep(0.02)

    def _has_packets(self) -> bool:
        try:
            return self.pcap.stat().st_size > PCAP_GLOBAL_HEADER_SIZE
        except FileNotFoundError:
            return False

    def stop(self) -> Path:
        if self.process is not None:
            self.process.stop(timeout=10)
        return self.pcap

    def streams(self, **kwargs: Any) -> list[StreamStats]:
        return analyse_streams(read_udp(self.pcap), **kwargs)

    def tls_records(self, port: int) -> list[tuple[int, int, str]]:
        """(source port, destination port, TLS record types) of every TCP segment to or from
        `port` that tshark dissects as TLS records (decoded as TLS whatever the port number);
        empty when the capture holds no TCP (`tcp` off)."""
        done = subprocess.run(
            [
                which_peer("tshark"), "-r", str(self.pcap),
                "-d", f"tcp.port=={port},tls", "-Y", f"tls && tcp.port=={port}",
                "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport",
                "-e", "tls.record.content_type", "-e", "tls.record.opaque_type",
            ],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        records = []
        for line in done.stdout.splitlines():
            # TLS 1.3 hides the real type: its records show as opaque_type 23 (RFC 8446 5.2).
            src, dst, types, opaque = ([*line.split("\t"), "", "", "", ""])[:4]
            if src and dst:
                records.append((int(src), int(dst), ",".join(t for t in (types, opaque) if t)))
        return records
