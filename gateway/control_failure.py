"""The value an operator request (control API) gets back when the gateway cannot do it.

The process (gateway/app.py) and the call object return it instead of raising HTTP errors:
they know why a call cannot be placed, hung up or spoken into, not how HTTP reports it.
gateway/control.py turns it into the response (`status`, `{"error": text}`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ControlFailure:
    status: int  # the HTTP status the control API answers with (4xx/5xx)
    text: str


__all__ = ["ControlFailure"]
