"""Contract checks of Realtime events against the `openai` SDK's GA pydantic models.

The SDK models use `extra="allow"`, so unknown or misspelled keys would validate silently; these
helpers walk `__pydantic_extra__` and reject them (the GA service rejects unknown parameters).
The SDK union is re-tagged on "type" so a failure names one event class, not twenty.
Import from other test packages: `from tests.realtime.validate import check_client_event`.
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

from tests.tools.sdk_models import event_dict, tagged_adapter, validated

CLIENT = tagged_adapter(RealtimeClientEvent)
SERVER = tagged_adapter(RealtimeServerEvent)

# Session fields the service returns but the SDK's request model (reused for session.created
# and session.updated) does not declare.
_SERVER_SESSION_EXTRAS = frozenset({"$.session.id", "$.session.object", "$.session.expires_at"})


def check_client_event(event: dict[str, Any] | bytes | str) -> pydantic.BaseModel:
    """Validate one client event (dict or JSON frame); AssertionError names the problem."""
    return validated(CLIENT, event_dict(event), "client event", "the GA schema", strict=True)


def client_event_ok(event: dict[str, Any]) -> bool:
    try:
        check_client_event(event)
    except AssertionError:
        return False
    return True


def check_server_event(
    event: dict[str, Any] | bytes | str, strict: bool = True
) -> pydantic.BaseModel:
    """Validate a server event; `strict` also rejects unknown keys (bar known session extras)."""
    allowed_extra = _SERVER_SESSION_EXTRAS if strict else None
    return validated(
        SERVER, event_dict(event), "server event", "the GA schema", None, allowed_extra
    )
