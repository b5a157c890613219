"""Realtime GA server events as the voice link's reports (gateway/realtime/translate.py)."""

from __future__ import annotations

import logging

from gateway import voice as v
from gateway.realtime import events as rte
from gateway.realtime.link import RealtimeLink
from gateway.realtime.mcp import McpEvent
from gateway.realtime.translate import parse_arguments, translate

USAGE = rte.Usage(
    total_tokens=30,
    input_tokens=10,
    output_tokens=20,
    input_audio_tokens=8,
    input_text_tokens=2,
    output_audio_tokens=18,
    output_text_tokens=2,
    cached_tokens=0,
)


def test_arguments_parsing_reports_bad_json() -> None:
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments("") == ({}, None)
    assert parse_arguments("[1]")[1] == "arguments must be a JSON object"
    assert "not valid JSON" in (parse_arguments("{oops")[1] or "")


def test_caller_and_bot_events_become_reports_in_call_terms() -> None:
    assert translate(rte.SpeechStarted(1200, "item_c")) == v.CallerSpeechStarted(audio_ms=1200)
    assert translate(rte.SpeechStopped(2400, "item_c")) == v.CallerSpeechStopped(2400)
    assert translate(rte.InputCommitted("item_c", "item_b")) == v.CallerTurn("item_c", "item_b")
    assert translate(rte.InputTimeoutTriggered(0, 5000, "item_s")) == v.CallerSilenceTimeout(
        "item_s"
    )
    assert translate(rte.InputTranscriptionCompleted("item_c", 0, "hello")) == (
        v.CallerTranscript("item_c", "hello")
    )
    assert translate(rte.ResponseCreated("resp_1")) == v.BotReplyStarted("resp_1")
    assert translate(rte.OutputItemAdded("resp_1", 0, "item_b", "message", {})) == v.BotTurn(
        "item_b"
    )
    assert translate(rte.OutputItemAdded("resp_1", 0, "fc_1", "function_call", {})) is None
    assert translate(rte.AudioDelta("resp_1", "item_b", 0, 0, b"\xff" * 160)) == v.BotAudio(
        "resp_1", "item_b", b"\xff" * 160
    )
    assert translate(rte.AudioDone("resp_1", "item_b", 0, 0)) == v.BotAudioDone("resp_1", "item_b")
    assert translate(rte.TranscriptDelta("resp_1", "item_b", "Hel")) == v.BotTranscript(
        "item_b", "Hel", final=False
    )
    assert translate(rte.TranscriptDone("resp_1", "item_b", "Hello")) == v.BotTranscript(
        "item_b", "Hello", final=True
    )
    assert translate(rte.IgnoredEvent("response.content_part.added")) is None


def test_response_done_carries_status_reason_error_and_usage() -> None:
    done = translate(
        rte.ResponseDone(
            "resp_1",
            "failed",
            None,
            {"type": "server_error", "code": "overloaded", "message": "try later"},
            USAGE,
        )
    )
    assert done == v.BotReplyDone(
        "resp_1",
        v.REPLY_FAILED,
        None,
        "overloaded: try later",
        {
            "total_tokens": 30,
            "input_tokens": 10,
            "output_tokens": 20,
            "input_audio_tokens": 8,
            "input_text_tokens": 2,
            "output_audio_tokens": 18,
            "output_text_tokens": 2,
            "cached_tokens": 0,
        },
    )
    cancelled = translate(rte.ResponseDone("resp_2", "cancelled", "turn_detected", None, None))
    assert cancelled == v.BotReplyDone("resp_2", v.REPLY_CANCELLED, "turn_detected")


def test_tool_calls_arrive_parsed_or_invalid() -> None:
    call = rte.FunctionCallArgumentsDone("resp_1", "fc_1", "call_1", "lookup", '{"id": 7}')
    assert translate(call) == v.ToolCall("call_1", "lookup", {"id": 7})
    bad = rte.FunctionCallArgumentsDone("resp_1", "fc_1", "call_2", "lookup", "{oops")
    invalid = translate(bad)
    assert isinstance(invalid, v.ToolCallInvalid)
    assert (invalid.call_id, invalid.name, invalid.arguments_text) == ("call_2", "lookup", "{oops")
    assert "not valid JSON" in invalid.error


def test_error_codes_with_a_meaning_for_the_call_get_their_kind() -> None:
    def kind(code: str | None) -> v.VoiceErrorKind:
        report = translate(rte.ErrorEvent("invalid_request_error", code, "m"))
        assert isinstance(report, v.VoiceError)
        return report.kind

    assert kind("response_cancel_not_active") is v.VoiceErrorKind.NOTHING_TO_STOP
    assert kind("conversation_already_has_active_response") is v.VoiceErrorKind.REPLY_IN_PROGRESS
    assert kind("session_expired") is v.VoiceErrorKind.SESSION_EXPIRED
    assert kind("invalid_value") is v.VoiceErrorKind.OTHER
    assert translate(rte.ErrorEvent("server_error", None, "boom")) == v.VoiceError("", "boom")


def test_connection_loss_and_mcp_activity() -> None:
    assert translate(rte.ConnectionLost("closed", 1006)) == v.ConnectionLost("closed")
    failed = {"type": "mcp_list_tools.failed", "event_id": "e1", "item_id": "mcp_1"}
    note = translate(McpEvent(failed["type"], failed))
    assert isinstance(note, v.VoiceNote)
    assert note.kind == "mcp"
    assert note.level == logging.WARNING


def test_the_realtime_link_translates_with_this_module() -> None:
    link: v.VoiceLink = RealtimeLink()
    assert link.translate(rte.ResponseCreated("resp_9")) == v.BotReplyStarted("resp_9")


def test_the_realtime_link_replays_the_conversation_as_text_items() -> None:
    events = RealtimeLink().replay(
        [("system", "Be brief."), ("user", "Where is order 7?"), ("assistant", "It shipped.")]
    )

    def item(role: str, kind: str, text: str) -> dict[str, object]:
        content = [{"type": kind, "text": text}]
        return {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": role, "content": content},
        }

    # A system turn is replayed as user text, as before the link owned the replay.
    assert events == [
        item("user", "input_text", "Be brief."),
        item("user", "input_text", "Where is order 7?"),
        item("assistant", "output_text", "It shipped."),
    ]
