"""The control API's request bodies: `POST /calls` and `POST /calls/{id}/say`, validated.

Pure functions (a JSON object in, a request value or `ControlError(400)` naming the field out);
gateway/control.py serves them. Unknown fields are errors, so a typo is reported rather than
silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

# A number for POST /calls: digits with an optional leading + (E.164) and the DTMF keys a PBX
# may need in a dial string; 32 is generous (E.164 is at most 15 digits).
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
ROLES = ("system", "user")


class ControlError(Exception):
    """An error the API reports as `{"error": message}` with HTTP `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """A validated `POST /calls` body."""

    to: str  # a sip:/sips: URI or a number (dialled through `registration`)
    instructions: str
    registration: str | None = None  # the name of a configured registration/trunk
    from_: str | None = None  # caller identity to present (`from` in JSON)

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "instructions": self.instructions,
            "registration": self.registration,
            "from": self.from_,
        }


@dataclass(frozen=True, slots=True)
class SayRequest:
    """A validated `POST /calls/{id}/say` body."""

    text: str
    # "system" by default: an operator injecting "tell the caller their taxi is outside" is
    # an instruction to the model, not something the caller said.
    role: Literal["system", "user"] = "system"
    respond: bool = True


def parse_json_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise ControlError(400, "body: a JSON object is required")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ControlError(400, "body: expected a JSON object")
    return value


def _check_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    # Unknown fields are errors: a typo such as "instruction" would otherwise be ignored.
    for key in body:
        if key not in allowed:
            raise ControlError(400, f"{key}: unknown field (allowed: {', '.join(allowed)})")


def _string(body: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ControlError(400, f"{key}: required")
        return None
    if not isinstance(value, str):
        raise ControlError(400, f"{key}: expected a string")
    if not value.strip():
        raise ControlError(400, f"{key}: must not be empty")
    return value.strip() if key != "instructions" and key != "text" else value


def _check_destination(key: str, value: str) -> None:
    compact = value.replace(" ", "").replace("-", "")
    if value.lower().startswith(("sip:", "sips:")):
        from sip.uri import UriError, parse_uri

        try:
            parse_uri(value)
        except (UriError, ValueError) as exc:
            raise ControlError(400, f"{key}: {value!r} is not a valid SIP URI ({exc})") from None
        return
    if not _NUMBER.match(compact):
        raise ControlError(
            400, f"{key}: {value!r} is not a sip:/sips: URI or a phone number (digits, + * #)"
        )


def parse_originate(body: dict[str, Any]) -> OriginateRequest:
    """Validate a `POST /calls` body; ControlError(400) names the field."""
    _check_fields(body, ("to", "instructions", "registration", "from"))
    to = _string(body, "to", required=True)
    assert to is not None
    _check_destination("to", to)
    instructions = _string(body, "instructions", required=True)
    assert instructions is not None
    registration = _string(body, "registration", required=False)
    caller = _string(body, "from", required=False)
    if caller is not None:
        _check_destination("from", caller)
    return OriginateRequest(
        to=to, instructions=instructions, registration=registration, from_=caller
    )


def parse_say(body: dict[str, Any]) -> SayRequest:
    """Validate a `POST /calls/{id}/say` body; ControlError(400) names the field."""
    _check_fields(body, ("text", "role", "respond"))
    text = _string(body, "text", required=True)
    assert text is not None
    role = body.get("role", "system")
    if role not in ROLES:
        raise ControlError(400, f"role: {role!r} is not one of {', '.join(ROLES)}")
    respond = body.get("respond", True)
    if not isinstance(respond, bool):
        raise ControlError(400, "respond: expected true or false")
    return SayRequest(text=text, role=role, respond=respond)


__all__ = [
    "ROLES",
    "ControlError",
    "OriginateRequest",
    "SayRequest",
    "parse_json_body",
    "parse_originate",
    "parse_say",
]
