"""GPT-Live server events (gateway/live/events.py) as the voice link's reports
(gateway/voice.py). Stateful, one `LiveTranslator` per session (the link owns it).

    session.output_audio.delta   -> BotReplyStarted + BotTurn + BotAudio (a reply starts),
                                    BotAudio (inside a reply), BotAudioDone + BotReplyDone
                                    (its end), nothing (silence outside a reply)
    session.output_transcript.delta -> BotTranscript of the current (or last) reply's item
    session.input_transcript.delta  -> CallerTurn (a new caller turn), its CallerTranscript
                                       at the turn's end (the next reply, or the connection)
    response.event output_item.done{function_call} -> ToolCall (ToolCallInvalid: bad JSON)
    session.delegation.created   -> (the newest delegation: older calls become stale)
    session.usage.updated        -> UsageReported(session_seconds): the latest snapshot
    error                        -> VoiceError (kind from the code)
    session.closed{reason}       -> ConnectionLost: expired / connection_lost -> a new session;
                                    content / remote_hangup -> `final`: the call ends
    the WebSocket closing         -> ConnectionLost

Why segment by energy: the output is one continuous real-time track with no ids, no "done" and
no turn events (reference sections 4 and 5). The call needs replies (the machine's
BOT_SPEAKING, idle prompts, rollover at a silence, barge-in bookkeeping, the transcript of a bot
turn). What we chose: a 20 ms frame is speech when at least `VOICED_MIN_SAMPLES` of its 160
samples exceed `VOICED_LEVEL` (linear, about -36 dBFS; G.711 digital silence is 0, the model's
pauses are near it). Speech after silence starts a reply; silence inside a reply is kept and
played (the pauses between words and sentences; it also keeps the real-time pacing the service
gives the track); `REPLY_END_SILENCE_MS` (600 ms) of silence in a row ends it, longer than a
pause between sentences and short enough that an idle prompt or a rollover can follow. Silence
outside a reply is dropped: the playout clock plays silence by itself, and queueing it would
only delay the next reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gateway import voice as v
from gateway.live import events as le
from gateway.voice import parse_arguments

FRAME = 160  # 20 ms of G.711 at 8000 Hz
# Hostile-server bounds: the text kept per turn, and the function calls awaiting a result
# (the oldest is forgotten beyond it; its late result is then discarded as stale).
MAX_TURN_CHARS = 16_000
MAX_PENDING_CALLS = 32
MAX_SUPERSEDED = 64
MAX_ERRORS_REPORTED = 20  # error events logged per session; the rest counted
MAX_ERROR_CHARS = 500  # of an error's message, in the log line
REPLY_END_SILENCE_MS = 600
VOICED_LEVEL = 512  # |sample| (16-bit linear) above which a sample is not silence
VOICED_MIN_SAMPLES = 16  # of 160: 10 % of a frame above the level makes it speech

_ERROR_KINDS = {
    # The session hit its duration limit; session.closed{expired} follows (a new session).
    "session_expired": v.VoiceErrorKind.SESSION_EXPIRED,
}


_HEARD = v.CallerHeard()


def _ulaw_linear(byte: int) -> int:
    u = ~byte & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - magnitude) if u & 0x80 else (magnitude - 0x84)


def _alaw_linear(byte: int) -> int:
    a = byte ^ 0x55
    seg = (a & 0x70) >> 4
    mant = a & 0x0F
    magnitude = (mant << 4) + 8 if seg == 0 else ((mant << 4) + 0x108) << (seg - 1)
    return magnitude if a & 0x80 else -magnitude


# byte -> 1 when its sample is above the level (bytes.translate, then count: C speed per delta).
_LOUD = {
    "PCMU": bytes(int(abs(_ulaw_linear(b)) > VOICED_LEVEL) for b in range(256)),
    "PCMA": bytes(int(abs(_alaw_linear(b)) > VOICED_LEVEL) for b in range(256)),
}


class ReplySegmenter:
    """The continuous output track cut into replies by energy (see the module docstring)."""

    def __init__(self, law: str, end_silence_ms: int = REPLY_END_SILENCE_MS) -> None:
        self._loud = _LOUD[law]
        self._end_silence = end_silence_ms * 8  # bytes
        self.in_reply = False
        self.silence_run = 0  # bytes of silence since the reply's last speech

    def voiced(self, frame: bytes) -> bool:
        # A short piece (a delta of odd size) needs its share of loud samples, at least one.
        need = max(1, VOICED_MIN_SAMPLES * len(frame) // FRAME)
        return frame.translate(self._loud).count(1) >= need

    def split(self, audio: bytes) -> list[tuple[str, bytes]]:
        """("start", b"") / ("audio", bytes) / ("end", b"") steps for one delta, in order.

        Per delta (issue 14): the loud samples marked once (`marks`), each frame's counted in
        place, no slice per frame; inside a reply whose end cannot fall in this delta (the
        silence so far plus the whole delta is short of the end), one audio step and only the
        trailing frames read (`_trailing_silence`). tests/live/test_link.py holds it to the
        frame-by-frame reading (`voiced` on each slice) on arbitrary audio."""
        n = len(audio)
        marks = audio.translate(self._loud)
        if self.in_reply and self.silence_run + n < self._end_silence:
            self.silence_run = self._trailing_silence(marks, n, self.silence_run)
            return [("audio", audio)] if n else []
        count = marks.count
        steps: list[tuple[str, bytes]] = []
        start = 0  # first byte of the audio not yet handed on (inside a reply)
        for pos in range(0, n, FRAME):
            end = pos + FRAME if pos + FRAME < n else n
            # A short piece (a delta of odd size) needs its share of loud samples, at least one.
            if count(1, pos, end) >= (VOICED_MIN_SAMPLES * (end - pos) // FRAME or 1):
                if not self.in_reply:
                    self.in_reply = True
                    steps.append(("start", b""))
                    start = pos  # the silence before the reply is dropped
                self.silence_run = 0
                continue
            if not self.in_reply:
                start = end
                continue
            self.silence_run += end - pos
            if self.silence_run >= self._end_silence:
                if end > start:
                    steps.append(("audio", audio[start:end]))
                steps.append(("end", b""))
                self.in_reply = False
                self.silence_run = 0
                start = end
        if self.in_reply and n > start:
            steps.append(("audio", audio[start:]))
        return steps

    @staticmethod
    def _trailing_silence(marks: bytes, n: int, run: int) -> int:
        """The silence run after `n` bytes whose loud samples are `marks`, from `run` before
        them: the bytes after the last voiced frame, or `run + n` when none is voiced."""
        count = marks.count
        silent = 0
        pos = ((n - 1) // FRAME) * FRAME if n else 0
        while pos >= 0 and n:
            end = pos + FRAME if pos + FRAME < n else n
            if count(1, pos, end) >= (VOICED_MIN_SAMPLES * (end - pos) // FRAME or 1):
                return silent
            silent += end - pos
            pos -= FRAME
        return run + n


@dataclass
class _Text:
    item_id: str
    parts: list[str] = field(default_factory=list)
    reported: str | None = None  # the text last reported as final
    size: int = 0
    spoken: bool = False  # a reply's audio carries it (else only its transcript came so far)

    def add(self, delta: str) -> bool:
        """Keep `delta` unless the turn already holds MAX_TURN_CHARS (then False)."""
        if self.size + len(delta) > MAX_TURN_CHARS:
            return False
        self.parts.append(delta)
        self.size += len(delta)
        return True

    @property
    def text(self) -> str:
        return "".join(self.parts)


class LiveTranslator:
    """Server events of one session -> reports; keeps the pending function calls too."""

    def __init__(self, law: str = "PCMU", end_silence_ms: int = REPLY_END_SILENCE_MS) -> None:
        self.segmenter = ReplySegmenter(law, end_silence_ms)
        self._seq = 0
        self._reply_id: str | None = None
        self._bot: _Text | None = None  # the current (or last) reply's item and its text
        self._caller: _Text | None = None  # the open caller turn
        self._last_bot_item: str | None = None
        # Function calls owed a result: call id -> delegation id. `delegation` is the newest.
        self.pending: dict[str, str | None] = {}
        self.delegation: str | None = None
        # Delegations a newer one superseded (the newest MAX_SUPERSEDED, oldest first): a
        # function call of one of them is stale.
        self._superseded: dict[str, None] = {}
        self.stale_calls = 0
        self.errors = 0  # error events of this session; those past MAX_ERRORS_REPORTED counted

    def _next(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._seq}"

    def translate(self, event: Any) -> list[v.VoiceEvent] | v.VoiceEvent | None:
        match event:
            case le.OutputAudio(audio=audio):
                return self._audio(audio)
            case le.OutputTranscript(delta=delta):
                return self._bot_transcript(delta)
            case le.InputTranscript(delta=delta):
                return self._caller_transcript(delta)
            case le.FunctionCall(delegation_id=delegation_id, call_id=call_id, name=name):
                if delegation_id is not None and delegation_id in self._superseded:
                    return self._stale_call(delegation_id, call_id, name)
                if delegation_id is not None and delegation_id != self.delegation:
                    self._supersede(delegation_id)
                self.pending[call_id] = delegation_id
                if len(self.pending) > MAX_PENDING_CALLS:
                    del self.pending[next(iter(self.pending))]
                arguments, error = parse_arguments(event.arguments)
                if error is not None:
                    return v.ToolCallInvalid(call_id, name, event.arguments, error)
                return v.ToolCall(call_id, name, arguments)
            case le.DelegationCreated(delegation_id=delegation_id):
                self._supersede(delegation_id)
                return None
            case le.UsageUpdated(seconds=seconds):
                return v.UsageReported(session_seconds=seconds)
            case le.ErrorEvent(code=code, message=message):
                kind = _ERROR_KINDS.get(code or "", v.VoiceErrorKind.OTHER)
                return self._error(v.VoiceError(code or "", message[:MAX_ERROR_CHARS], kind))
            case le.SessionClosed(reason=reason, seconds=seconds):
                reports = self._boundary()
                if seconds is not None:
                    reports.append(v.UsageReported(session_seconds=seconds))
                final = reason if reason in (v.LOST_CONTENT, v.LOST_REMOTE_HANGUP) else None
                reports += self._end_reply()
                reports.append(v.ConnectionLost(f"session closed: {reason}", final))
                return reports
            case le.ConnectionLost(reason=reason):
                return [*self._boundary(), *self._end_reply(), v.ConnectionLost(reason)]
        return None

    def _error(self, error: v.VoiceError) -> v.VoiceEvent | None:
        """Each error is a log line at the call: a server sending errors without end must not
        flood the log. The first MAX_ERRORS_REPORTED of a session are reported, then one note
        says the rest are only counted; errors the call acts on (expiry) always pass."""
        self.errors += 1
        if self.errors <= MAX_ERRORS_REPORTED or error.kind is not v.VoiceErrorKind.OTHER:
            return error
        if self.errors == MAX_ERRORS_REPORTED + 1:
            return v.VoiceNote(
                "live",
                "live.errors_suppressed",
                f"more than {MAX_ERRORS_REPORTED} error events in this session: "
                "further ones are not logged",
                logging.WARNING,
                {"errors": self.errors},
            )
        return None

    def _stale_call(self, delegation_id: str, call_id: str, name: str) -> v.VoiceNote:
        """A function call of a delegation a newer one superseded (its backend work goes on
        after the conversation moved on, reference 6): not executed (an end_call or a
        transfer decided for a conversation that moved on must not end this one), no result
        sent (the delegation's result would be discarded as stale anyway)."""
        self.stale_calls += 1
        return v.VoiceNote(
            "live",
            "live.stale_function_call",
            f"function call {name[:64]!r} of superseded delegation {delegation_id}: not executed",
            logging.WARNING,
            {"delegation_id": delegation_id, "tool_call_id": call_id, "name": name[:64]},
        )

    def _supersede(self, delegation_id: str) -> None:
        """A newer delegation supersedes the older ones: their calls are stale now (speech
        that moved on does not cancel backend work, reference 6: version each task)."""
        if self.delegation is not None and self.delegation != delegation_id:
            self._superseded[self.delegation] = None
            while len(self._superseded) > MAX_SUPERSEDED:
                del self._superseded[next(iter(self._superseded))]
        self._superseded.pop(delegation_id, None)
        self.delegation = delegation_id
        self.pending = {
            call: owner
            for call, owner in self.pending.items()
            if owner is None or owner == delegation_id
        }

    # -- audio -------------------------------------------------------------------------------

    def _audio(self, audio: bytes) -> list[v.VoiceEvent] | v.VoiceEvent | None:
        steps = self.segmenter.split(audio)
        if not steps:
            return None
        if len(steps) == 1 and steps[0][0] == "audio" and self._reply_id is not None:
            assert self._bot is not None
            return v.BotAudio(self._reply_id, self._bot.item_id, steps[0][1])  # the common case
        reports: list[v.VoiceEvent] = []
        for kind, data in steps:
            if kind == "start":
                self._reply_id = self._next("live_reply")
                if self._bot is not None and not self._bot.spoken:
                    # Its transcript came first: this reply speaks that item (already placed).
                    reports += [*self._close_caller(), v.BotReplyStarted(self._reply_id)]
                else:
                    reports += self._boundary()
                    self._bot = _Text(self._next("live_bot"))
                    self._last_bot_item = self._bot.item_id
                    reports += [v.BotReplyStarted(self._reply_id), v.BotTurn(self._bot.item_id)]
                self._bot.spoken = True
            elif kind == "audio" and self._reply_id is not None and self._bot is not None:
                reports.append(v.BotAudio(self._reply_id, self._bot.item_id, data))
            elif kind == "end":
                reports += self._end_reply()
        return reports

    def _end_reply(self) -> list[v.VoiceEvent]:
        reply_id, bot = self._reply_id, self._bot
        if reply_id is None or bot is None:
            return []
        self._reply_id = None
        self.segmenter.in_reply = False
        reports: list[v.VoiceEvent] = [v.BotAudioDone(reply_id, bot.item_id)]
        reports += self._final_bot_text()
        reports.append(v.BotReplyDone(reply_id, v.REPLY_COMPLETED))
        return reports

    # -- transcripts -------------------------------------------------------------------------

    def _bot_transcript(self, delta: str) -> list[v.VoiceEvent] | v.VoiceEvent | None:
        if self._bot is None:
            # Text before any audio of a reply (the transcript leads the audio): a bot item
            # of its own, placed now; the reply that speaks it takes it over.
            self._bot = _Text(self._next("live_bot"))
            self._last_bot_item = self._bot.item_id
            reports: list[v.VoiceEvent] = [*self._close_caller(), v.BotTurn(self._bot.item_id)]
            self._bot.add(delta)
            return [*reports, v.BotTranscript(self._bot.item_id, delta, final=False)]
        if not self._bot.add(delta):
            return None
        return v.BotTranscript(self._bot.item_id, delta, final=False)

    def _final_bot_text(self) -> list[v.VoiceEvent]:
        bot = self._bot
        if bot is None or not bot.text or bot.text == bot.reported:
            return []
        bot.reported = bot.text
        return [v.BotTranscript(bot.item_id, bot.text, final=True)]

    def _caller_transcript(self, delta: str) -> list[v.VoiceEvent]:
        reports: list[v.VoiceEvent] = []
        if self._caller is None:
            if self._reply_id is None:
                reports += self._final_bot_text()
                self._bot = None  # the bot's turn is over: its late text is in
            self._caller = _Text(self._next("live_caller"))
            reports.append(v.CallerTurn(self._caller.item_id, self._last_bot_item))
        self._caller.add(delta)
        reports.append(_HEARD)
        return reports

    def _close_caller(self) -> list[v.VoiceEvent]:
        caller, self._caller = self._caller, None
        if caller is None or not caller.text.strip():
            return []
        return [v.CallerTranscript(caller.item_id, caller.text.strip())]

    def _boundary(self) -> list[v.VoiceEvent]:
        """A turn boundary (a reply starts, the session ends): the open caller turn's text and
        the last bot item's late text are final now."""
        return [*self._final_bot_text(), *self._close_caller()]


__all__ = [
    "REPLY_END_SILENCE_MS",
    "VOICED_LEVEL",
    "LiveTranslator",
    "ReplySegmenter",
    "parse_arguments",
]
