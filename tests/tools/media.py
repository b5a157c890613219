"""Test audio made on the spot with espeak-ng and sox (no binary media in the repository).

Every sox conversion uses -D: without it sox dithers when cutting 16-bit down to G.711 and
digital silence turns into +-1 LSB noise (u-law bytes alternating 0xFF/0x7F).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.tools.pcap import write_udp_pcap
from tests.tools.rtp import PhoneStreamSpec, build_g711_dtmf_packets

SPEECH_TEXT = "Hello, this is the gateway interop test. Please press one two three and hash."
DTMF_DIGITS = "123#"
_TOOL_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class MediaFiles:
    speech_wav: Path  # 8 kHz mono s16 WAV
    speech_ulaw: Path  # headerless u-law (what goes on the wire as PCMU)
    padded_wav: Path  # speech + 8 s silence: baresip's aufile hangs up at end of file
    rtp_pcap: Path  # PCMU 20 ms / 160 B + RFC 4733 digits, PT 101, one SSRC
    rtp_packets: int
    digits: str


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed (rc {done.returncode}): {done.stderr.strip()}")


def make_test_media(
    out_dir: Path, text: str = SPEECH_TEXT, digits: str = DTMF_DIGITS
) -> MediaFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_wav = out_dir / "speech_22k.wav"
    speech_wav = out_dir / "speech_8k_s16.wav"
    speech_ulaw = out_dir / "speech_8k.ulaw"
    padded_wav = out_dir / "speech_pad8s_8k_s16.wav"
    rtp_pcap = out_dir / "pcmu_speech_dtmf.pcap"
    _run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw_wav), text])
    # espeak-ng writes 22050 Hz: resample to 8 kHz mono s16, trim silence at both ends and
    # normalise to -3 dBFS so the u-law encoding uses its full range.
    _run(
        [
            "sox", "-D", str(raw_wav), "-r", "8000", "-c", "1", "-b", "16", str(speech_wav),
            "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%",
            "reverse", "gain", "-n", "-3",
        ]
    )  # fmt: skip
    _run(["sox", "-D", str(speech_wav), "-t", "ul", str(speech_ulaw)])
    _run(["sox", "-D", str(speech_wav), str(padded_wav), "pad", "0", "8"])
    raw_wav.unlink()
    packets = build_g711_dtmf_packets(speech_ulaw.read_bytes(), digits, PhoneStreamSpec())
    # SIPp rewrites addresses and ports when it plays the file; the lowest destination port
    # in the file is the base it maps onto the remote RTP port.
    count = write_udp_pcap(rtp_pcap, packets)
    return MediaFiles(speech_wav, speech_ulaw, padded_wav, rtp_pcap, count, digits)
