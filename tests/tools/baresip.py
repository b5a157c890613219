"""baresip as a headless caller, configured from tests/interop/baresip/ with one test's ports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools.gateway_process import LOOPBACK, REPO_ROOT
from tests.tools.peers import which_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log

BARESIP_DIR = REPO_ROOT / "tests" / "interop" / "baresip"


@dataclass
class BaresipResult:
    rc: int
    log: str


class Baresip:
    """Dials one URI and plays a WAV file into the call (baresip's aufile source)."""

    def __init__(
        self,
        work_dir: Path,
        ports: InteropPorts,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.ports = ports
        self.processes = processes
        self.request = request

    def _write_config(self, audio_wav: Path) -> Path:
        config_dir = self.work_dir / "config"
        (self.work_dir / "rec").mkdir(parents=True, exist_ok=True)
        config_dir.mkdir(parents=True, exist_ok=True)
        rtp_min, rtp_max = self.ports.baresip_rtp
        values = {
            "HOST": LOOPBACK,
            "SIP_PORT": str(self.ports.baresip_sip),
            "RTP_PORTS": f"{rtp_min}-{rtp_max}",
            "CTRL_PORT": str(self.ports.baresip_ctrl),
            "CONS_PORT": str(self.ports.baresip_cons),
            "AUDIO_WAV": str(audio_wav),
            "REC_DIR": str(self.work_dir / "rec"),
        }
        for name in ("config", "accounts"):
            text = (BARESIP_DIR / f"{name}.template").read_text()
            for key, value in values.items():
                text = text.replace(f"@{key}@", value)
            (config_dir / name).write_text(text)
        return config_dir

    def start(self, uri: str, audio_wav: Path, duration_s: int = 6) -> ManagedProcess:
        """Dial `uri` and return at once; baresip hangs up and quits after `duration_s` (-t).
        Its console (cons) listens on ports.baresip_cons for commands such as /sndcode."""
        config_dir = self._write_config(audio_wav)
        process = ManagedProcess(
            "baresip",
            [
                which_peer("baresip"), "-f", str(config_dir),
                "-e", f"/dial {uri}", "-t", str(duration_s),
            ],
            cwd=self.work_dir,
            log_path=self.work_dir / "baresip.log",
        )  # fmt: skip
        self.processes.append(process)
        if self.request is not None:
            attach_log(self.request, "baresip output", process.output)
        return process

    def call(self, uri: str, audio_wav: Path, duration_s: int = 6) -> BaresipResult:
        """Dial `uri`, keep the call up until baresip quits after `duration_s` (-t), hang up."""
        process = self.start(uri, audio_wav, duration_s)
        try:
            rc = process.wait(timeout=duration_s + 20)
        except TimeoutError:
            rc = -1
        return BaresipResult(rc, process.output())
