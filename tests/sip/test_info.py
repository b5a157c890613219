"""SIP INFO bodies (sip/info.py): DTMF relay in both common formats, refusals, and the 200 that
every other INFO gets."""

from __future__ import annotations

import pytest

from sip.info import InfoAnswer, read_info


@pytest.mark.parametrize(
    ("ctype", "body", "answer"),
    [
        (
            "application/dtmf-relay",
            b"Signal=5\r\nDuration=160\r\n",
            InfoAnswer(200, None, "5", 160),
        ),
        ("application/dtmf-relay", b"signal = 11\r\n", InfoAnswer(200, None, "#", 0)),
        ("application/dtmf-relay", b"Signal=*\nDuration=x\n", InfoAnswer(200, None, "*", 0)),
        ("application/dtmf", b"d\r\n", InfoAnswer(200, None, "D", 0)),
        ("application/dtmf", b"12", InfoAnswer(200, None, "A", 0)),
    ],
)
def test_dtmf_info(ctype: str, body: bytes, answer: InfoAnswer) -> None:
    assert read_info(ctype, body) == answer


@pytest.mark.parametrize("ctype", ["application/dtmf-relay", "application/dtmf"])
def test_unknown_dtmf_signal_is_400(ctype: str) -> None:
    answer = read_info(ctype, b"Signal=Z\r\n" if ctype.endswith("relay") else b"Z")
    assert answer.status == 400 and answer.digit is None


@pytest.mark.parametrize(("ctype", "body"), [(None, b""), ("application/x-media-control", b"<x/>")])
def test_other_info_gets_200_without_a_digit(ctype: str | None, body: bytes) -> None:
    assert read_info(ctype, body) == InfoAnswer(200)
