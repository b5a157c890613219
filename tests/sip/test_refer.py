"""The outcome of a blind transfer (sip/refer.py, RFC 3515), sans-I/O: the REFER's own answer
and the NOTIFY sipfrags, in either order."""

from __future__ import annotations

import pytest

from sip.refer import ENDED_WITHOUT_RESULT, NO_ANSWER, ReferProgress, sipfrag_status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"SIP/2.0 200 OK\r\n", 200),
        (b"SIP/2.0 180 Ringing", 180),
        (b"sip/2.0 486 Busy Here\n", 486),
        (b"", None),
        (b"HTTP/1.1 200 OK", None),
        (b"SIP/2.0 OK", None),
    ],
)
def test_sipfrag_status(body: bytes, status: int | None) -> None:
    assert sipfrag_status(body) == status


def test_refer_accepted_then_notifies_progress_then_success() -> None:
    progress = ReferProgress()
    assert progress.refer_answered(202) is None  # wait for the NOTIFYs
    assert progress.notify(100, False) is None
    assert progress.notify(180, False) is None
    assert progress.notify(200, True) == 200


def test_notify_before_the_refers_2xx_is_kept() -> None:
    """The referee often NOTIFYs before our REFER's 202 reaches us."""
    progress = ReferProgress()
    assert progress.notify(486, True) == 486
    assert progress.refer_answered(202) == 486


def test_refer_failure_or_no_answer_is_the_outcome() -> None:
    assert ReferProgress().refer_answered(403) == 403
    assert ReferProgress().refer_answered(None) == NO_ANSWER


def test_subscription_or_call_ends_without_a_final_sipfrag() -> None:
    progress = ReferProgress()
    progress.notify(180, False)
    assert progress.notify(None, True) == ENDED_WITHOUT_RESULT
    ended = ReferProgress()
    ended.notify(100, False)
    assert ended.call_ended() == ENDED_WITHOUT_RESULT
    # A final sipfrag stays the outcome whatever follows.
    done = ReferProgress()
    assert done.notify(200, False) == 200
    assert done.notify(503, True) == 200
