"""gateway/call/voice_events.py: the reports that carry a snapshot are rebuilt field by field
(issue 14: no `dataclasses.replace` per speech_started), so every field must be carried over;
one server event's reports come back as one event, a list, or None (`_machine_events`)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from gateway import voice as v
from gateway.call import machine as m
from gateway.call.voice_events import VoiceEvents

SNAPSHOT = (m.PlayoutItem("item_1", 800),)


class Events(VoiceEvents):
    def __init__(self, translate: Any) -> None:
        self.call_id = "call-1"
        self.link = SimpleNamespace(translate=translate)  # type: ignore[assignment]
        self._speech_stopped_at = None
        self._replay_only_transcripts = False
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.placed: list[Any] = []
        self.conversation = SimpleNamespace(  # type: ignore[assignment]
            place=lambda turn, previous: self.placed.append(turn)
        )

    def _emit(self, kind: str, **fields: Any) -> None:
        self.emitted.append((kind, fields))

    def _playout_snapshot(self) -> tuple[m.PlayoutItem, ...]:
        return SNAPSHOT


def test_speech_started_keeps_every_field_and_gets_the_snapshot() -> None:
    report = v.CallerSpeechStarted(audio_ms=4321)
    event = Events(lambda _: report)._machine_events(object())
    assert event == dataclasses.replace(report, playout=SNAPSHOT)
    # A field added to CallerSpeechStarted must be carried over in VoiceEvents._on_report.
    assert [f.name for f in dataclasses.fields(v.CallerSpeechStarted)] == ["playout", "audio_ms"]


def test_one_report_none_or_a_list() -> None:
    audio = v.BotAudio("resp_1", "item_1", b"\xff" * 160)
    assert Events(lambda _: audio)._machine_events(object()) is audio
    assert Events(lambda _: None)._machine_events(object()) is None
    both = [v.BotReplyStarted("resp_1"), audio, v.BotTurn("item_1")]  # BotTurn: no event
    events = Events(lambda _: both)
    assert events._machine_events(object()) == [both[0], audio]
    assert [turn.item_id for turn in events.placed] == ["item_1"]
    assert events._translate(object()) is audio
    assert Events(lambda _: [])._translate(object()) is None
