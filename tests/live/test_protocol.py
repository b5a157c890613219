"""Every GPT-Live client event we build validates against openai.types.live, strictly."""

from __future__ import annotations

import base64
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.live import protocol as lp
from tests.live.validate import check_live_client_event, live_client_event_ok

TOOLS = (
    lp.LiveFunctionTool("end_call", "End the call."),
    lp.LiveFunctionTool(
        "lookup",
        "Look up an order.",
        {"type": "object", "properties": {"order": {"type": "string"}}},
    ),
)


def test_validator_rejects_unknown_keys_and_types() -> None:
    assert not live_client_event_ok({"type": "session.close", "bogus": 1})
    assert not live_client_event_ok({"type": "response.cancel"})  # a Realtime event
    assert not live_client_event_ok({"type": "conversation.item.truncate", "item_id": "x"})
    start = lp.session_start(lp.LiveSessionConfig())
    start["session"]["speed"] = 1.0  # a Realtime-only setting
    assert not live_client_event_ok(start)
    start = lp.session_start(lp.LiveSessionConfig())
    start["session"]["audio"]["format"]["extra"] = True  # nested unknown key
    assert not live_client_event_ok(start)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_session_start_carries_the_call_law_at_8000(codec: str) -> None:
    config = lp.LiveSessionConfig(
        audio_format=lp.format_for_codec(codec), voice="cedar", instructions="Be brief."
    )
    event = lp.session_start(config, event_id="start_1")
    check_live_client_event(event)
    session = event["session"]
    assert session["audio"]["format"] == {"type": f"audio/{codec.lower()}", "rate": 8000}
    assert session["audio"]["output"] == {"voice": "cedar"}
    assert session["model"] == "gpt-live-1"
    assert session["store"] is False
    assert "delegation" not in session  # no tools: client delegation (omitted)
    assert config.law == codec


def test_format_for_codec_refuses_anything_but_g711() -> None:
    with pytest.raises(ValueError, match=r"G\.711"):
        lp.format_for_codec("opus")


def test_tools_go_to_responses_delegation() -> None:
    config = lp.LiveSessionConfig(
        tools=TOOLS,
        delegation_instructions="Use the tools.",
        max_output_tokens=256,
        reasoning_effort="low",
    )
    event = lp.session_start(config)
    check_live_client_event(event)
    delegation = event["session"]["delegation"]
    assert delegation["type"] == "responses"
    responses = delegation["responses"]
    assert responses["model"] == lp.DEFAULT_DELEGATION_MODEL
    assert responses["parallel_tool_calls"] is False
    assert [t["name"] for t in responses["tools"]] == ["end_call", "lookup"]
    assert responses["tools"][0]["type"] == "function"
    assert responses["instructions"] == "Use the tools."
    assert responses["reasoning"] == {"effort": "low"}
    assert "tools" not in event["session"]  # no top-level tools in Live


def test_tool_choice_forms() -> None:
    for choice, wire in (("required", "required"), ("function:lookup", None)):
        event = lp.session_start(lp.LiveSessionConfig(tools=TOOLS, tool_choice=choice))
        check_live_client_event(event)
        got = event["session"]["delegation"]["responses"]["tool_choice"]
        assert got == (wire or {"type": "function", "name": "lookup"})


def test_history_becomes_initial_items_by_role() -> None:
    history = [("user", "Hello"), ("assistant", "Hi, how can I help?"), ("system", "VIP caller")]
    event = lp.session_start(lp.LiveSessionConfig(), history)
    check_live_client_event(event)
    items = event["session"]["input"]
    assert [i["role"] for i in items] == ["user", "assistant", "developer"]
    assert items[1]["content"] == [{"type": "output_text", "text": "Hi, how can I help?"}]
    assert items[0]["content"] == [{"type": "input_text", "text": "Hello"}]


def test_history_is_trimmed_oldest_first_to_the_limits() -> None:
    many = [("user", f"turn {i}") for i in range(300)]
    items = lp.initial_items(many)
    assert len(items) == lp.MAX_INPUT_MESSAGES
    assert items[-1]["content"][0]["text"] == "turn 299"
    assert items[0]["content"][0]["text"] == f"turn {300 - lp.MAX_INPUT_MESSAGES}"
    long = [("old", "o" * 50), ("user", "ab" * 7500), ("assistant", "y" * 15000), ("user", "last")]
    items = lp.initial_items(long)
    # 8192 tokens at 3 chars each hold one 15000-char turn (5004 tokens) and "last" (5): the
    # turn before them is cut to its end to fill the rest, marked, and older ones dropped.
    texts = [i["content"][0]["text"] for i in items]
    assert [t[:1] for t in texts] == ["…", "y", "l"]
    assert texts[0].endswith("abab") and set(texts[0][1:]) == {"a", "b"}
    # "last" is 8/6 of a token, rounded up, + 4; the mark "…" (3 UTF-8 bytes) 1.5 tokens.
    room = (lp.MAX_INPUT_TOKENS - 5004 - 6 - 4) * 6 - 9
    assert len(texts[0]) == 1 + room // 2
    assert sum(oracle_tokens(t) for t in texts) <= lp.MAX_INPUT_TOKENS
    assert lp.initial_items([("user", "")]) == []


def test_one_turn_over_the_whole_budget_is_cut_not_dropped() -> None:
    """A single turn longer than the whole budget (a long monologue before a reconnect) used to
    leave the new session with no history; its end is kept instead."""
    items = lp.initial_items([("user", "w" * 40000 + "the end")])
    assert len(items) == 1
    text = items[0]["content"][0]["text"]
    assert text.startswith("…") and text.endswith("the end")
    assert oracle_tokens(text) <= lp.MAX_INPUT_TOKENS
    event = lp.session_start(lp.LiveSessionConfig(), [("user", "w" * 40000)])
    check_live_client_event(event)


def oracle_tokens(text: str) -> int:
    """The service-side bound the estimates must respect, written out independently of
    gateway/live/protocol.py: ASCII 3 characters per token, other text 2 UTF-8 bytes per token,
    4 tokens per message."""
    ascii_chars = sum(1 for c in text if c < "\x80")
    other_bytes = sum(len(c.encode("utf-8", "surrogatepass")) for c in text if c >= "\x80")
    return math.ceil(ascii_chars / 3 + other_bytes / 2) + 4


@pytest.mark.parametrize(
    "turn",
    ["中文对话" * 1500, "😀" * 6000, "Привет, мир. " * 1200, "日本語 and English " * 900],
    ids=["cjk", "emoji", "cyrillic", "mixed"],
)
def test_non_latin_history_stays_within_the_token_budget(turn: str) -> None:
    """Two such turns are 2 x 2000-6000 characters: 3 characters per token would take both
    whole (under 8192 "tokens") while they hold 2-3 times that. The estimate counts UTF-8
    bytes outside ASCII, so the newest is kept (cut to its end if it alone is over) and the
    total stays under the budget."""
    items = lp.initial_items([("user", turn), ("assistant", turn + " end")])
    texts = [i["content"][0]["text"] for i in items]
    assert sum(oracle_tokens(t) for t in texts) <= lp.MAX_INPUT_TOKENS
    assert texts[-1].endswith(" end") and items[-1]["role"] == "assistant"
    originals = (turn, turn + " end")
    for text in texts:  # each kept whole, or its end kept behind the mark
        assert text in originals or (
            text[0] == "…" and any(o.endswith(text[1:]) for o in originals)
        )
    check_live_client_event(lp.session_start(lp.LiveSessionConfig(), [("user", turn)] * 2))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["user", "assistant", "system"]), st.text(max_size=12000)),
        max_size=6,
    )
)
def test_any_history_stays_within_the_token_budget(history: list[tuple[str, str]]) -> None:
    items = lp.initial_items(history)
    texts = [i["content"][0]["text"] for i in items]
    assert sum(oracle_tokens(t) for t in texts) <= lp.MAX_INPUT_TOKENS
    originals = [t for _, t in history if t]
    for text in texts[1:]:
        assert text in originals  # only the oldest kept turn may be cut
    if texts and texts[0] not in originals:
        assert texts[0][0] == "…" and any(o.endswith(texts[0][1:]) for o in originals)
        assert len(texts[0]) > 60
    if originals:
        newest = originals[-1]
        assert texts and (texts[-1] == newest or newest.endswith(texts[-1][1:]))


@given(st.text(max_size=4000))
def test_any_append_stays_within_its_cap(text: str) -> None:
    cut = lp.cut_to_append(text)
    assert text.startswith(cut)
    assert oracle_tokens(cut) - 4 <= lp.MAX_APPEND_TOKENS
    if cut != text:  # nothing shorter than needed: one more character would cross the cap
        longer = text[: len(cut) + 1]
        ascii_chars = sum(1 for c in longer if c < "\x80")
        other_bytes = len(longer.encode("utf-8", "surrogatepass")) - ascii_chars
        assert ascii_chars / 3 + other_bytes / 2 > lp.MAX_APPEND_TOKENS


def test_a_cut_too_small_to_matter_is_dropped() -> None:
    # Leaves 8192 - 8180 = 12 tokens: fewer than 60 characters, so the older turn goes.
    fill = "z" * ((lp.MAX_INPUT_TOKENS - 12 - 4) * 3)
    items = lp.initial_items([("user", "older turn " * 100), ("assistant", fill)])
    assert [i["role"] for i in items] == ["assistant"]


def test_audio_append_fast_path_is_the_documented_event() -> None:
    audio = bytes(range(160))
    frame = lp.input_audio_append(audio)
    check_live_client_event(frame)
    event = orjson.loads(frame)
    assert event == {
        "type": "session.input_audio.append",
        "audio": base64.b64encode(audio).decode(),
    }


def test_appends_and_responses_events_validate() -> None:
    events = [
        lp.instructions_append("Greet the caller."),
        lp.thinking_append("The caller pressed 4 2 #", event_id="dtmf_1"),
        lp.commentary_append("Say the order shipped."),
        lp.function_call_output("call_1", '{"ok": true}'),
        lp.user_message("Keypad input: 4 2 #"),
        lp.response_create(),
        lp.session_close(event_id="close_1"),
        lp.session_update_tools(lp.LiveSessionConfig(tools=TOOLS)),
    ]
    for event in events:
        check_live_client_event(event)
    assert events[0]["delegation_id"] is None  # required and nullable: sent as null
    assert "delegation_id" not in events[5]


def test_append_is_cut_to_the_500_token_cap() -> None:
    event = lp.instructions_append("z" * 10_000)
    check_live_client_event(event)
    assert len(event["content"]) == lp.MAX_APPEND_CHARS


def test_session_update_needs_responses_mode() -> None:
    with pytest.raises(ValueError):
        lp.session_update_tools(lp.LiveSessionConfig())


def test_a_delegation_policy_names_the_tools_in_the_instructions() -> None:
    event = lp.session_start(lp.LiveSessionConfig(instructions="Be brief.", tools=TOOLS))
    check_live_client_event(event)
    text = event["session"]["instructions"]
    assert text.startswith("Be brief.\n\nDelegation policy:")
    assert "- end_call: End the call." in text and "- lookup: Look up an order." in text
    plain = lp.session_start(lp.LiveSessionConfig(instructions="Be brief."))
    assert plain["session"]["instructions"] == "Be brief."  # no tools, no policy
    off = lp.LiveSessionConfig(instructions="Mine.", tools=TOOLS, delegation_policy=False)
    assert lp.session_start(off)["session"]["instructions"] == "Mine."


def test_user_message_is_cut_like_an_append() -> None:
    event = lp.user_message('"}]} injected ' * 1000)
    check_live_client_event(event)
    text = event["item"]["content"][0]["text"]
    assert len(text) == lp.MAX_APPEND_CHARS and text.startswith('"}]} injected')
