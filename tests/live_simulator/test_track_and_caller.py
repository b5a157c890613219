"""The pure parts of the GPT-Live simulator, by plain calls: the output track (speech then
silence, transcript fragments released as their audio plays, a barge-in cut that spares later
speech) and the caller's utterances (echo bytes exact, memory bounded on endless speech)."""

from __future__ import annotations

from gateway.live.simulator.caller import MAX_UTTERANCE_MS, CallerSpeech, SpeechStarted, Utterance
from gateway.live.simulator.track import OutputTrack
from gateway.sim_shared.vad import STARTED, STOPPED, SpeechEdges
from tests.realtime.conftest import silence, speech_like


def test_track_plays_speech_then_silence_and_releases_fragments_in_order() -> None:
    track = OutputTrack(b"\xff", 8)
    track.say(b"\x10" * 4000, "one two three four five", "reply")  # 500 ms
    text, audio = "", b""
    while track.speaking:
        chunk = track.next_chunk(800)
        audio += chunk.audio
        text += "".join(f.text for f in chunk.fragments)
    assert audio == b"\x10" * 4000
    assert text == "one two three four five"
    assert chunk.finished == ["reply"]
    idle = track.next_chunk(800)
    assert idle.audio == b"\xff" * 800 and idle.voiced_end == 0 and idle.speech_bytes == 0


def test_a_cut_drops_what_was_queued_before_it_only() -> None:
    track = OutputTrack(b"\xff", 8)
    track.say(b"\x10" * 1600, "first reply", "one")
    track.next_chunk(800)
    limit = track.queued_total
    track.say(b"\x20" * 800, "second", "two")
    assert track.cut(limit) == 800
    chunk = track.next_chunk(1600)
    assert chunk.audio == b"\x20" * 800 + b"\xff" * 800
    assert [f.text for f in chunk.fragments] == ["second"]
    assert chunk.finished == ["two"]
    assert track.cut_speech_bytes == 800


def test_voiced_end_ignores_trailing_silence_bytes() -> None:
    track = OutputTrack(b"\xff", 8)
    track.say(b"\x10" * 100 + b"\xff" * 60, "")
    assert track.next_chunk(160).voiced_end == 100


def test_speech_edges() -> None:
    edges = SpeechEdges()
    assert edges.frame(True, 10, 500) == STARTED
    assert edges.frame(True, 20, 500) is None
    assert edges.frame(False, 510, 500) is None
    assert edges.frame(False, 520, 500) == STOPPED
    assert edges.frame(False, 530, 500) is None


def test_caller_utterance_is_the_exact_input_bytes() -> None:
    caller = CallerSpeech("audio/pcmu", 8, -40.0)
    audio = silence(1000) + speech_like(700) + silence(800)
    found = []
    for start in range(0, len(audio), 160):
        found += caller.feed(audio[start : start + 160])
    started, utterance = found
    assert isinstance(started, SpeechStarted) and isinstance(utterance, Utterance)
    assert utterance.start_ms == started.start_ms
    assert audio[utterance.start_ms * 8 : utterance.end_ms * 8] == utterance.audio
    assert 650 <= started.start_ms <= 1000  # prefix_ms before the first voiced frame
    assert caller.now_ms == 2500


def test_endless_speech_is_cut_into_bounded_utterances() -> None:
    caller = CallerSpeech("audio/pcmu", 8, -40.0)
    speech = speech_like(1000)
    found = []
    for _ in range(MAX_UTTERANCE_MS // 1000 + 5):
        found += caller.feed(speech)
    utterances = [f for f in found if isinstance(f, Utterance)]
    assert utterances and len(utterances[0].audio) <= MAX_UTTERANCE_MS * 8
    assert len(caller._recent) <= MAX_UTTERANCE_MS * 8 + 8000
