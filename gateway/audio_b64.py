"""The voice backends' audio deltas, base64 -> bytes (issue 14).

`b64decode_strict(text)` is `binascii.a2b_base64(text, strict_mode=True)`: the same bytes, the
same errors (binascii.Error for anything but strict base64, ValueError for a non-ASCII str,
TypeError for another type). Compiled (gateway/_wsframe.c `b64decode_strict`) it decodes the
canonical form a quad at a time, ~5x faster than CPython's decoder on a 100 ms delta (the
largest single cost of a delta), and hands everything else to binascii; `py_b64decode_strict`
is its pure twin, used where the extension is not built or SRG_PURE_PYTHON is set (as
gateway/wsock.py's frame builders are). tests/test_b64decode.py holds the two to the same
results.
"""

from __future__ import annotations

import binascii

from gateway import wsock


def py_b64decode_strict(text: str | bytes) -> bytes:
    """The pure twin: binascii's strict decode."""
    return binascii.a2b_base64(text, strict_mode=True)


# The extension is the frame builders' (gateway/wsock.py decides whether it is used, as for
# the read fast path): the compiled decoder with them, unless built from older sources.
b64decode_strict = py_b64decode_strict
if wsock.FRAME_IMPLEMENTATION == "c":
    from gateway import _wsframe

    b64decode_strict = getattr(_wsframe, "b64decode_strict", py_b64decode_strict)

__all__ = ["b64decode_strict", "py_b64decode_strict"]
