"""The GPT-Live form of the voice link (gateway/voice.py `VoiceLink`), one per session.

Requests (reference sections 5-8):
- stop_bot_audio: nothing. There is no cancel or truncate: the model yields by itself when the
  caller speaks, and the call's shallow playout queue stops the audio locally.
- request_reply (greeting, idle prompt, operator say with respond, digits):
  `session.instructions.append{delegation_id: null}`, which can make the model speak now.
- add_text (digits, operator say): `session.thinking.append{delegation_id: null}` (context the
  model knows without being told to say it). In Responses mode a caller's text (role "user":
  digits, an operator speaking as the caller) also goes to the backend as a user message with
  `response.create`, so a backend tool that needs the digits gets them (reference 8: "Keep the
  typed value as user data"), but only when no function call is waiting for its result: a
  `response.create` then would be refused as a partial batch.
- return_tool_result: `response.item.create{function_call_output}`; once every pending call is
  answered, `response.create` (a partial batch is refused). A result for a call of a delegation
  that a newer one superseded, or one the session never saw (it came from the session before
  a reconnect), is stale: discarded, nothing is sent.
- replay: nothing; a new session is seeded in `session.start{input}` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway import voice
from gateway.live import protocol as lp
from gateway.live.translate import REPLY_END_SILENCE_MS, LiveTranslator

# What the model is told when the call wants a reply and gives no words for it (digits were
# forwarded, the operator asked for an answer, a reply was owed).
DEFAULT_REPLY_INSTRUCTIONS = "Respond to the caller now."


class LiveLink:
    def __init__(
        self,
        responses_mode: bool = False,
        law: str = "PCMU",
        end_silence_ms: int = REPLY_END_SILENCE_MS,
    ) -> None:
        self.responses_mode = responses_mode
        self.translator = LiveTranslator(law, end_silence_ms)
        self.stale_results = 0  # results discarded (counted, not sent)

    def stop_bot_audio(
        self, cancel_reply: bool, unheard: Sequence[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        return []

    def request_reply(self, instructions: str | None) -> list[dict[str, Any]]:
        return [lp.instructions_append(instructions or DEFAULT_REPLY_INSTRUCTIONS)]

    def add_text(self, text: str, role: str) -> list[dict[str, Any]]:
        events = [lp.thinking_append(text)]
        if self.responses_mode and role == "user" and not self.translator.pending:
            events += [lp.user_message(text), lp.response_create()]
        return events

    def return_tool_result(self, call_id: str, output: str) -> list[dict[str, Any]]:
        pending = self.translator.pending
        if call_id not in pending:
            self.stale_results += 1  # superseded, or from an older session: nobody waits
            return []
        del pending[call_id]
        events = [lp.function_call_output(call_id, output)]
        if not pending:
            events.append(lp.response_create())
        return events

    def replay(self, turns: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return []

    def translate(self, server_event: Any) -> voice.VoiceEvent | list[voice.VoiceEvent] | None:
        return self.translator.translate(server_event)


__all__ = ["DEFAULT_REPLY_INSTRUCTIONS", "LiveLink"]
