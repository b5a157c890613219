"""Delegation on the GPT-Live simulator, with a raw WebSocket client: a scripted Responses
function call (delegation.created, then the response.event sequence with the call read from
output_item.done), the function_call_output loop (response.create refused until every call of
the batch is answered), the spoken continuation, client mode and session.update."""

from __future__ import annotations

from typing import Any

from gateway.live.simulator.options import LiveToolCallRule
from tests.live_simulator.raw_client import RawLiveClient
from tests.realtime.conftest import silence, speech_like

END_CALL = {"type": "function", "name": "end_call", "description": "Hang up", "parameters": {}}
TRANSFER = {"type": "function", "name": "transfer_call", "parameters": {}}


def responses(*tools: dict[str, Any], parallel: bool = False) -> dict[str, Any]:
    return {
        "type": "responses",
        "responses": {"model": "gpt-5.4", "tools": list(tools), "parallel_tool_calls": parallel},
    }


def nested(ws: RawLiveClient, since: int = 0) -> list[dict[str, Any]]:
    return [e["event"] for e in ws.events[since:] if e["type"] == "response.event"]


async def test_a_scripted_call_after_an_utterance_and_its_result_loop(live_sim, client) -> None:
    rule = LiveToolCallRule(
        "end_call", {"reason": "bye"}, on_utterance=1, continuation_text="Goodbye"
    )
    sim = await live_sim(delta_ms=20, tool_calls=(rule,))
    ws = await client(sim)
    await ws.start(delegation=responses(END_CALL))
    await ws.append(speech_like(500) + silence(600))
    created = await ws.wait_for(lambda e: e["type"] == "session.delegation.created")
    delegation = created["delegation"]
    assert delegation["target"] == "responses" and delegation["id"].startswith("item_")
    await ws.wait_for(
        lambda e: e["type"] == "response.event" and e["event"]["type"] == "response.completed"
    )
    events = nested(ws)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert all(e["delegation_id"] == delegation["id"] for e in ws.of("response.event"))
    args_done, item_done, completed = events[3], events[4], events[5]
    assert "name" not in args_done and "call_id" not in args_done
    item = item_done["item"]
    assert (item["type"], item["name"], item["arguments"], item["status"]) == (
        "function_call",
        "end_call",
        '{"reason":"bye"}',
        "completed",
    )
    assert completed["response"]["output"] == []
    # The model did not echo the utterance: it delegated.
    assert not ws.output_audio().strip(b"\xff")
    mark = len(ws.events)
    await ws.send({"type": "response.create", "event_id": "early"})
    early = await ws.wait_for(lambda e: e["type"] == "error", since=mark)
    assert early["error"]["client_event_id"] == "early"
    assert item["call_id"] in early["error"]["message"]
    output = {
        "type": "function_call_output",
        "call_id": item["call_id"],
        "output": '{"status":"ending"}',
    }
    await ws.send({"type": "response.item.create", "item": output})
    await ws.send({"type": "response.create"})
    await ws.wait_for(
        lambda e: "".join(d["delta"] for d in ws.of("session.output_transcript.delta")) == "Goodbye"
    )
    assert ws.output_audio(mark).strip(b"\xff")  # the continuation was spoken
    session = await sim.wait_live_session()
    assert [c.name for c in session.answered_calls] == ["end_call"]
    assert session.answered_calls[0].output == '{"status":"ending"}'


async def test_a_partial_batch_is_refused(live_sim, client) -> None:
    rules = (
        LiveToolCallRule("end_call", on_utterance=1),
        LiveToolCallRule("transfer_call", {"to": "sip:desk@example.com"}, on_utterance=1),
    )
    sim = await live_sim(delta_ms=20, tool_calls=rules)
    ws = await client(sim)
    await ws.start(delegation=responses(END_CALL, TRANSFER, parallel=True))
    await ws.append(speech_like(500) + silence(600))
    await ws.wait_for(
        lambda e: e["type"] == "response.event" and e["event"]["type"] == "response.completed"
    )
    calls = [e["item"] for e in nested(ws) if e["type"] == "response.output_item.done"]
    assert [c["name"] for c in calls] == ["end_call", "transfer_call"]
    first = {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "{}"}
    await ws.send({"type": "response.item.create", "item": first})
    mark = len(ws.events)
    await ws.send({"type": "response.create", "event_id": "partial"})
    error = await ws.wait_for(lambda e: e["type"] == "error", since=mark)
    assert calls[1]["call_id"] in error["error"]["message"]
    assert calls[0]["call_id"] not in error["error"]["message"]
    second = {"type": "function_call_output", "call_id": calls[1]["call_id"], "output": "{}"}
    await ws.send({"type": "response.item.create", "item": second})
    await ws.send({"type": "response.create"})
    await ws.wait_for(
        lambda e: len([n for n in nested(ws) if n["type"] == "response.completed"]) == 2
    )
    stale = {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "{}"}
    mark = len(ws.events)
    await ws.send({"type": "response.item.create", "item": stale, "event_id": "stale"})
    error = await ws.wait_for(lambda e: e["type"] == "error", since=mark)
    assert error["error"]["param"] == "item.call_id"


async def test_a_call_triggered_by_keypad_text_and_an_unoffered_tool_is_never_called(
    live_sim, client
) -> None:
    rules = (
        LiveToolCallRule("send_dtmf", on_utterance=1),  # not offered: never called
        LiveToolCallRule("transfer_call", when_text_contains="pressed 0"),
    )
    sim = await live_sim(delta_ms=20, tool_calls=rules, append_ack_ms=(600, 600))
    ws = await client(sim)
    await ws.start(delegation=responses(TRANSFER))
    await ws.append(speech_like(400) + silence(600))
    session = await sim.wait_live_session()
    await ws.wait_for(
        lambda e: session.utterances and session.utterances[0].audio in ws.output_audio()
    )
    assert ws.of("session.delegation.created") == []  # the utterance was echoed instead
    await ws.send(
        {
            "type": "session.thinking.append",
            "content": "The caller pressed 0 on the keypad.",
            "delegation_id": None,
        }
    )
    await ws.append(silence(700))
    await ws.wait_for(lambda e: e["type"] == "session.delegation.created")
    assert session.delegations[-1].calls == ("transfer_call",)
    assert session.model_texts("thinking") == ["The caller pressed 0 on the keypad."]
    # In Responses mode a non-null delegation_id is refused.
    await ws.send(
        {
            "type": "session.commentary.append",
            "content": "x",
            "delegation_id": session.delegations[-1].id,
        }
    )
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert error["error"]["param"] == "delegation_id"


async def test_client_mode_delegates_without_tools_and_refuses_response_commands(
    live_sim, client
) -> None:
    sim = await live_sim(delta_ms=20, tool_calls=(LiveToolCallRule("lookup", on_utterance=1),))
    ws = await client(sim)
    await ws.start()
    await ws.append(speech_like(400) + silence(600))
    created = await ws.wait_for(lambda e: e["type"] == "session.delegation.created")
    assert created["delegation"]["target"] == "client"
    assert "response_id" not in created["delegation"]
    await ws.send(
        {
            "type": "response.item.create",
            "item": {"type": "function_call_output", "call_id": "c", "output": "{}"},
            "event_id": "r",
        }
    )
    await ws.send({"type": "response.create"})
    await ws.wait_for(lambda e: len(ws.of("error")) == 2)
    item_error, create_error = ws.of("error")
    assert item_error["error"]["message"] == "response.item.create requires Responses delegation."
    assert item_error["error"]["type"] == "invalid_request_error"
    assert create_error["error"]["message"] == "response.create requires Responses delegation."
    # The client's result, for its delegation: accepted and placed.
    delegation_id = created["delegation"]["id"]
    await ws.send(
        {"type": "session.commentary.append", "content": "Found it", "delegation_id": delegation_id}
    )
    await ws.append(silence(1100))
    await ws.wait_for(lambda e: e["type"] == "session.commentary.appended")


async def test_session_update_changes_delegation_within_its_type_only(
    live_sim, client, expect_invalid
) -> None:
    sim = await live_sim()
    ws = await client(sim)
    await ws.start(delegation=responses(END_CALL))
    update = {"type": "responses", "responses": {"tools": [END_CALL, TRANSFER]}}
    await ws.send({"type": "session.update", "session": {"delegation": update}, "event_id": "u1"})
    updated = await ws.wait_for(lambda e: e["type"] == "session.updated")
    assert updated["client_event_id"] == "u1"
    tools = updated["session"]["delegation"]["responses"]["tools"]
    assert [t["name"] for t in tools] == ["end_call", "transfer_call"]
    assert updated["session"]["delegation"]["responses"]["model"] == "gpt-5.4"
    await ws.send({"type": "session.update", "session": {"delegation": {"type": "client"}}})
    bad = {"type": "session.update", "session": {"instructions": "new"}}
    expect_invalid.append(bad)
    await ws.send(bad)
    await ws.wait_for(lambda e: len(ws.of("error")) == 2)
    kind_change, immutable = ws.of("error")
    assert (kind_change["error"]["code"], kind_change["error"]["param"]) == (
        "immutable_field_update",
        "session.delegation.type",
    )
    assert (immutable["error"]["code"], immutable["error"]["param"]) == (
        "immutable_field_update",
        "session.instructions",
    )


async def test_decisions_are_not_implemented_and_say_so(live_sim, client) -> None:
    sim = await live_sim()
    ws = await client(sim)
    await ws.start()
    await ws.send({"type": "decision.create", "event_id": "d"})
    error = await ws.wait_for(lambda e: e["type"] == "error")
    assert error["error"]["client_event_id"] == "d"
    assert "Decisions" in error["error"]["message"]
