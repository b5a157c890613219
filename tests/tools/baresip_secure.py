"""baresip configured for TLS and/or SRTP (issue 13): the tests/interop/baresip/ templates
with one test's ports, plus the srtp module, `mediaenc=srtp-mand`, a CA file to verify the
server and a client certificate, as asked."""

from __future__ import annotations

from pathlib import Path

from tests.tools.baresip import BARESIP_DIR
from tests.tools.gateway_process import LOOPBACK
from tests.tools.peers import require_peer, which_peer
from tests.tools.ports import InteropPorts

SRTP_MODULE = Path("/usr/lib/baresip/modules/srtp.so")


def require_baresip_srtp() -> None:
    require_peer("baresip")
    if not SRTP_MODULE.exists():
        require_peer(str(SRTP_MODULE))  # skips locally, fails under CI, naming the module


def write_config(
    work: Path,
    ports: InteropPorts,
    audio_wav: Path,
    *,
    srtp: bool = False,
    ca_file: Path | None = None,
    certificate: Path | None = None,
) -> Path:
    """The config directory; `certificate` is one PEM holding baresip's key and certificate."""
    config_dir = work / "config"
    config_dir.mkdir(parents=True)
    (work / "rec").mkdir(exist_ok=True)
    rtp_min, rtp_max = ports.baresip_rtp
    values = {
        "HOST": LOOPBACK,
        "SIP_PORT": str(ports.baresip_sip),
        "RTP_PORTS": f"{rtp_min}-{rtp_max}",
        "CTRL_PORT": str(ports.baresip_ctrl),
        "CONS_PORT": str(ports.baresip_cons),
        "AUDIO_WAV": str(audio_wav),
        "REC_DIR": str(work / "rec"),
    }
    extra_config = []
    if srtp:
        extra_config.append("module\t\t\tsrtp.so")
    if ca_file is not None:
        extra_config.append(f"sip_cafile\t\t{ca_file}")
    if certificate is not None:
        extra_config.append(f"sip_certificate\t\t{certificate}")
    for name in ("config", "accounts"):
        text = (BARESIP_DIR / f"{name}.template").read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        if name == "config":
            text += "".join(f"{line}\n" for line in extra_config)
        elif srtp:
            text = text.replace(";ptime=20", ";ptime=20;mediaenc=srtp-mand")
        (config_dir / name).write_text(text)
    return config_dir


def dial_command(config_dir: Path, uri: str, duration_s: int) -> list[str]:
    return [
        which_peer("baresip"),
        "-f",
        str(config_dir),
        "-e",
        f"/dial {uri}",
        "-t",
        str(duration_s),
    ]
