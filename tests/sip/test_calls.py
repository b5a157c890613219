"""sip/calls.py: the end-reason vocabulary covers every reason the user agent produces (read
from the source, the way tests/observe/test_metrics.py reads gateway/app.py), and Signal."""

from __future__ import annotations

import re
from pathlib import Path

from sip.calls import END_REASONS, Signal

SIP = Path(__file__).resolve().parents[2] / "sip"
PATTERNS = (
    r'_terminate\(call, "([^"]+)"',
    r'reason="([^"]+)"',
    r'_start_bye\(call, "([^"]+)"',
)


def test_every_end_reason_the_user_agent_produces_is_listed() -> None:
    ua_modules = [
        "useragent.py",
        "ua_core.py",
        "invite_server.py",
        "invite_client.py",
        "dialog_server.py",
    ]
    produced: set[str] = set()
    for name in ua_modules:
        text = (SIP / name).read_text()
        for pattern in PATTERNS:
            produced |= set(re.findall(pattern, text))
    assert produced
    assert produced <= set(END_REASONS), produced - set(END_REASONS)


def test_signal_runs_callbacks_once_and_late_ones_at_once() -> None:
    signal = Signal()
    seen: list[str] = []
    signal.when_set(lambda: seen.append("early"))
    assert not signal.is_set() and seen == []
    signal.set()
    signal.set()
    assert signal.is_set() and seen == ["early"]
    signal.when_set(lambda: seen.append("late"))
    assert seen == ["early", "late"]
