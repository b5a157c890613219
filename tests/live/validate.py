"""Contract checks of GPT-Live client events against the `openai` SDK's `openai.types.live`.

As tests/realtime/validate.py does for Realtime: the SDK union `ClientEvent` is re-tagged on
"type" (a failure names one event class), validated with strict=True, and unknown keys are
rejected recursively (the SDK models allow extras; the Live service rejects unknown fields with
`unknown_parameter`, reference section 1). Import from other test packages:
`from tests.live.validate import check_live_client_event`.
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.live import ClientEvent, ServerEvent

from tests.tools.sdk_models import event_dict, tagged_adapter, validated

CLIENT = tagged_adapter(ClientEvent)
SERVER = tagged_adapter(ServerEvent)


def check_live_client_event(event: dict[str, Any] | bytes | str) -> pydantic.BaseModel:
    """Validate one client event (dict or JSON frame); AssertionError names the problem."""
    return validated(
        CLIENT, event_dict(event), "live client event", "openai.types.live", strict=True
    )


def live_client_event_ok(event: dict[str, Any] | bytes | str) -> bool:
    try:
        check_live_client_event(event)
    except AssertionError:
        return False
    return True


def check_live_server_event(event: dict[str, Any] | bytes | str) -> pydantic.BaseModel:
    """Validate a server event a test server sends (so tests speak the real protocol)."""
    return validated(SERVER, event_dict(event), "live server event", "openai.types.live")
