"""The voice link: what the call asks of a voice backend, in the call's own terms.

The machine (gateway/call/machine.py) decides in terms of the call: stop the bot audio the
caller did not hear (with how much of each bot item was heard), ask for a reply, add a text to
the conversation, return a tool's result. A backend turns each into its own wire events:
gateway/realtime/link.py `RealtimeLink` for the Realtime GA API (barge-in becomes
response.cancel + conversation.item.truncate / delete). A second backend implements this
protocol; the machine's table does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class VoiceLink(Protocol):
    def stop_bot_audio(
        self, cancel_reply: bool, unheard: Sequence[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        """Events that stop the reply being generated (when `cancel_reply`) and make each bot
        item (item id, ms the caller heard; 0: none of it) match what was heard."""
        ...

    def request_reply(self, instructions: str | None) -> dict[str, Any]: ...

    def add_text(self, text: str, role: str) -> dict[str, Any]: ...

    def return_tool_result(self, call_id: str, output: str) -> dict[str, Any]: ...


__all__ = ["VoiceLink"]
