"""The audio delta's fast path (gateway/realtime/protocol.py `ServerEventParser.parse` calls
`_audio_delta` at once, issue 14) against the generic parse of the same event
(`parse_server_event`): the same event for every valid delta, the same refusal (None, counted
in `malformed`, nothing raised) for every hostile one: wrong types, missing fields, bad
base64, non-ASCII text, huge deltas. Both reach the one `_audio_delta`; what this holds is
that the parser catches every error it raises (an uncaught one would lose the link)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.realtime import events as ev
from gateway.realtime import protocol as p

DELTA = "response.output_audio.delta"
GOOD = {
    "type": DELTA,
    "event_id": "event_1",
    "response_id": "resp_1",
    "item_id": "item_1",
    "output_index": 0,
    "content_index": 0,
    "delta": base64.b64encode(b"\x7f\xff" * 80).decode(),
}
_MISSING = object()


def generic(data: dict[str, Any]) -> ev.ServerEvent | None:
    """What the generic path makes of a decoded event (None where it refuses it)."""
    try:
        return p.parse_server_event(data)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        return None


def fast(data: dict[str, Any]) -> tuple[ev.ServerEvent | None, int]:
    parser = p.ServerEventParser()
    event = parser.parse(orjson.dumps(data))
    return event, parser.malformed


def assert_agree(data: dict[str, Any]) -> ev.ServerEvent | None:
    expected = generic(data)
    event, malformed = fast(data)
    assert event == expected, data
    assert malformed == (0 if expected is not None else 1)
    return event


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json_values = st.one_of(
    _json_scalars,
    st.lists(_json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), _json_scalars, max_size=3),
)
_base64_text = st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode())
# Near-misses of base64: padding in the wrong place, characters outside the alphabet
# (URL-safe ones, whitespace, a newline), a truncated group, non-ASCII text.
_bad_base64 = st.one_of(
    st.text(alphabet="ABCDabcd0123+/=-_ \n\t\u00e9\u20ac", max_size=40),
    _base64_text.map(lambda s: s[:-1] if s else "="),
    _base64_text.map(lambda s: "=" + s),
    _base64_text.map(lambda s: s + "=A"),
)
_field_values = {
    "response_id": st.one_of(st.text(max_size=20), _json_values),
    "item_id": st.one_of(st.text(max_size=20), _json_values),
    "output_index": st.one_of(st.integers(-(2**63), 2**63 - 1), _json_values),
    "content_index": st.one_of(st.integers(0, 3), _json_values),
    "delta": st.one_of(_base64_text, _bad_base64, _json_values),
}


@st.composite
def delta_events(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"type": DELTA}
    if draw(st.booleans()):
        data["event_id"] = draw(st.one_of(st.text(max_size=10), _json_values))
    for name, values in _field_values.items():
        choice = draw(st.sampled_from(("good", "good", "other", "missing")))
        if choice == "good":
            data[name] = GOOD[name]
        elif choice == "other":
            data[name] = draw(values)
    extra = draw(st.dictionaries(st.sampled_from(("obfuscation", "x", "audio")), _json_values))
    return {**data, **extra}


@settings(max_examples=600, deadline=None)
@given(delta_events())
def test_fast_and_generic_parse_agree_on_any_delta_event(data: dict[str, Any]) -> None:
    assert_agree(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000), st.integers(0, 2**31), st.integers(0, 5))
def test_every_valid_delta_parses_to_its_audio(audio: bytes, output: int, content: int) -> None:
    data = {
        **GOOD,
        "output_index": output,
        "content_index": content,
        "delta": base64.b64encode(audio).decode(),
    }
    event = assert_agree(data)
    assert event == ev.AudioDelta("resp_1", "item_1", output, content, audio)


def test_absent_indexes_are_zero_on_both_paths() -> None:
    data = {k: v for k, v in GOOD.items() if k not in ("output_index", "content_index")}
    assert assert_agree(data) == ev.AudioDelta("resp_1", "item_1", 0, 0, b"\x7f\xff" * 80)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("response_id", 7),
        ("response_id", None),
        ("response_id", ["resp_1"]),
        ("item_id", {"id": "item_1"}),
        ("item_id", _MISSING),
        ("response_id", _MISSING),
        ("output_index", True),  # a bool is not an index
        ("output_index", 0.0),
        ("output_index", "0"),
        ("output_index", None),  # present but null is not "absent"
        ("content_index", False),
        ("delta", _MISSING),
        ("delta", None),
        ("delta", 12),
        ("delta", ["AAAA"]),
        ("delta", "@@@@"),
        ("delta", "AAA"),  # a truncated group
        ("delta", "=AAA"),  # leading padding
        ("delta", "AA==AA=="),  # data after padding
        ("delta", "AA AA"),  # whitespace is not base64 here
        ("delta", "AAAA\n"),
        ("delta", "QUJD-_"),  # the URL-safe alphabet
        ("delta", "\u00e9\u00e9\u00e9\u00e9"),  # non-ASCII text
    ],
)
def test_hostile_delta_fields_are_refused_and_counted_on_both_paths(name: str, value: Any) -> None:
    data = dict(GOOD)
    if value is _MISSING:
        del data[name]
    else:
        data[name] = value
    assert generic(data) is None
    assert fast(data) == (None, 1)


def test_a_huge_delta_parses_without_harm() -> None:
    """8 MiB of audio in one delta (half the client's 16 MiB frame cap as base64): decoded
    whole, the same on both paths; the playout queue's bound decides what is kept."""
    audio = bytes(range(256)) * (8 * 1024 * 4)
    data = {**GOOD, "delta": base64.b64encode(audio).decode()}
    event = assert_agree(data)
    assert isinstance(event, ev.AudioDelta) and event.audio == audio


def test_frames_that_only_look_like_a_delta_take_the_generic_path() -> None:
    parser = p.ServerEventParser()
    for frame in (
        b'["response.output_audio.delta"]',
        b'"response.output_audio.delta"',
        b'{"type":["response.output_audio.delta"]}',
        b'{"type":"response.output_audio.delta ","response_id":"r","item_id":"i","delta":""}',
    ):
        event = parser.parse(frame)
        assert event is None or isinstance(event, ev.UnknownEvent), frame
    assert parser.malformed == 3 and parser.unknown_types == {DELTA + " ": 1}
