"""Delegation in a simulated GPT-Live session (gpt-live-protocol.md section 6): the scripted
backend that calls function tools in Responses mode, client delegations, `session.update`, and
the Decisions commands the simulator does not implement.

Responses mode, one batch of calls: `session.delegation.created{target: responses}`, then
`response.event` envelopes `response.created` -> per call `response.output_item.added` ->
`response.function_call_arguments.delta` / `.done` (no name, no call_id) ->
`response.output_item.done{function_call, call_id, name, arguments}` -> `response.completed`
with `output: []` (lifecycle snapshots carry no output, DEL). `response.create` is refused until
every call of the batch has its `function_call_output` (a partial batch is an error, LK); then the
continuation is spoken. Barge-in does not cancel delegated work (LIVE). Client mode refuses
`response.*` with "response.item.create requires Responses delegation." (TRV).

`Delegation` is one part of `LiveSession` (session.py), which supplies `options`, `config`,
`send`/`send_error`, `say`, `tone` and the session clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.live.simulator.options import LiveToolCallRule
from gateway.sim_shared.records import new_id


@dataclass(slots=True)
class PendingCall:
    call_id: str
    name: str
    arguments: str
    delegation_id: str
    rule: LiveToolCallRule
    output: str | list[Any] | None = None


@dataclass(frozen=True, slots=True)
class DelegationRecord:
    """A delegation the simulator made: what a test inspects."""

    id: str
    target: str  # "responses" | "client"
    calls: tuple[str, ...]  # tool names called (client mode: the rule that fired)
    trigger_text: str


class Delegation:
    # Supplied by LiveSession.
    options: Any
    config: dict[str, Any]
    now_ms: int
    delegation_type: str

    def _init_delegation(self) -> None:
        self.delegations: list[DelegationRecord] = []
        self.client_delegations: set[str] = set()
        self.pending_calls: dict[str, PendingCall] = {}
        self.answered_calls: list[PendingCall] = []  # every call whose output came back
        self.response_items: list[dict[str, Any]] = []  # response.item.create items, in order
        self._fired_rules: set[int] = set()
        self._sequence = 0
        self._unread_texts: list[str] = []  # user messages since the last response.create

    # Supplied by LiveSession (declared for readers and type checkers).
    async def send(self, event: dict[str, Any], client_event_id: str | None = None) -> None:
        raise NotImplementedError

    async def send_error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        raise NotImplementedError

    def say(self, audio: bytes, transcript: str, label: str = "") -> None:
        raise NotImplementedError

    def tone(self, ms: int, hz: float) -> bytes:
        raise NotImplementedError

    # -- which tools the backend has --------------------------------------------------------

    def _responses_config(self) -> dict[str, Any]:
        delegation = self.config.get("delegation") or {}
        return dict(delegation.get("responses") or {})

    def function_tools(self) -> list[str]:
        return [
            str(tool["name"])
            for tool in self._responses_config().get("tools") or []
            if tool.get("type") == "function"
        ]

    def delegation_id_problem(self, delegation_id: str | None) -> str | None:
        """Why an append's delegation_id is refused, or None (section 6)."""
        if delegation_id is None:
            return None
        if self.delegation_type == "responses":
            return "Non-null IDs are not accepted with Responses delegation."
        if delegation_id not in self.client_delegations:
            return f"Unknown delegation_id '{delegation_id}'."  # ASSUMED wording
        return None

    # -- the script ---------------------------------------------------------------------------

    async def delegate_on(self, utterance: int | None, text: str) -> bool:
        """Fire the tool rules matching this utterance or text; True when the model delegated
        (it then does not answer the utterance itself)."""
        if self.delegation_type not in ("responses", "client"):
            return False
        offered = set(self.function_tools())
        matching = [
            (index, rule)
            for index, rule in enumerate(self.options.tool_calls)
            if rule.matches(utterance, text)
            and not (rule.once and index in self._fired_rules)
            and (self.delegation_type == "client" or rule.name in offered)
        ]
        if not matching:
            return False
        if self.delegation_type == "client":
            index, rule = matching[0]
            self._fired_rules.add(index)
            delegation_id = new_id("item")
            self.client_delegations.add(delegation_id)
            self.delegations.append(DelegationRecord(delegation_id, "client", (rule.name,), text))
            await self.send(
                {
                    "type": "session.delegation.created",
                    "delegation": {"id": delegation_id, "type": "delegation", "target": "client"},
                    "offset_ms": self.now_ms,
                }
            )
            return True
        if not self._responses_config().get("parallel_tool_calls", False):
            matching = matching[:1]
        for index, _ in matching:
            self._fired_rules.add(index)
        await self._call_tools([rule for _, rule in matching], text)
        return True

    def _snapshot(self, response_id: str, status: str) -> dict[str, Any]:
        config = self._responses_config()
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": str(config.get("model", "gpt-5")),
            "status": status,
            "output": [],  # lifecycle snapshots carry no output (DEL)
            "parallel_tool_calls": bool(config.get("parallel_tool_calls", False)),
            "tool_choice": "auto",
            "tools": [],
        }

    async def _response_event(self, delegation_id: str, event: dict[str, Any]) -> None:
        self._sequence += 1
        event["sequence_number"] = self._sequence
        await self.send({"type": "response.event", "delegation_id": delegation_id, "event": event})

    async def _call_tools(self, rules: list[LiveToolCallRule], text: str) -> None:
        delegation_id = new_id("item")
        response_id = new_id("resp")
        self.delegations.append(
            DelegationRecord(delegation_id, "responses", tuple(r.name for r in rules), text)
        )
        await self.send(
            {
                "type": "session.delegation.created",
                "delegation": {
                    "id": delegation_id,
                    "type": "delegation",
                    "target": "responses",
                    "response_id": response_id,
                },
                "offset_ms": self.now_ms,
            }
        )
        await self._response_event(
            delegation_id,
            {"type": "response.created", "response": self._snapshot(response_id, "in_progress")},
        )
        for output_index, rule in enumerate(rules):
            call = PendingCall(
                new_id("call"), rule.name, rule.arguments_json(), delegation_id, rule
            )
            self.pending_calls[call.call_id] = call
            item_id = new_id("fc")
            item = {
                "type": "function_call",
                "id": item_id,
                "call_id": call.call_id,
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
            await self._response_event(
                delegation_id,
                {"type": "response.output_item.added", "output_index": output_index, "item": item},
            )
            await self._response_event(
                delegation_id,
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item_id,
                    "output_index": output_index,
                    "delta": call.arguments,
                },
            )
            await self._response_event(
                delegation_id,
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": output_index,
                    "arguments": call.arguments,
                },
            )
            done = {**item, "arguments": call.arguments, "status": "completed"}
            await self._response_event(
                delegation_id,
                {"type": "response.output_item.done", "output_index": output_index, "item": done},
            )
        await self._response_event(
            delegation_id,
            {"type": "response.completed", "response": self._snapshot(response_id, "completed")},
        )

    # -- response.* commands ------------------------------------------------------------------

    async def _requires_responses(self, kind: str, event_id: str | None) -> bool:
        if self.delegation_type == "responses":
            return True
        await self.send_error(
            "invalid_delegation_type",  # the service's code is UNKNOWN (TRV shows none)
            f"{kind} requires Responses delegation.",
            None,
            event_id,
        )
        return False

    async def on_response_item_create(self, event: dict[str, Any], event_id: str | None) -> None:
        if not await self._requires_responses("response.item.create", event_id):
            return
        item = event["item"]
        kind = item.get("type", "message")
        if kind == "function_call_output":
            call = self.pending_calls.get(item["call_id"])
            if call is None:
                # A stale result, or one for a call that never was (ASSUMED code).
                await self.send_error(
                    "invalid_value",
                    f"No pending function call with call_id '{item['call_id']}'.",
                    "item.call_id",
                    event_id,
                )
                return
            call.output = item["output"]
        elif kind == "message":
            content = item["content"]
            text = (
                content
                if isinstance(content, str)
                else " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            )
            self._unread_texts.append(text)
        self.response_items.append(item)  # no acknowledgement (section 3a)

    async def on_response_create(self, event: dict[str, Any], event_id: str | None) -> None:
        if not await self._requires_responses("response.create", event_id):
            return
        missing = [c.call_id for c in self.pending_calls.values() if c.output is None]
        if missing:
            await self.send_error(
                "missing_function_call_output",  # ASSUMED code: a partial batch is refused (LK)
                "Every pending function call needs a function_call_output before "
                f"response.create; missing: {', '.join(missing)}.",
                None,
                event_id,
            )
            return
        calls = list(self.pending_calls.values())
        self.pending_calls.clear()
        self.answered_calls += calls
        texts, self._unread_texts = self._unread_texts, []
        if not calls and await self.delegate_on(None, " ".join(texts)):
            return
        delegation_id = calls[-1].delegation_id if calls else new_id("item")
        response_id = new_id("resp")
        await self._response_event(
            delegation_id,
            {"type": "response.created", "response": self._snapshot(response_id, "in_progress")},
        )
        await self._response_event(
            delegation_id,
            {"type": "response.completed", "response": self._snapshot(response_id, "completed")},
        )
        # The backend's continuation, spoken by the Live model in its own words.
        spoken = " ".join(c.rule.continuation_text for c in calls) if calls else "Noted."
        self.say(self.tone(self.options.continuation_ms, 660.0), spoken, "continuation")

    # -- session.update -----------------------------------------------------------------------

    async def on_session_update(self, event: dict[str, Any], event_id: str | None) -> None:
        update = event["session"]
        if "delegation" in update:
            new = update["delegation"] or {"type": "client"}
            if new["type"] != self.delegation_type:
                await self.send_error(
                    "immutable_field_update",
                    "The delegation type cannot change after the session has started.",
                    "session.delegation.type",
                    event_id,
                )
                return
            current = dict(self.config.get("delegation") or {"type": "client"})
            if "acknowledgement_delay_ms" in new:
                current["acknowledgement_delay_ms"] = new["acknowledgement_delay_ms"]
            for block in ("responses", "decisions"):
                if new.get(block):
                    current[block] = {**(current.get(block) or {}), **new[block]}
            self.config["delegation"] = current
        if "triggers" in update:
            self.config["triggers"] = list(update["triggers"])
        await self.send({"type": "session.updated", "session": self.config}, event_id)

    # -- Decisions: not implemented -----------------------------------------------------------

    async def _no_decisions(self, event_id: str | None) -> None:
        await self.send_error(
            "unsupported",  # ASSUMED: a limit of the simulator, not of the service
            "This simulator does not implement Decisions.",
            "type",
            event_id,
        )

    async def on_decision_create(self, event: dict[str, Any], event_id: str | None) -> None:
        await self._no_decisions(event_id)

    async def on_decision_item_create(self, event: dict[str, Any], event_id: str | None) -> None:
        await self._no_decisions(event_id)

    async def on_decision_item_delete(self, event: dict[str, Any], event_id: str | None) -> None:
        await self._no_decisions(event_id)
