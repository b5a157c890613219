"""The Realtime GA form of the voice link (gateway/voice.py `VoiceLink`): the call's requests
as Realtime client events, the Realtime server events as the call's reports (translate.py).

Barge-in, per docs/realtime-protocol.md section 5: the cancel goes first (a truncate or delete
of an item the response is still writing would race its next deltas), then each bot item the
caller did not hear completely is truncated at the heard position, or deleted when nothing of
it was heard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway import voice
from gateway.realtime import protocol
from gateway.realtime.translate import translate


class RealtimeLink:
    def stop_bot_audio(
        self, cancel_reply: bool, unheard: Sequence[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        events = [protocol.response_cancel()] if cancel_reply else []
        for item_id, heard_ms in unheard:
            if heard_ms > 0:
                events.append(protocol.item_truncate(item_id, 0, heard_ms))
            else:
                events.append(protocol.item_delete(item_id))
        return events

    def request_reply(self, instructions: str | None) -> list[dict[str, Any]]:
        return [protocol.response_create(instructions)]

    def add_text(self, text: str, role: str) -> list[dict[str, Any]]:
        return [protocol.user_text_message(text, "system" if role == "system" else "user")]

    def return_tool_result(self, call_id: str, output: str) -> list[dict[str, Any]]:
        return [protocol.function_call_output(call_id, output)]

    def replay(self, turns: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The conversation so far as text items: the bot's as assistant output text, the rest
        as user input text (a fresh session has no audio of them)."""
        events = []
        for role, text in turns:
            if role == "assistant":
                item = {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }
                events.append({"type": "conversation.item.create", "item": item})
            else:
                events.append(protocol.user_text_message(text))
        return events

    # Server event -> the call's report (gateway/voice.py), or None.
    translate: Callable[[Any], voice.VoiceEvent | None] = staticmethod(translate)


__all__ = ["RealtimeLink"]
