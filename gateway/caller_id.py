"""The caller ID an originated call (`POST /calls` `from`) may present (issue 9).

Only what the trunk's configuration allows: the registration's username and its
`allowed_caller_ids`. A control-API client choosing any other number would make the gateway a
caller-ID spoofing service on a real trunk (the PBX or carrier usually passes the From user on
as the calling number), so anything else is refused with 403 before a packet is sent.
"""

from __future__ import annotations

from typing import Protocol

from sip.uri import UriError, parse_uri


class TrunkIdentity(Protocol):
    """What a [[registrations]] entry says about the caller IDs it may present
    (gateway.config RegistrationConfig matches it)."""

    @property
    def name(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def allowed_caller_ids(self) -> tuple[str, ...]: ...


class CallerIdRefused(ValueError):
    """The requested caller ID is not one the trunk allows (the control API answers 403)."""

    status = 403

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def requested_user(value: str) -> str:
    """The user part the From header would carry: a SIP URI's user, or the compact number."""
    if value.lower().startswith(("sip:", "sips:")):
        try:
            return parse_uri(value).user or ""
        except (UriError, ValueError):
            return ""
    return value.replace(" ", "").replace("-", "")


def caller_id_for(reg: TrunkIdentity | None, requested: str | None) -> str | None:
    """The From user to send (None = the gateway's default); CallerIdRefused otherwise."""
    if requested is None:
        return None
    user = requested_user(requested)
    if reg is None:
        raise CallerIdRefused(
            f"from: {requested!r} needs a registration that allows it "
            "(registrations[].allowed_caller_ids); none is configured",
        )
    allowed = (reg.username, *reg.allowed_caller_ids)
    if user not in allowed:
        raise CallerIdRefused(
            f"from: {requested!r} is not a caller ID registration {reg.name or reg.username!r} "
            f"may present (allowed: {', '.join(allowed)})",
        )
    return user


__all__ = ["CallerIdRefused", "TrunkIdentity", "caller_id_for", "requested_user"]
