"""The output side of a simulated session: response.create / response.cancel, the one active
response, and what a response says (the caller's utterance or a scripted reply played back in
irregular deltas, scripted function calls, scripted outcomes) with its wire form.

`Responses` is one part of `SimSession` (session.py), which supplies the state, `options`,
`send`/`send_error`/`spawn` and, from input_audio.py, `_arm_idle_timeout`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

from gateway.realtime.simulator.items import Item, Response, new_id
from gateway.realtime.simulator.options import ToolCallRule
from gateway.sim_shared.audio import BYTES_PER_MS, convert, tone


class Responses:
    async def on_response_create(self, event: dict[str, Any], event_id: str | None) -> None:
        await self._start_response(event_id, event.get("response") or {})

    async def on_response_cancel(self, event: dict[str, Any], event_id: str | None) -> None:
        response = self.response
        wanted = event.get("response_id")
        if (
            response is None
            or response.done
            or response.cancel_reason
            or (wanted and wanted != response.id)
        ):
            await self.send_error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                None,
                event_id,
            )
            return
        response.cancel_reason = "client_cancelled"

    async def _start_response(
        self, event_id: str | None, params: dict[str, Any] | None = None
    ) -> None:
        if self.response is not None and not self.response.done:
            await self.send_error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.response.id}. "
                "Wait until the response is finished before creating a new one.",
                None,
                event_id,
            )
            return
        response = Response(new_id("resp"))
        self.response = response
        self.responses.append(response)
        # response.created is on the wire before the generator can emit anything. Client frames
        # are handled one at a time, so no cancel can slip in between.
        await self.send(
            {"type": "response.created", "response": self._response_wire(response, "in_progress")}
        )
        outcomes = self.options.response_outcomes
        if len(self.responses) <= len(outcomes):
            response.outcome = outcomes[len(self.responses) - 1]
        deferred, self._deferred_transcriptions = self._deferred_transcriptions, []
        for completed in deferred:
            await self.send(completed)
        # The task is not kept in the Response: cancelled when the session ends, it would hold
        # its coroutine's frames (through its CancelledError), and they the session, a cycle
        # that kept every session ended during a response, with all its conversation audio,
        # until a full collection (issue 14, tests/realtime/test_simulator_freed.py).
        self.spawn(self._generate(response, params or {}))

    def _response_wire(
        self, response: Response, status: str, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": response.cancel_reason}
        elif status == "failed":
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "server_error",
                    "message": "The server had an error while processing your request.",
                },
            }
        elif status == "incomplete":
            reason = "content_filter" if response.outcome == "incomplete_silent" else None
            details = {"type": "incomplete", "reason": reason or "max_output_tokens"}
        elif status == "completed":
            details = None
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": [item.wire() for item in response.output] if status != "in_progress" else [],
            "conversation_id": "conv_sim",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {
                "output": {
                    "format": self.config["audio"]["output"]["format"],
                    "voice": self.config["audio"]["output"]["voice"],
                }
            },
            "metadata": None,
            "usage": usage,
        }

    def _pick_rules(self) -> list[ToolCallRule]:
        """The rules this response fires: the first match, or every match when
        `parallel_tool_calls` (several function_call items in one response)."""
        if not self.pending_inputs_from_user:
            return []
        picked = []
        for index, rule in enumerate(self.options.tool_calls):
            if rule.once and index in self.fired_rules:
                continue
            if rule.matches(self.user_turns, self.last_user_text):
                self.fired_rules.add(index)
                picked.append(rule)
                if not self.options.parallel_tool_calls:
                    break
        return picked

    async def _generate(self, response: Response, params: dict[str, Any]) -> None:
        rules = self._pick_rules()
        tool_result = self.pending_tool_result
        self.pending_inputs_from_user = False
        self.pending_tool_result = None
        output_ms = 0
        outcome = response.outcome
        if outcome in ("failed", "incomplete_silent"):
            await asyncio.sleep(self.options.delta_interval_s)  # it fails before any output
        elif rules:
            output_index = 0
            for rule in rules:
                if response.cancel_reason is not None:
                    break
                if rule.preamble_ms > 0:
                    preamble = tone(rule.preamble_ms, self.output_format, hz=330.0)
                    output_ms += await self._emit_audio_message(
                        response, output_index, preamble, "Let me check that for you."
                    )
                    output_index += 1
                if response.cancel_reason is None:
                    await self._emit_function_call(response, rule, output_index)
                    output_index += 1
        else:
            audio = self._reply_audio()
            if outcome == "incomplete":  # cut by max_output_tokens halfway
                audio = audio[: len(audio) // 2]
            output_ms = await self._emit_audio_message(
                response, 0, audio, self._reply_text(tool_result)
            )
        if response.cancel_reason:
            status = "cancelled"
        elif outcome == "failed":
            status = "failed"
        elif outcome in ("incomplete", "incomplete_silent"):
            status = "incomplete"
        else:
            status = "completed"
        input_tokens = 40 + 10 * len(self.items)
        usage = {
            "total_tokens": input_tokens + output_ms // 50,
            "input_tokens": input_tokens,
            "output_tokens": output_ms // 50,
            "input_token_details": {
                "text_tokens": 40,
                "audio_tokens": input_tokens - 40,
                "image_tokens": 0,
                "cached_tokens": 0,
            },
            "output_token_details": {"text_tokens": 0, "audio_tokens": output_ms // 50},
        }
        await self.send(
            {"type": "response.done", "response": self._response_wire(response, status, usage)}
        )
        # Only now may a new response start (response.create before this gets the conflict error).
        response.done = True
        self._arm_idle_timeout(output_ms)
        await self.send(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                    {
                        "name": "tokens",
                        "limit": 40000,
                        "remaining": 40000 - input_tokens,
                        "reset_seconds": 0.5,
                    },
                ],
            }
        )

    async def _emit_function_call(
        self, response: Response, rule: ToolCallRule, output_index: int = 0
    ) -> None:
        item = Item(
            new_id("item"),
            "function_call",
            call_id=new_id("call"),
            name=rule.name,
            arguments="",
            status="in_progress",
        )
        previous = next(reversed(self.items), None)
        self.items[item.id] = item
        response.output.append(item)
        ids = {"response_id": response.id, "item_id": item.id, "output_index": output_index}
        await self._output_item("added", response, output_index, item, previous)
        arguments = rule.arguments_json()
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            await asyncio.sleep(self.options.delta_interval_s)
            await self.send(
                {
                    "type": "response.function_call_arguments.delta",
                    **ids,
                    "call_id": item.call_id,
                    "delta": piece,
                }
            )
        item.arguments = arguments
        item.status = "completed"
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "call_id": item.call_id,
                "name": rule.name,
                "arguments": arguments,
            }
        )
        await self._output_item("done", response, output_index, item, previous)

    async def _output_item(
        self, phase: str, response: Response, output_index: int, item: Item, previous: str | None
    ) -> None:
        """An output item's `response.output_item.<phase>` and then its
        `conversation.item.<phase>` (phase: added or done), as the service sends them."""
        wire = item.wire()
        await self.send(
            {
                "type": f"response.output_item.{phase}",
                "response_id": response.id,
                "output_index": output_index,
                "item": wire,
            }
        )
        await self.send(
            {
                "type": f"conversation.item.{phase}",
                "item": item.wire(),
                "previous_item_id": previous,
            }
        )

    def _reply_audio(self) -> bytes:
        fmt = self.output_format
        if self.options.reply_audio is not None:
            return convert(self.options.reply_audio, self.options.reply_format, fmt)
        if self.last_utterance:
            return convert(self.last_utterance, self.last_utterance_format, fmt)
        return tone(self.options.default_reply_ms, fmt)

    def _reply_text(self, tool_result: Item | None) -> str:
        if self.options.reply_text is not None:
            return self.options.reply_text
        if tool_result is not None:
            return f"The tool returned {tool_result.output}."
        if self.last_user_text:
            return f"You said: {self.last_user_text}"
        return "This is the Realtime simulator."

    def _delta_pause(self, chunk_bytes: int) -> float:
        pace = self.options.realtime_pace
        if pace <= 0:
            return self.options.delta_interval_s
        return chunk_bytes / BYTES_PER_MS[self.output_format] / 1000.0 / pace

    async def _emit_audio_message(
        self, response: Response, output_index: int, audio: bytes, text: str
    ) -> int:
        fmt = self.output_format
        item = Item(
            new_id("item"),
            "message",
            role="assistant",
            audio_format=fmt,
            has_audio=True,
            status="in_progress",
        )
        previous = next(reversed(self.items), None)
        self.items[item.id] = item
        response.output.append(item)
        ids = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        await self._output_item("added", response, output_index, item, previous)
        await self.send(
            {
                "type": "response.content_part.added",
                **ids,
                "part": {"type": "audio", "transcript": ""},
            }
        )
        words = text.split()
        sizes = itertools.cycle(self.options.delta_sizes)
        offset = 0
        word_index = 0
        spoken: list[str] = []
        while offset < len(audio):
            if response.cancel_reason is not None:
                if response.late_deltas_sent >= self.options.late_deltas:
                    break
                response.late_deltas_sent += 1  # already on its way when the cancel came
            chunk = audio[offset : offset + next(sizes)]
            offset += len(chunk)
            item.audio += chunk
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    **ids,
                    "delta": base64.b64encode(chunk).decode(),
                }
            )
            if word_index < len(words):
                delta = ("" if word_index == 0 else " ") + words[word_index]
                spoken.append(words[word_index])
                word_index += 1
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **ids, "delta": delta}
                )
            await asyncio.sleep(self._delta_pause(len(chunk)))
        if response.cancel_reason is None and word_index < len(words):
            rest = words[word_index:]
            spoken.extend(rest)
            await self.send(
                {
                    "type": "response.output_audio_transcript.delta",
                    **ids,
                    "delta": " " + " ".join(rest),
                }
            )
        item.transcript = " ".join(spoken)
        item.status = "incomplete" if response.cancel_reason else "completed"
        await self.send({"type": "response.output_audio.done", **ids})
        await self.send(
            {"type": "response.output_audio_transcript.done", **ids, "transcript": item.transcript}
        )
        await self.send(
            {
                "type": "response.content_part.done",
                **ids,
                "part": {"type": "audio", "transcript": item.transcript},
            }
        )
        await self._output_item("done", response, output_index, item, previous)
        return item.audio_ms
