"""The simulator's audio helpers are bit-exact with what it computed through audioop before it
used gateway/media/g711.py (issue 11): every G.711 code decoded, a ramp of PCM values encoded,
format conversion both ways and the reply tone."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gateway.realtime.simulator import convert, to_pcm16, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13 without audioop-lts
        audioop = None

pytestmark = pytest.mark.skipif(audioop is None, reason="audioop (the reference) not available")

ALL_CODES = bytes(range(256))
# A ramp over the whole PCM range (every 7th value, both ends included) plus the values around 0.
RAMP = (
    np.concatenate([np.arange(-32768, 32768, 7), np.arange(-300, 301), [32767]])
    .astype("<i2")
    .tobytes()
)
LAWS = (
    {}
    if audioop is None
    else {
        "audio/pcmu": (audioop.ulaw2lin, audioop.lin2ulaw),
        "audio/pcma": (audioop.alaw2lin, audioop.lin2alaw),
    }
)


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_to_pcm16_decodes_every_code_as_audioop(fmt: str) -> None:
    decode, _ = LAWS[fmt]
    samples = to_pcm16(ALL_CODES, fmt)
    assert samples.dtype == np.dtype("<i2")
    assert samples.tobytes() == decode(ALL_CODES, 2)


def test_to_pcm16_of_pcm_drops_an_odd_byte() -> None:
    assert to_pcm16(RAMP + b"\x01", "audio/pcm").tobytes() == RAMP


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_convert_encodes_a_pcm_ramp_as_audioop(fmt: str) -> None:
    _, encode = LAWS[fmt]
    down, _ = audioop.ratecv(RAMP, 2, 1, 24000, 8000, None)
    assert convert(RAMP, "audio/pcm", fmt) == encode(down, 2)


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_convert_decodes_every_code_to_24k_as_audioop(fmt: str) -> None:
    decode, _ = LAWS[fmt]
    up, _ = audioop.ratecv(decode(ALL_CODES, 2), 2, 1, 8000, 24000, None)
    assert convert(ALL_CODES, fmt, "audio/pcm") == up


def test_convert_between_laws_as_audioop() -> None:
    assert convert(ALL_CODES, "audio/pcmu", "audio/pcma") == audioop.lin2alaw(
        audioop.ulaw2lin(ALL_CODES, 2), 2
    )
    assert convert(ALL_CODES, "audio/pcma", "audio/pcmu") == audioop.lin2ulaw(
        audioop.alaw2lin(ALL_CODES, 2), 2
    )
    for fmt in ("audio/pcmu", "audio/pcma", "audio/pcm"):
        assert convert(RAMP, fmt, fmt) == RAMP


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_tone_encodes_as_audioop(fmt: str) -> None:
    _, encode = LAWS[fmt]
    pcm = tone(250, "audio/pcm", hz=330.0, level=0.9)
    assert len(pcm) == 250 * 48
    n = 8000 * 250 // 1000
    linear = (np.sin(2 * np.pi * 330.0 * np.arange(n) / 8000) * 0.9 * 32767).astype("<i2")
    assert tone(250, fmt, hz=330.0, level=0.9) == encode(linear.tobytes(), 2)
