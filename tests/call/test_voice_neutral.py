"""The machine works with a voice backend that is not Realtime: no commit, no cancel, no truncate.

`ContinuousLink` is a made-up backend in the spirit of GPT-Live (issue 12): its output is
continuous (it stops speaking by itself when the caller speaks), it cannot cancel a reply or
truncate an item, it is only told how much of each bot item the caller heard, and tools are
delegated to the call. Its server events are its own dicts; it translates them into the voice
link's reports (gateway/voice.py) and turns the machine's voice actions into its own client
events. Nothing here imports gateway.realtime: the barge-in and the tool call below are decided
by the same table as for Realtime.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import voice as v
from gateway.call import machine as m

ROOT = Path(__file__).resolve().parents[2]


class ContinuousLink:
    """A backend without cancel or truncate: a barge-in only tells it what the caller heard."""

    def stop_bot_audio(
        self, cancel_reply: bool, unheard: Sequence[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        # No cancel (it stopped by itself), no truncate: one "heard" note per bot item.
        return [{"type": "heard", "segment": item_id, "ms": heard} for item_id, heard in unheard]

    def request_reply(self, instructions: str | None) -> dict[str, Any]:
        return {"type": "speak", "hint": instructions}

    def add_text(self, text: str, role: str) -> dict[str, Any]:
        return {"type": "context", "role": role, "text": text}

    def return_tool_result(self, call_id: str, output: str) -> dict[str, Any]:
        return {"type": "delegation.result", "id": call_id, "result": output}

    def replay(self, turns: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return [{"type": "context", "role": role, "text": text} for role, text in turns]

    def translate(self, server_event: Any) -> v.VoiceEvent | None:
        match server_event:
            case {"type": "user.talking", "at_ms": at_ms}:
                return v.CallerSpeechStarted(audio_ms=at_ms)
            case {"type": "user.quiet", "at_ms": at_ms}:
                return v.CallerSpeechStopped(at_ms)
            case {"type": "turn.begin", "turn": turn}:
                return v.BotReplyStarted(turn)
            case {"type": "audio", "turn": turn, "segment": segment, "ulaw": audio}:
                return v.BotAudio(turn, segment, audio)
            case {"type": "segment.end", "turn": turn, "segment": segment}:
                return v.BotAudioDone(turn, segment)
            case {"type": "turn.end", "turn": turn, "interrupted": interrupted}:
                return v.BotReplyDone(turn, v.REPLY_CANCELLED if interrupted else v.REPLY_COMPLETED)
            case {"type": "delegate", "id": call_id, "tool": name, "args": arguments}:
                return v.ToolCall(call_id, name, arguments)
        return None


class NeutralCall:
    """The machine, a playout queue counted in bytes, and the link: what CallSession does,
    without sockets, to show which client events a non-Realtime backend would be sent."""

    def __init__(self, policy: m.CallPolicy) -> None:
        self.link: v.VoiceLink = ContinuousLink()
        self.ctx = m.CallContext(policy)
        self.sent: list[dict[str, Any]] = []  # client events of the backend, in order
        self.queued: dict[str, int] = {}  # bot item -> bytes queued for playout
        self.played: dict[str, int] = {}  # bot item -> bytes sent to the caller
        self.others: list[m.Action] = []  # SIP and timer actions, for the assertions

    def feed(self, event: m.Event) -> None:
        self.ctx, actions = m.step(self.ctx, event)
        for action in actions:
            self.execute(action)

    def server(self, server_event: dict[str, Any]) -> None:
        report = self.link.translate(server_event)
        assert report is not None
        if isinstance(report, v.CallerSpeechStarted):
            snapshot = tuple(
                v.PlayoutItem(item, self.played.get(item, 0))
                for item, size in self.queued.items()
                if size > self.played.get(item, 0)
            )
            report = v.CallerSpeechStarted(snapshot, report.audio_ms)
        self.feed(report)

    def play(self, item_id: str, nbytes: int) -> None:
        self.played[item_id] = self.played.get(item_id, 0) + nbytes
        if all(self.played.get(item, 0) >= size for item, size in self.queued.items()):
            self.queued.clear()
            self.feed(m.PlayoutDrained())

    def execute(self, action: m.Action) -> None:
        match action:
            case m.EnqueueAudio(item_id, audio):
                self.queued[item_id] = self.queued.get(item_id, 0) + len(audio)
            case m.FlushPlayout():
                self.queued.clear()
            case m.StopBotAudio(items, cancel_reply):
                unheard = [(item.item_id, item.heard_ms) for item in items]
                self.sent += self.link.stop_bot_audio(cancel_reply, unheard)
            case m.RequestReply(instructions):
                self.sent.append(self.link.request_reply(instructions))
            case m.AddText(text, role):
                self.sent.append(self.link.add_text(text, role))
            case m.ReturnToolResult(call_id, output):
                self.sent.append(self.link.return_tool_result(call_id, output))
            case m.Note():
                pass
            case _:
                self.others.append(action)


def answered(**policy: Any) -> NeutralCall:
    call = NeutralCall(m.CallPolicy(**policy))
    for event in (m.Start(), m.SessionReady(), m.Ack()):
        call.feed(event)
    assert call.ctx.state is m.State.LISTENING
    return call


def test_barge_in_tells_a_continuous_backend_what_the_caller_heard() -> None:
    call = answered(server_interrupts=True)
    call.server({"type": "turn.begin", "turn": "t1"})
    call.server({"type": "audio", "turn": "t1", "segment": "s1", "ulaw": b"\xff" * 1600})
    assert call.ctx.state is m.State.BOT_SPEAKING
    call.play("s1", 800)  # 100 ms of the 200 ms reached the caller

    call.server({"type": "user.talking", "at_ms": 5120})

    assert call.ctx.state is m.State.CALLER_SPEAKING
    assert call.queued == {}  # playout flushed
    # No cancel and no truncate on this wire: the backend learns the caller heard 100 ms.
    assert call.sent == [{"type": "heard", "segment": "s1", "ms": 100}]
    # Audio the backend still had in flight for the interrupted reply is not played.
    call.server({"type": "audio", "turn": "t1", "segment": "s1", "ulaw": b"\xff" * 160})
    assert call.queued == {}
    call.server({"type": "turn.end", "turn": "t1", "interrupted": True})
    call.server({"type": "user.quiet", "at_ms": 6000})
    assert call.ctx.state is m.State.LISTENING
    assert call.ctx.reply_id is None


def test_a_delegated_tool_runs_and_its_result_goes_back_on_the_backends_wire() -> None:
    call = answered()
    call.server({"type": "turn.begin", "turn": "t1"})
    call.server({"type": "delegate", "id": "d1", "tool": "lookup", "args": {"order": 7}})
    assert call.others[-1] == m.RunTool("d1", "lookup", {"order": 7})
    call.server({"type": "turn.end", "turn": "t1", "interrupted": False})

    call.feed(m.ToolResult("d1", '{"status": "shipped"}'))

    assert call.sent == [
        {"type": "delegation.result", "id": "d1", "result": '{"status": "shipped"}'},
        {"type": "speak", "hint": None},
    ]


def test_a_delegated_end_call_says_goodbye_then_hangs_up() -> None:
    call = answered()
    call.server({"type": "turn.begin", "turn": "t1"})
    call.server({"type": "audio", "turn": "t1", "segment": "s1", "ulaw": b"\xff" * 800})
    call.server({"type": "delegate", "id": "d2", "tool": "end_call", "args": {}})
    call.server({"type": "segment.end", "turn": "t1", "segment": "s1"})
    call.server({"type": "turn.end", "turn": "t1", "interrupted": False})
    assert call.ctx.state is m.State.ENDING
    assert not any(isinstance(a, m.SendBye) for a in call.others)

    call.play("s1", 800)

    assert call.ctx.state is m.State.ENDED
    assert [a for a in call.others if isinstance(a, m.SendBye)] == [m.SendBye(m.EndCause.END_CALL)]


def test_the_machine_and_the_voice_vocabulary_load_without_the_realtime_backend() -> None:
    code = (
        "import sys, gateway.voice, gateway.call.machine\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('gateway.realtime'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
