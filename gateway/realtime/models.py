"""Realtime model names: the default, announced shutdown dates, and which models take reasoning.

Source of every entry: the `openai` SDK 3.63.0 (the version in the project's environment),
`openai/types/realtime/realtime_session_create_request_param.py`, the `model` field's docstring:
"Deprecated values: gpt-realtime, gpt-realtime-2025-08-28, gpt-realtime-mini,
gpt-realtime-mini-2025-12-15, gpt-audio-mini, gpt-audio-mini-2025-12-15: Announced shutdown
date: 2027-01-20" (it points to https://developers.openai.com/api/docs/deprecations), and the
`reasoning` field's docstring ("reasoning-capable Realtime models such as `gpt-realtime-2`").
When a newer SDK announces more dates, add them here.
"""

from __future__ import annotations

from datetime import date

# Not marked deprecated by the SDK above; a GA model that takes G.711 audio.
DEFAULT_MODEL = "gpt-realtime-2.1"

# model -> announced shutdown date (after it, sessions with that model are refused).
SHUTDOWN_DATES: dict[str, date] = {
    name: date(2027, 1, 20)
    for name in (
        "gpt-realtime",
        "gpt-realtime-2025-08-28",
        "gpt-realtime-mini",
        "gpt-realtime-mini-2025-12-15",
        "gpt-audio-mini",
        "gpt-audio-mini-2025-12-15",
    )
}
# The preview models were retired before the GA models above (realtime-protocol.md 1).
RETIRED = frozenset(
    {
        "gpt-4o-realtime-preview",
        "gpt-4o-realtime-preview-2024-10-01",
        "gpt-4o-realtime-preview-2024-12-17",
        "gpt-4o-realtime-preview-2025-06-03",
        "gpt-4o-mini-realtime-preview",
        "gpt-4o-mini-realtime-preview-2024-12-17",
    }
)
WARN_DAYS = 60

# Models the SDK lists; those whose name starts with "gpt-realtime-2" are the reasoning ones.
KNOWN_MODELS = frozenset(
    {
        "gpt-realtime",
        "gpt-realtime-1.5",
        "gpt-realtime-2",
        "gpt-realtime-2.1",
        "gpt-realtime-2.1-mini",
        "gpt-realtime-2025-08-28",
        "gpt-realtime-mini",
        "gpt-realtime-mini-2025-10-06",
        "gpt-realtime-mini-2025-12-15",
        "gpt-audio-1.5",
        "gpt-audio-mini",
        "gpt-audio-mini-2025-10-06",
        "gpt-audio-mini-2025-12-15",
    }
    | RETIRED
)
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


def takes_reasoning(model: str) -> bool | None:
    """True/False for a model the SDK lists; None for any other name (an Azure deployment name,
    a newer model): the service then decides."""
    if model not in KNOWN_MODELS:
        return None
    return model.startswith("gpt-realtime-2")


def shutdown_warning(model: str, today: date, warn_days: int = WARN_DAYS) -> str | None:
    """A sentence for the operator when `model` shuts down within `warn_days` (or has)."""
    if model in RETIRED:
        return f"realtime.model {model!r} is retired; use {DEFAULT_MODEL!r}"
    shutdown = SHUTDOWN_DATES.get(model)
    if shutdown is None:
        return None
    days = (shutdown - today).days
    if days > warn_days:
        return None
    if days < 0:
        return f"realtime.model {model!r} was shut down on {shutdown}; use {DEFAULT_MODEL!r}"
    return (
        f"realtime.model {model!r} shuts down on {shutdown} (in {days} days); "
        f"switch to {DEFAULT_MODEL!r}"
    )
