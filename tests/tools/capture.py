"""tshark capturing one test's UDP port range on loopback, analysed with tests.tools.pcap/rtp."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tools.pcap import read_udp
from tests.tools.peers import which_peer
from tests.tools.process import ManagedProcess
from tests.tools.rtp import StreamStats, analyse_streams


@dataclass
class Capture:
    """A tshark capture on loopback of a UDP port range; analysed with tests.tools."""

    work_dir: Path
    port_range: tuple[int, int]
    processes: list[ManagedProcess]
    pcap: Path = field(init=False)
    process: ManagedProcess | None = None

    def __post_init__(self) -> None:
        self.pcap = self.work_dir / "capture.pcap"

    def start(self, timeout: float = 15.0, max_duration_s: int = 120) -> None:
        low, high = self.port_range
        self.process = ManagedProcess(
            "tshark",
            [
                which_peer("tshark"), "-i", "lo",
                "-f", f"udp portrange {low}-{high}",
                "-F", "pcap", "-w", str(self.pcap),
                "-a", f"duration:{max_duration_s}",  # a bound even if nobody stops it
            ],
            cwd=self.work_dir,
            log_path=self.work_dir / "tshark.log",
            stop_signal=signal.SIGINT,  # SIGINT makes tshark flush and close the file
        )  # fmt: skip
        self.processes.append(self.process)
        deadline = time.monotonic() + timeout
        while "Capturing on" not in self.process.output():
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tshark did not start capturing:\n{self.process.output()}")
            time.sleep(0.05)
        # "Capturing on" is printed just before the capture loop runs: without a short grace
        # the first packets can be missed.
        time.sleep(0.3)

    def stop(self) -> Path:
        if self.process is not None:
            self.process.stop(timeout=10)
        return self.pcap

    def streams(self, **kwargs: Any) -> list[StreamStats]:
        return analyse_streams(read_udp(self.pcap), **kwargs)
