"""The compiled WebSocket frame builder (gateway/_wsframe.c) against its pure twins in
gateway/wsock.py (issue 14): the same bytes for any payload, data, prefix, suffix and mask, the
same errors for bad arguments, and the frames websockets itself would write and read.

Where the extension is not built the compiled cases skip locally and fail under CI=true, as for
the jitter buffer (tests/media/jitter_impls.py): `make test` builds it.
"""

from __future__ import annotations

import binascii
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import websockets.frames
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from gateway import wsock
from gateway.live import protocol as live_protocol
from gateway.realtime import protocol as realtime_protocol
from tests.realtime.test_client_fastpath import _unframe as unframe

try:
    from gateway import _wsframe  # type: ignore[attr-defined]
except ImportError as error:
    _wsframe = None
    IMPORT_ERROR = str(error)
else:
    IMPORT_ERROR = ""

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]


def compiled(function: str = "masked_text_frame") -> Any:
    """gateway._wsframe with `function` (skip locally / fail under CI when it is not built)."""
    if _wsframe is None or not hasattr(_wsframe, function):
        message = f"gateway._wsframe.{function} is not built (run `make install`): {IMPORT_ERROR}"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return _wsframe


# Lengths around the three header forms (7-bit, 16-bit, 64-bit) and the 8-byte masking stride.
LENGTHS = [0, 1, 2, 3, 4, 7, 8, 9, 125, 126, 127, 65535, 65536, 65537]
masks = st.binary(min_size=4, max_size=4)


@pytest.mark.parametrize("length", LENGTHS)
def test_text_frame_is_websockets_own(length: int, monkeypatch) -> None:
    c = compiled()
    payload = os.urandom(length)
    mask = os.urandom(4)
    monkeypatch.setattr(websockets.frames.secrets, "token_bytes", lambda n: mask)
    expected = Frame(Opcode.TEXT, payload).serialize(mask=True)
    assert c.masked_text_frame(payload, mask) == expected
    assert wsock.py_masked_text_frame(payload, mask) == expected


@given(payload=st.binary(max_size=600), mask=masks)
@settings(max_examples=400, deadline=None)
def test_text_frame_parity(payload: bytes, mask: bytes) -> None:
    c = compiled()
    assert c.masked_text_frame(payload, mask) == wsock.py_masked_text_frame(payload, mask)


@given(
    prefix=st.binary(max_size=80),
    data=st.binary(max_size=400),
    suffix=st.binary(max_size=20),
    mask=masks,
)
@settings(max_examples=600, deadline=None)
def test_b64_frame_parity(prefix: bytes, data: bytes, suffix: bytes, mask: bytes) -> None:
    c = compiled()
    ours = c.masked_b64_text_frame(prefix, data, suffix, mask)
    assert ours == wsock.py_masked_b64_text_frame(prefix, data, suffix, mask)
    frame = unframe(ours)
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data == prefix + binascii.b2a_base64(data, newline=False) + suffix


@pytest.mark.parametrize("size", [0, 1, 2, 3, 160, 161, 162, 49150, 49151, 49152, 60000])
def test_b64_frame_across_header_forms(size: int) -> None:
    """Sizes whose base64 text crosses 125 and 65535 bytes of payload, and every padding."""
    c = compiled()
    data, mask = os.urandom(size), os.urandom(4)
    ours = c.masked_b64_text_frame(b'{"a":"', data, b'"}', mask)
    assert ours == wsock.py_masked_b64_text_frame(b'{"a":"', data, b'"}', mask)
    assert unframe(ours).data == b'{"a":"' + binascii.b2a_base64(data, newline=False) + b'"}'


@pytest.mark.parametrize("protocol", [realtime_protocol, live_protocol])
def test_append_parts_are_the_append_event(protocol: Any) -> None:
    """What the clients frame from INPUT_AUDIO_APPEND_PARTS is the event input_audio_append
    builds (the one the schema tests validate), for both backends."""
    audio = bytes(range(256)) * 2
    prefix, suffix = protocol.INPUT_AUDIO_APPEND_PARTS
    mask = b"\x01\x02\x03\x04"
    expected = wsock.py_masked_text_frame(protocol.input_audio_append(audio), mask)
    assert wsock.masked_b64_text_frame(prefix, audio, suffix, mask) == expected


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_buffers_are_accepted_like_bytes(kind: Any) -> None:
    c = compiled()
    data, mask = os.urandom(333), os.urandom(4)
    assert c.masked_text_frame(kind(data), mask) == wsock.py_masked_text_frame(kind(data), mask)
    assert c.masked_b64_text_frame(kind(b"<"), kind(data), kind(b">"), mask) == (
        wsock.py_masked_b64_text_frame(kind(b"<"), kind(data), kind(b">"), mask)
    )


BAD_CALLS = [
    ("masked_text_frame", (b"x", b"abc"), ValueError),  # mask too short
    ("masked_text_frame", (b"x", b"abcde"), ValueError),  # mask too long
    ("masked_text_frame", (b"x", "abcd"), TypeError),  # mask not bytes
    ("masked_text_frame", (b"x", bytearray(4)), TypeError),
    ("masked_text_frame", ("text", b"abcd"), TypeError),  # payload not a buffer
    ("masked_text_frame", (None, b"abcd"), TypeError),
    ("masked_b64_text_frame", (b"<", b"x", b">", b"abc"), ValueError),
    ("masked_b64_text_frame", ("<", b"x", b">", b"abcd"), TypeError),  # prefix not bytes
    ("masked_b64_text_frame", (b"<", b"x", ">", b"abcd"), TypeError),  # suffix not bytes
    ("masked_b64_text_frame", (b"<", "x", b">", b"abcd"), TypeError),  # data not a buffer
    ("masked_b64_text_frame", (b"<", 5, b">", b"abcd"), TypeError),
]


@pytest.mark.parametrize(("name", "args", "error"), BAD_CALLS)
def test_bad_arguments_are_the_same_errors(name: str, args: tuple[Any, ...], error: Any) -> None:
    c = compiled()
    with pytest.raises(error):
        getattr(c, name)(*args)
    with pytest.raises(error):
        getattr(wsock, f"py_{name}")(*args)


@pytest.mark.parametrize(
    ("name", "count"), [("masked_text_frame", 2), ("masked_b64_text_frame", 4)]
)
def test_wrong_argument_counts_are_type_errors(name: str, count: int) -> None:
    c = compiled()
    for n in (0, count - 1, count + 1):
        with pytest.raises(TypeError):
            getattr(c, name)(*([b"abcd"] * n))


def test_no_reference_leaks() -> None:
    """Inputs keep their reference counts, and a long run of calls grows no memory."""
    c = compiled()
    prefix, data, suffix, mask = b"<<", bytes(160), b">>", b"\x00\x01\x02\x03"
    view = bytearray(data)
    before = [sys.getrefcount(o) for o in (prefix, data, suffix, mask, view)]
    for _ in range(20000):
        c.masked_b64_text_frame(prefix, data, suffix, mask)
        c.masked_text_frame(view, mask)
        with pytest.raises(ValueError):
            c.masked_b64_text_frame(prefix, data, suffix, b"abc")
    after = [sys.getrefcount(o) for o in (prefix, data, suffix, mask, view)]
    assert after == before
    view.append(1)  # no buffer export left behind (a leaked Py_buffer would refuse a resize)


def test_the_extension_is_built_and_selected() -> None:
    """Under CI=true this fails when `make test` did not build the extension; the product uses
    it unless SRG_PURE_PYTHON forces the pure twins."""
    c = compiled()
    forced = os.environ.get("SRG_PURE_PYTHON", "") not in ("", "0")
    if forced:
        assert wsock.masked_b64_text_frame is wsock.py_masked_b64_text_frame
        assert wsock.FRAME_IMPLEMENTATION == "python"
    else:
        assert wsock.masked_b64_text_frame is c.masked_b64_text_frame
        assert wsock.masked_text_frame is c.masked_text_frame
        assert wsock.FRAME_IMPLEMENTATION == "c"


@pytest.mark.parametrize(("value", "expected"), [("1", "python"), ("0", "c"), ("", "c")])
def test_pure_python_switch(value: str, expected: str) -> None:
    compiled()
    out = subprocess.run(
        [sys.executable, "-c", "from gateway import wsock; print(wsock.FRAME_IMPLEMENTATION)"],
        env={**os.environ, "SRG_PURE_PYTHON": value},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    assert out == expected


def test_check_reports_the_frame_builder_in_use() -> None:
    from gateway.doctor.run import check_ws_frames

    result = check_ws_frames()
    assert result.name == "websocket frames"
    if wsock.FRAME_IMPLEMENTATION == "c":
        assert result.message == "compiled (gateway._wsframe)"
    else:
        assert result.message == f"pure Python: {wsock.FRAME_IMPLEMENTATION_REASON}"
