"""SIP INFO bodies we act on (RFC 6086 packages as deployed): DTMF in application/dtmf-relay
(`Signal=5` / `Duration=160`, Cisco style) and application/dtmf (`5`). Pure functions.

INFO with a body we don't understand gets 200 (RFC 6086 would allow 415/469, but peers such as
Asterisk send INFO for things like media control; refusing them has no benefit).
"""

from __future__ import annotations

from dataclasses import dataclass

DTMF_TYPES = ("application/dtmf-relay", "application/dtmf")
DTMF_SIGNALS = {str(d): str(d) for d in range(10)} | {
    "*": "*",
    "#": "#",
    "10": "*",
    "11": "#",
    "A": "A",
    "B": "B",
    "C": "C",
    "D": "D",
    "12": "A",
    "13": "B",
    "14": "C",
    "15": "D",
}


@dataclass(frozen=True)
class InfoAnswer:
    """How to answer an INFO, and the DTMF digit it carried (None: none)."""

    status: int
    reason: str | None = None
    digit: str | None = None
    duration_ms: int = 0  # 0 = unknown


def read_info(content_type: str | None, body: bytes) -> InfoAnswer:
    ctype = content_type or ""
    digit, duration = None, 0
    if ctype == "application/dtmf-relay":
        fields: dict[str, str] = {}
        for line in body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            fields[name.strip().lower()] = value.strip()
        digit = DTMF_SIGNALS.get(fields.get("signal", "").upper())
        duration = int(fields["duration"]) if fields.get("duration", "").isdigit() else 0
    elif ctype == "application/dtmf":
        digit = DTMF_SIGNALS.get(body.decode("utf-8", "replace").strip().upper())
    if ctype in DTMF_TYPES and digit is None:
        return InfoAnswer(400, "Bad Request - unknown DTMF signal")
    # Other INFO bodies (or none: an INFO keepalive) get 200; see the module docstring.
    return InfoAnswer(200, None, digit, duration)


__all__ = ["DTMF_SIGNALS", "DTMF_TYPES", "InfoAnswer", "read_info"]
