"""What a check returns: `Status` and `CheckResult`, and the report printed from them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 10.0  # per network check (`check --timeout`)


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not checked (said so honestly, with the reason)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    message: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAIL

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
        }


_LABELS = {Status.OK: " ok ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}


def format_report(results: Sequence[CheckResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"[{_LABELS[result.status]}] {result.name}: {result.message}")
        if result.fix and result.status in (Status.WARN, Status.FAIL, Status.SKIP):
            lines.append(f"       fix: {result.fix}")
    counts = {status: sum(1 for r in results if r.status is status) for status in Status}
    lines.append(
        f"{counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} not checked"
    )
    return "\n".join(lines)


def severity(status: Status) -> int:
    return {Status.OK: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}[status]
