"""G.711 u-law and A-law <-> 16-bit PCM (little-endian) with numpy lookup tables.

The tables are computed once at import from the classic Sun reference algorithm (the one CPython's
audioop uses), so the output is bit-exact with `audioop.lin2ulaw/ulaw2lin/lin2alaw/alaw2lin`
on every input (tests check all 256 codes and all 65 536 PCM values). audioop is gone in
Python 3.13, hence our own tables. The gateway passes G.711 through untouched; these are for
recording, in-band DTMF detection and the simulator.
"""

from __future__ import annotations

import numpy as np

PCMU = "PCMU"
PCMA = "PCMA"

# RFC 3551 4.5.14: the codes for a zero sample. u-law 0xFF is +0; A-law 0xD5 is the smallest
# positive step (A-law has no exact zero), both what real PBXes send as silence.
_SILENCE = {PCMU: 0xFF, PCMA: 0xD5}

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # in the 14-bit domain


def _build_ulaw_decode() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((code & 0x0F) << 3) + _ULAW_BIAS
    t <<= (code & 0x70) >> 4
    return np.where(code & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype("<i2")


def _build_alaw_decode() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(code & 0x80, t, -t).astype("<i2")


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit, arithmetic shift
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, magnitude, side="left")
    quant = (magnitude >> (np.minimum(seg, 7) + 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | quant)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, magnitude, side="left")
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((magnitude >> shift) & 0x0F))
    return (code ^ mask).astype(np.uint8)


ULAW_TO_PCM16 = _build_ulaw_decode()
ALAW_TO_PCM16 = _build_alaw_decode()
# Indexed by (pcm16 as uint16) ^ 0x8000, i.e. pcm + 32768.
PCM16_TO_ULAW = _build_ulaw_encode()
PCM16_TO_ALAW = _build_alaw_encode()

# Direct A<->u translation through PCM (decode then encode), usable with bytes.translate.
_ALAW_TO_ULAW = bytes(PCM16_TO_ULAW[ALAW_TO_PCM16.astype(np.int32) + 32768])
_ULAW_TO_ALAW = bytes(PCM16_TO_ALAW[ULAW_TO_PCM16.astype(np.int32) + 32768])


def silence_byte(codec: str) -> int:
    """The byte value of a silent sample for `codec` ("PCMU" or "PCMA")."""
    try:
        return _SILENCE[codec.upper()]
    except KeyError:
        raise ValueError(f"not a G.711 codec: {codec!r} (expected PCMU or PCMA)") from None


def silence(codec: str, samples: int) -> bytes:
    """`samples` samples of silence in `codec`."""
    return bytes((silence_byte(codec),)) * samples


def ulaw_to_pcm16(data: bytes) -> bytes:
    return ULAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)].tobytes()


def alaw_to_pcm16(data: bytes) -> bytes:
    return ALAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)].tobytes()


def _pcm_index(pcm16: bytes) -> np.ndarray:
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 data has odd length {len(pcm16)}")
    return np.frombuffer(pcm16, dtype="<u2") ^ 0x8000


def pcm16_to_ulaw(pcm16: bytes) -> bytes:
    return PCM16_TO_ULAW[_pcm_index(pcm16)].tobytes()


def pcm16_to_alaw(pcm16: bytes) -> bytes:
    return PCM16_TO_ALAW[_pcm_index(pcm16)].tobytes()


def alaw_to_ulaw(data: bytes) -> bytes:
    return data.translate(_ALAW_TO_ULAW)


def ulaw_to_alaw(data: bytes) -> bytes:
    return data.translate(_ULAW_TO_ALAW)


def decode(codec: str, data: bytes) -> bytes:
    """G.711 bytes of `codec` -> PCM16 little-endian."""
    codec = codec.upper()
    if codec == PCMU:
        return ulaw_to_pcm16(data)
    if codec == PCMA:
        return alaw_to_pcm16(data)
    raise ValueError(f"not a G.711 codec: {codec!r}")


def decode_samples(codec: str, data: bytes) -> np.ndarray:
    """G.711 bytes of `codec` -> int16 samples as an array, for numpy work on them (a level
    meter, a VAD) without a round trip through bytes."""
    codec = codec.upper()
    if codec == PCMU:
        return ULAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]
    if codec == PCMA:
        return ALAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]
    raise ValueError(f"not a G.711 codec: {codec!r}")


def encode(codec: str, pcm16: bytes) -> bytes:
    """PCM16 little-endian -> G.711 bytes of `codec`."""
    codec = codec.upper()
    if codec == PCMU:
        return pcm16_to_ulaw(pcm16)
    if codec == PCMA:
        return pcm16_to_alaw(pcm16)
    raise ValueError(f"not a G.711 codec: {codec!r}")
