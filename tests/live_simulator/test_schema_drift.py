"""The GPT-Live simulator's schema tables cannot drift from the installed `openai` SDK's
`openai.types.live` models: every client event type and its fields, and the session
configuration down through audio, delegation (Responses tools and tool choice), history and
triggers, are walked side by side (tests/realtime/sdk_drift.py) and any key one accepts and the
other does not fails here, naming its path."""

from __future__ import annotations

import typing

from openai.types.live import ClientEvent, SessionConfig, SessionUpdateConfig
from openai.types.live.initial_item import Assistant, Developer, User

from gateway.live.simulator import schema
from tests.realtime.sdk_drift import compare_model, differences

# Reviewed differences (gateway/live/simulator/schema.py docstring). `input` is compared per
# role below: the SDK tags history items by `role`, the drift walker by `type`.
ALLOWED_EVENT_FIELDS = {
    # "Required, nullable" in the SDK docstring and the guide; Optional in the SDK's model.
    ("session.instructions.append", "required delegation_id"),
    ("session.thinking.append", "required delegation_id"),
    ("session.commentary.append", "required delegation_id"),
}


def _client_event_classes() -> dict[str, type]:
    union = typing.get_args(ClientEvent)[0]
    classes = {}
    for cls in typing.get_args(union):
        tag = typing.get_args(cls.model_fields["type"].annotation)[0]
        classes[tag] = cls
    return classes


def test_every_client_event_type_and_its_fields_match_the_sdk() -> None:
    classes = _client_event_classes()
    assert sorted(classes) == sorted(schema.CLIENT_EVENT_TYPES)
    problems = []
    for tag, cls in classes.items():
        required, optional = schema.EVENT_FIELDS[tag]
        sdk_required = {k for k, f in cls.model_fields.items() if f.is_required()} - {"type"}
        sdk_all = set(cls.model_fields) - {"type", "event_id"}
        for extra in set(required) - sdk_required - {"event_id"}:
            if (tag, f"required {extra}") not in ALLOWED_EVENT_FIELDS:
                problems.append(f"{tag}: {extra} required by the simulator, not by the SDK")
        for missing in sdk_required - set(required):
            problems.append(f"{tag}: {missing} required by the SDK, not by the simulator")
        if (set(required) | set(optional)) - {"event_id"} != sdk_all:
            problems.append(f"{tag}: fields {sorted({*required, *optional})} vs {sorted(sdk_all)}")
    assert problems == []


def test_session_config_matches_the_sdk() -> None:
    found = differences(SessionConfig, schema.SESSION_CONFIG, "session")
    assert [d for d in found if not d.startswith("session.input")] == []


def test_history_items_match_the_sdk_per_role() -> None:
    variants = schema.INITIAL_ITEM.variants
    for role, model in (("developer", Developer), ("user", User), ("assistant", Assistant)):
        assert compare_model(model, variants[role], f"input<{role}>") == []


def test_session_update_matches_the_sdk() -> None:
    assert differences(SessionUpdateConfig, schema.SESSION_UPDATE, "session") == []


def test_immutable_fields_are_the_config_fields_an_update_cannot_carry() -> None:
    assert schema.IMMUTABLE_FIELDS == set(SessionConfig.model_fields) - set(
        SessionUpdateConfig.model_fields
    )


def test_response_item_variants_match_the_sdk_models() -> None:
    from openai.types.responses.response_function_tool_call import ResponseFunctionToolCall
    from openai.types.responses.response_input_item import EasyInputMessage, FunctionCallOutput

    items = schema.RESPONSE_ITEMS
    found = compare_model(FunctionCallOutput, items["function_call_output"], "item")
    assert [d for d in found if "caller" not in d] == []  # caller: program-tool results only
    found = compare_model(ResponseFunctionToolCall, items["function_call"], "item")
    hosted_only = ("item.caller", "item.async:")  # program-tool calls, not function tools
    assert [d for d in found if not d.startswith(hosted_only)] == []
    assert compare_model(EasyInputMessage, items["message"], "item") == [
        "item.status: accepted by the simulator, not a field of the SDK's EasyInputMessage"
    ]
