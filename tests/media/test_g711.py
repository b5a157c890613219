"""G.711 tables: bit-exact against audioop (Python <= 3.12) on every code and every PCM value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gateway.media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13 without audioop-lts
        audioop = None

needs_audioop = pytest.mark.skipif(audioop is None, reason="audioop not available")

ALL_CODES = bytes(range(256))
ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()


@needs_audioop
def test_decode_all_codes_matches_audioop() -> None:
    assert g711.ulaw_to_pcm16(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_to_pcm16(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


@needs_audioop
def test_encode_full_pcm_sweep_matches_audioop() -> None:
    assert g711.pcm16_to_ulaw(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert g711.pcm16_to_alaw(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


@needs_audioop
def test_law_to_law_matches_decode_then_encode() -> None:
    assert g711.alaw_to_ulaw(ALL_CODES) == audioop.lin2ulaw(audioop.alaw2lin(ALL_CODES, 2), 2)
    assert g711.ulaw_to_alaw(ALL_CODES) == audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)


def test_known_values_without_audioop() -> None:
    # G.711 reference points: 0xFF/0x7F are u-law zero, 0x00 full negative; A-law 0xD5 = +8.
    pcm = np.frombuffer(g711.ulaw_to_pcm16(b"\xff\x7f\x00\x80"), dtype="<i2").tolist()
    assert pcm == [0, 0, -32124, 32124]
    pcm = np.frombuffer(g711.alaw_to_pcm16(b"\xd5\x55\x2a\xaa"), dtype="<i2").tolist()
    assert pcm == [8, -8, -32256, 32256]


def test_decode_encode_is_identity_on_codes() -> None:
    # Every u-law code except the duplicate zero (0x7F == -0 decodes to 0 -> 0xFF) survives.
    ulaw = g711.pcm16_to_ulaw(g711.ulaw_to_pcm16(ALL_CODES))
    assert [i for i in range(256) if ulaw[i] != i] == [0x7F]
    assert g711.pcm16_to_alaw(g711.alaw_to_pcm16(ALL_CODES)) == ALL_CODES


def test_silence() -> None:
    assert g711.silence_byte("PCMU") == 0xFF
    assert g711.silence_byte("pcma") == 0xD5
    assert g711.silence("PCMA", 3) == b"\xd5\xd5\xd5"
    assert g711.encode("PCMU", b"\x00\x00") == b"\xff"
    assert g711.encode("PCMA", b"\x00\x00") == b"\xd5"
    with pytest.raises(ValueError, match=r"G\.711"):
        g711.silence_byte("G722")


def test_dispatch_and_errors() -> None:
    frame = bytes(range(160))
    assert g711.decode("PCMU", frame) == g711.ulaw_to_pcm16(frame)
    assert g711.decode("PCMA", frame) == g711.alaw_to_pcm16(frame)
    assert g711.encode("PCMA", g711.decode("PCMA", frame)) == frame
    with pytest.raises(ValueError, match="odd length"):
        g711.pcm16_to_ulaw(b"\x00")
    with pytest.raises(ValueError):
        g711.decode("opus", frame)
    assert g711.ulaw_to_pcm16(b"") == b""


def test_decode_samples_is_decode_as_an_int16_array() -> None:
    for codec in ("PCMU", "pcma"):
        samples = g711.decode_samples(codec, ALL_CODES)
        assert samples.dtype == np.dtype("<i2")
        assert samples.tobytes() == g711.decode(codec, ALL_CODES)
    assert g711.decode_samples("PCMU", b"").size == 0
    with pytest.raises(ValueError):
        g711.decode_samples("G722", ALL_CODES)
