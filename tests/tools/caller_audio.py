"""What a test caller says: espeak-ng sentences, silence, sweeps and DTMF laid out in time as
SIPp play_pcap_audio files."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from tests.tools.media import make_test_media
from tests.tools.pcap import write_udp_pcap
from tests.tools.rtp import PhoneStreamSpec, build_g711_dtmf_packets

ULAW_SILENCE = 0xFF
FRAME_BYTES = 160
SILENCE_BYTE = {"PCMU": ULAW_SILENCE, "PCMA": 0xD5}
PAYLOAD_TYPE = {"PCMU": 0, "PCMA": 8}


@dataclass(frozen=True, slots=True)
class Utterances:
    """Short espeak-ng sentences as headerless u-law (8 kHz)."""

    hello: bytes  # "Hello can you hear me"
    question: bytes  # "What time is it now"
    hello_wav: Path  # "hello" + 8 s of silence, 8 kHz s16 (baresip's aufile hangs up at EOF)


def make_utterances(root: Path) -> Utterances:
    """Synthesise the sentences under `root` (needs espeak-ng and sox)."""
    # No commas: espeak pauses at punctuation, and a pause near the VAD's silence window could
    # split one sentence into two turns.
    hello = make_test_media(root / "hello", text="Hello can you hear me", digits="")
    question = make_test_media(root / "question", text="What time is it now", digits="")
    return Utterances(
        hello.speech_ulaw.read_bytes(), question.speech_ulaw.read_bytes(), hello.padded_wav
    )


def silence_ms(ms: int, codec: str = "PCMU") -> bytes:
    return bytes([SILENCE_BYTE[codec]]) * (ms * 8)


def ulaw_to_alaw(ulaw: bytes) -> bytes:
    """Re-encode speech for an A-law caller (the test side may transcode; the gateway never)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    return audioop.lin2alaw(audioop.ulaw2lin(ulaw, 2), 2)


def sweep(ms: int, f0: float = 300.0, f1: float = 1200.0, level: float = 0.3) -> bytes:
    """u-law of a linear frequency sweep: unlike a steady tone, no two 20 ms frames are
    equal, so each frame on the wire tells where in the reply it came from."""
    import numpy as np

    from gateway.media.g711 import encode

    n = 8 * ms
    t = np.arange(n) / 8000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * ms / 1000.0))
    pcm = (np.sin(phase) * level * 32767).astype("<i2").tobytes()
    return encode("PCMU", pcm)


def write_caller_pcap(path: Path, audio: bytes, digits: str = "", codec: str = "PCMU") -> int:
    """A SIPp play_pcap_audio file: `audio` (G.711 of `codec`, 20 ms packets) then RFC 4733
    digits (PT 101, one SSRC). Returns the play time in ms."""
    spec = PhoneStreamSpec(payload_type=PAYLOAD_TYPE[codec])
    packets = build_g711_dtmf_packets(audio, digits, spec)
    write_udp_pcap(path, packets)
    return packets[-1][0] // 1000 + 20


def two_turns(utterances: Utterances, gap_ms: int) -> bytes:
    """The caller's side of a barge-in test: a greeting, `gap_ms` of silence (the bot's answer
    starts in it), the question spoken over that answer, then silence to hear the second one."""
    return (
        silence_ms(600)
        + utterances.hello
        + silence_ms(gap_ms)
        + utterances.question
        + silence_ms(1500)
    )
