"""The audio delta's base64 decode (issue 14): gateway/_wsframe.c `b64decode_strict` against its
pure twin gateway/audio_b64.py `py_b64decode_strict` (= `binascii.a2b_base64(text,
strict_mode=True)`): the same bytes for every valid input, the same exception type and message
for every invalid one, whatever the server sends (hostile text included), and both voice
backends' parsers use it.

The compiled cases skip locally and fail under CI=true when the extension is not built, as in
tests/test_wsframe_parity.py.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway import audio_b64
from gateway.live import events as live_events
from gateway.realtime import events as rte
from gateway.realtime import protocol
from tests.test_wsframe_parity import compiled

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def outcome(decode: Any, text: Any) -> tuple[str, Any]:
    try:
        return ("ok", decode(text))
    except Exception as exc:  # the type and the message must match
        return (type(exc).__name__, str(exc))


def same(text: Any) -> tuple[str, Any]:
    c = compiled("b64decode_strict").b64decode_strict
    expected = outcome(audio_b64.py_b64decode_strict, text)
    assert outcome(c, text) == expected, text
    return expected


def test_the_pure_twin_is_binascii_strict() -> None:
    for text in ("", "QQ==", "QR==", "QUI=", "QUJD", "A===", "AB=C", "QUJD\n", "Qé=="):
        assert outcome(audio_b64.py_b64decode_strict, text) == outcome(
            lambda t: binascii.a2b_base64(t, strict_mode=True), text
        )


# Every padding and error path of binascii's strict mode, and the canonical forms.
CASES = [
    "", "QQ==", "QR==", "QUI=", "QUJ=", "QUJD", "QUJDRA==", "QUJDREU=", "QUJDREVG",
    "A", "AB", "ABC", "A===", "AB==", "AB=", "ABC=", "====", "=QUJD", "AB=C", "A=BC",
    "QQ==QQ==", "QUJD=", "QUJD==", "QUJDR===", "QUJD\n", " QUJD", "QU JD", "QUJD\r\n",
    "QU-_", "QU.D", "QUJ\x00", "QUJ\x7f", "Qé==", "QUJD\u2028", "ＱＵＪＤ",
    b"QUJD", b"QQ==", b"QUJ\xff", bytearray(b"QUJD"), memoryview(b"QUJD"),
    5, None, 1.5, ["QUJD"],
]  # fmt: skip


def _case_id(text: Any) -> str:
    """A stable id: the same on every xdist worker (a memoryview's repr holds its address)."""
    if isinstance(text, memoryview):
        return f"memoryview({bytes(text)!r})"
    return repr(text)


@pytest.mark.parametrize("text", CASES, ids=_case_id)
def test_compiled_matches_binascii_on_every_path(text: Any) -> None:
    same(text)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000))
def test_any_audio_round_trips(audio: bytes) -> None:
    text = base64.b64encode(audio).decode()
    assert same(text) == ("ok", audio)
    assert same(text.encode()) == ("ok", audio)


@settings(max_examples=1500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from([*ALPHABET, "=", "\n", " ", "-", "é", "\x00"]), max_size=40)
)
@example("QQ=\n")
@example("QUJD" * 3 + "QQ=é")
def test_any_text_decodes_or_fails_the_same(text: str) -> None:
    same(text)


@settings(max_examples=800, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_a_valid_delta_with_one_character_changed_fails_the_same(audio: bytes, data) -> None:
    text = base64.b64encode(audio).decode()
    at = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(["=", "*", "\n", "é", "A", "/", "\x80"]))
    same(text[:at] + char + text[at + 1 :])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.text(min_size=1, max_size=6))
def test_anything_appended_to_a_valid_delta_fails_the_same(audio: bytes, tail: str) -> None:
    same(base64.b64encode(audio).decode() + tail)


def test_a_huge_delta_decodes_the_same() -> None:
    """16 MiB of text (the Realtime client's frame limit): one allocation, the same bytes."""
    audio = os.urandom(12 * 1024 * 1024)
    text = base64.b64encode(audio).decode()
    assert same(text) == ("ok", audio)
    # A bad character at the very end is found after the whole decode: the same error.
    same(text[:-1] + "*")


def recording_decoder(seen: list[str]) -> Any:
    """The pure decoder, recording each text it is given (to show a parser calls it)."""

    def spy(text: str) -> bytes:
        seen.append(text)
        return audio_b64.py_b64decode_strict(text)

    return spy


def test_the_realtime_parser_decodes_deltas_with_it(monkeypatch) -> None:
    """The decode is the module's `b64decode_strict` (compiled when built), and a delta with
    bad base64 is refused and counted, as before."""
    seen: list[str] = []
    spy = recording_decoder(seen)
    monkeypatch.setattr(protocol, "b64decode_strict", spy)
    parser = protocol.ServerEventParser()
    audio = bytes(range(256)) * 4
    delta = {"type": protocol.AUDIO_DELTA, "response_id": "r", "item_id": "i",
             "output_index": 0, "content_index": 0}  # fmt: skip
    event = parser.parse(orjson.dumps({**delta, "delta": base64.b64encode(audio).decode()}))
    assert event == rte.AudioDelta("r", "i", 0, 0, audio)
    assert parser.parse(orjson.dumps({**delta, "delta": "QUJD\n"})) is None
    assert parser.parse(orjson.dumps({**delta, "delta": "Qé=="})) is None
    assert parser.malformed == 2
    assert len(seen) == 3


def test_the_live_parser_decodes_deltas_with_it(monkeypatch) -> None:
    seen: list[str] = []
    spy = recording_decoder(seen)
    monkeypatch.setattr(live_events, "b64decode_strict", spy)
    parser = live_events.LiveEventParser()
    audio = bytes(range(256)) * 4
    frame = {"type": "session.output_audio.delta", "delta": base64.b64encode(audio).decode()}
    event = parser.parse(orjson.dumps(frame))
    assert isinstance(event, live_events.OutputAudio)
    assert event.audio == audio
    assert parser.parse(orjson.dumps({**frame, "delta": "QU=D"})) is None
    assert parser.malformed == 1
    assert len(seen) == 2


def test_the_compiled_decode_is_used_when_built_and_the_pure_one_otherwise() -> None:
    c = compiled("b64decode_strict")
    assert audio_b64.b64decode_strict is c.b64decode_strict
    code = "from gateway import audio_b64 as a; print(a.b64decode_strict is a.py_b64decode_strict)"
    env = {**os.environ, "SRG_PURE_PYTHON": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "True"
