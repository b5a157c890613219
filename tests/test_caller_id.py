"""gateway/caller_id.py: an originated call presents only the caller IDs its trunk allows."""

from __future__ import annotations

import pytest

from gateway.caller_id import CallerIdRefused, caller_id_for, requested_user
from gateway.config import RegistrationConfig

TRUNK = RegistrationConfig(
    registrar="sip:pbx.example", username="100", name="pbx", allowed_caller_ids=("+15550001",)
)


def test_default_is_the_gateways_own() -> None:
    assert caller_id_for(TRUNK, None) is None
    assert caller_id_for(None, None) is None


@pytest.mark.parametrize(
    ("requested", "user"),
    [
        ("100", "100"),
        ("+15550001", "+15550001"),
        ("+1 555-0001", "+15550001"),
        ("sip:100@x", "100"),
    ],
)
def test_allowed_caller_ids(requested: str, user: str) -> None:
    assert caller_id_for(TRUNK, requested) == user


@pytest.mark.parametrize("requested", ["+19998887777", "sip:ceo@bank.example", "1000", "10"])
def test_others_are_refused_with_403(requested: str) -> None:
    with pytest.raises(CallerIdRefused) as info:
        caller_id_for(TRUNK, requested)
    assert info.value.status == 403
    assert "'pbx'" in info.value.message and "+15550001" in info.value.message


def test_no_registration_allows_no_caller_id() -> None:
    with pytest.raises(CallerIdRefused) as info:
        caller_id_for(None, "100")
    assert info.value.status == 403 and "allowed_caller_ids" in info.value.message


def test_requested_user() -> None:
    assert requested_user("sips:alice@example.com;transport=tls") == "alice"
    assert requested_user("sip:example.com") == ""
