"""One call's bridge to its voice backend: runs the state machine and executes its actions.

The call object (`gateway/call/call.py`) owns SIP and media for a call; this object owns the
voice session(s) and the per-call brain. Everything flows through `gateway.call.machine.step`:

    call (SIP, RTP) --on_ack / on_sip_ended / on_dtmf / on_rtp_timeout / on_output_tick--> step
    connection events --link.translate (gateway/voice.py reports)--> _on_report ------> step
    timers (setup, digits, drain, session cap) -----------------------------------------> step
    step -> actions -> CallControl (answer, reject, BYE, REFER), PlayoutQueue,
                       link (voice actions as client events) -> the connection

The backend (Realtime GA or GPT-Live) comes in the settings (`SessionSettings.backend`, a
`gateway.voice.VoiceBackend` chosen in gateway/call_settings.py): this module imports neither
backend. It opens connections (`VoiceConnection`) and a link per connection through it.

Two paths skip the machine because they carry audio, not decisions: inbound RTP audio goes
straight to the connection's append (`on_audio`), and the machine's `EnqueueAudio` actions
put model audio into the playout queue that the shared media clock drains.

Audio time must keep running for the server's VAD and idle timers even when no RTP arrives (the
caller put us on hold, or the network dropped out): when the audio handed on trails real time by
more than `HOLD_FILL_AFTER_S` (longer than any jitter-buffer delay), silence makes up the
difference on each tick; concealed frames the jitter buffer later produces for the same stretch
are dropped, so no time reaches the model twice.

Billing safety (issue 9): audio time starts with the caller's first RTP (the first frames the
jitter buffer releases), or with the ACK when the negotiated direction says the caller will
never send (we are sendonly/inactive). Before that nothing is appended, silence included: a
call that never sends media (an INVITE flood, a caller that never ACKs and is ended at Timer
H) costs no voice-session audio. And audio handed on never runs ahead of real time by more than
`input_burst_s`: a caller (or anyone on its latched source) sending faster than real time
gets the excess dropped and counted (`input_rate_dropped_bytes`), not billed.

Appends: one per packet, or per `append_s` of audio (media.append_ms; gateway/call/gather.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from gateway.call import machine as m
from gateway.call.caller_audio import SAMPLE_RATE, CallerAudio
from gateway.call.causes import EndCause
from gateway.call.conversation import Conversation, Turn
from gateway.call.events import tool_error
from gateway.call.gather import AudioGather
from gateway.call.tools import HttpTool, call_http_tool
from gateway.call.voice_events import VoiceEvents
from gateway.call.voice_sessions import RECONNECT_BUDGET, RECONNECT_WINDOW_S, VoiceSessions
from gateway.media.pacer import TickWatch
from gateway.media.playout import FRAME_BYTES, PlayoutQueue
from gateway.observe.logs import log_event
from gateway.voice import VoiceBackend, VoiceConnection, VoiceLink, VoiceSetupError

log = logging.getLogger("gateway.call")

# Audio time may trail real time by the jitter buffer's delay (at most 200 ms); when it trails by
# more than this, the caller's RTP has stopped (hold, outage) and silence keeps it running.
HOLD_FILL_AFTER_S = 0.25
INPUT_BURST_S = 0.2  # default credit of caller audio ahead of real time (media.input_burst_ms)
APPEND_S = 0.02  # default caller audio per append: each packet at once (media.append_ms)
# GPT-Live streams its output in real time, about 100 ms per delta (reference section 4): the
# playout queue holds at most the newest delta plus this much (60 ms), the oldest excess is
# dropped (SessionStats.playout_trimmed_bytes). Within the 40-100 ms shallow buffer the
# reference advises, and what lets the caller stop hearing the model within 100 ms of its last
# non-silent audio (issue 12).
LIVE_PLAYOUT_SLACK_BYTES = 480
# ... and each talkspurt starts 40 ms after its first audio arrives: played at once, the queue
# runs empty just as the next real-time delta is due, so a delta late by a tick put an idle
# frame inside the speech, and that delta with the next one overflowed the slack and was
# trimmed (seen end to end on a loaded machine, tests/e2e/test_live_audio.py). 40 ms of margin
# + 60 ms of slack stay within the 100 ms the caller may hear after the model falls silent.
LIVE_PLAYOUT_START_DELAY_FRAMES = 2
# The caller's side of the conversation must survive a rollover or reconnect, and the only
# text of it the gateway can get is the service's input transcription: when the operator has
# not configured a transcription model, this one is turned on for replay only (its
# transcripts are not logged, emitted or recorded). Decision and cost: docs/configuration.md
# (calls.replay_transcription_model).
REPLAY_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"


class CallControl(Protocol):
    """What the session asks of the application that owns the SIP dialog and the media."""

    def answer(self) -> None: ...  # 200 OK with the prepared SDP answer; start media output

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None: ...

    # BYE; Reason per causes.BYE_REASONS, with `text` instead of its text when given
    def hangup(self, cause: EndCause, text: str = "") -> None: ...

    async def refer(self, target_uri: str) -> int: ...  # final NOTIFY sipfrag status

    def send_digits(self, digits: str) -> None: ...  # RFC 4733 out (raises ValueError)

    def stop_media(self) -> None: ...


class _EndedControl:
    """A closed session's control: the call is over, nothing more is asked of it. Swapped in
    by `close()` so the session no longer refers to the call that owns it (a reference cycle
    that kept every ended call until a full collection: issue 14)."""

    def answer(self) -> None:
        pass

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        pass

    def hangup(self, cause: EndCause, text: str = "") -> None:
        pass

    async def refer(self, target_uri: str) -> int:
        return 481  # Call/Transaction Does Not Exist: the call has ended

    def send_digits(self, digits: str) -> None:
        raise ValueError("the call has ended")

    def stop_media(self) -> None:
        pass


ENDED_CONTROL = _EndedControl()


@dataclass
class SessionStats:
    audio_appended_bytes: int = 0
    silence_filled_bytes: int = 0
    fill_overlap_dropped_bytes: int = 0
    barge_ins: int = 0
    truncates: int = 0
    deletes: int = 0
    reconnects: int = 0
    rollovers: int = 0
    tool_calls: int = 0
    illegal_events: int = 0
    appends_dropped: int = 0
    input_rate_dropped_bytes: int = 0  # caller audio beyond real time + input_burst_s
    playout_overflow_bytes: int = 0  # bot audio beyond the playout queue's bound
    playout_trimmed_bytes: int = 0  # GPT-Live: oldest bot audio beyond the shallow bound
    usage: dict[str, int] = field(default_factory=dict)
    # Backend-reported session seconds (GPT-Live), summed over the call's sessions (each
    # session's latest cumulative snapshot).
    voice_seconds: float = 0.0


# Observer hook: `observe(kind, fields)` for what metrics and the call record need, with these
# kinds: connected {connect_s}, response_latency {seconds}, barge_in {item_id, audio_end_ms,
# action}, tool {name, tool_call_id, arguments, result, duration_ms, output}, usage {<kind>_tokens},
# transcript {speaker, text}, reconnect {attempt}, mcp {event, <summarised fields>}. It must
# not raise or block (hot-ish path).
Observer = Callable[[str, dict[str, Any]], None]


@dataclass
class SessionSettings:
    endpoint: Any  # the backend's endpoint (gateway.wsock.Endpoint)
    config: Any  # the backend's session configuration for the call's G.711 law
    policy: m.CallPolicy
    http_tools: Mapping[str, HttpTool] = field(default_factory=dict)
    caller: str = ""
    callee: str = ""
    reconnect_budget: int = RECONNECT_BUDGET  # attempts per window; 0 = never reconnect
    reconnect_window_s: float = RECONNECT_WINDOW_S
    input_burst_s: float = INPUT_BURST_S
    append_s: float = APPEND_S  # caller audio per append, at least
    replay_transcription_model: str = REPLAY_TRANSCRIPTION_MODEL  # "" = off
    # The voice backend (gateway.realtime.backend.RealtimeBackend, gateway.live.backend.
    # LiveBackend): required; chosen above the call (gateway/call_settings.py).
    backend: VoiceBackend | None = None


class CallSession(CallerAudio, VoiceSessions, VoiceEvents):
    """Owner of the per-call tasks; `close()` cancels every one of them."""

    def __init__(
        self,
        call_id: str,
        settings: SessionSettings,
        control: CallControl,
        queue: PlayoutQueue,
        *,
        on_ended: Callable[[str], None] | None = None,
        observe: Observer | None = None,
        backend: VoiceBackend | None = None,
    ) -> None:
        """`backend` overrides the settings' (bench/latency.py observes its connections)."""
        self.call_id = call_id
        chosen = backend or settings.backend
        if chosen is None:
            raise ValueError("SessionSettings.backend: no voice backend given")
        self.backend: VoiceBackend = chosen
        # Caller transcripts only for replay (the operator did not ask for transcription).
        self._replay_only_transcripts = False
        settings.config = self._with_replay_transcription(settings.config, settings)
        self.settings = settings
        self.control = control
        self.queue = queue
        self.on_ended = on_ended
        self.ctx = m.CallContext(settings.policy)
        self.stats = SessionStats()
        self.conversation = Conversation()
        # The voice backend's wire form of the actions; a fresh one per connection.
        self.link: VoiceLink = self.backend.new_link(settings.config)
        self.transitions: list[tuple[float, str]] = [(time.time(), self.ctx.state.value)]
        self._client: VoiceConnection | None = None
        self._appender: Callable[[bytes], bool | None] | None = None  # see _set_client
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Task[Any]] = set()  # connections being closed
        self._reconnecting = False
        self._reconnect_times: deque[float] = deque()  # loop times of attempts in the window
        self._backoff_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests: fake
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # What on_output_tick reads, kept where the media clock reads it too: the clock calls
        # the hook only on ticks it has work (issue 14; gateway/media/pacer.py PyTickWatch).
        # `_playout_nonempty`, `_audio_t0` (loop time at which the call's audio time began:
        # the first caller audio, or the ACK of a call whose caller never sends; None until
        # then: nothing is appended) and `_audio_samples` (caller audio handed to the voice
        # session, fill included) are properties over it.
        self.tick_watch = TickWatch(
            queue, fill_after_s=HOLD_FILL_AFTER_S, sample_rate=SAMPLE_RATE, frame_bytes=FRAME_BYTES
        )
        self._input_burst = int(settings.input_burst_s * SAMPLE_RATE)
        append_bytes = int(settings.append_s * SAMPLE_RATE)
        self._gather = AudioGather(append_bytes) if append_bytes > FRAME_BYTES else None
        self.tick_watch.always = self._gather is not None  # the hook checks gathering per tick
        self._overflow_logged: set[str] = set()
        self._voice_seconds: dict[int, float] = {}  # per connection: its latest snapshot
        self._shallow_playout = settings.policy.continuous_output
        if self._shallow_playout:
            queue.start_delay_frames = LIVE_PLAYOUT_START_DELAY_FRAMES
        # The loop's clock, bound once: asyncio.get_running_loop() costs a getpid() syscall
        # per call on CPython 3.11 (4 % of the gateway's CPU at 100 calls, docs/benchmarks.md).
        self._now: Callable[[], float] | None = None
        self._silence = queue.silence_frame
        self._closed = False
        # A late offer's codec, with its session config and playout queue, until SwitchCodec.
        self._codec_switch: tuple[str, Any, PlayoutQueue] | None = None
        self._ended_reported = False
        self._observe = observe
        # speech_stopped -> first audio delta: what the caller feels as "the bot is slow".
        self._speech_stopped_at: float | None = None

    @property
    def _playout_nonempty(self) -> bool:
        return bool(self.tick_watch.playout_nonempty)

    @_playout_nonempty.setter
    def _playout_nonempty(self, value: bool) -> None:
        self.tick_watch.playout_nonempty = value

    @property  # type: ignore[override]
    def _audio_t0(self) -> float | None:
        return self.tick_watch.audio_t0  # type: ignore[no-any-return]

    @_audio_t0.setter
    def _audio_t0(self, value: float | None) -> None:
        self.tick_watch.audio_t0 = value

    @property  # type: ignore[override]
    def _audio_samples(self) -> int:
        return self.tick_watch.audio_samples  # type: ignore[no-any-return]

    @_audio_samples.setter
    def _audio_samples(self, value: int) -> None:
        self.tick_watch.audio_samples = value

    @property
    def history(self) -> list[Turn]:
        """The conversation's turns (what a fresh session would be given)."""
        return self.conversation.turns

    @property
    def _partial_transcripts(self) -> dict[str, list[str]]:
        return self.conversation.partial

    def _with_replay_transcription(self, config: Any, settings: SessionSettings) -> Any:
        config, replay_only = self.backend.with_replay_transcription(
            config, settings.replay_transcription_model
        )
        self._replay_only_transcripts = self._replay_only_transcripts or replay_only
        return config

    # -- inputs from the application -----------------------------------------------------------

    def start(self) -> None:
        self.dispatch(m.Start())

    def on_ack(self, caller_sends: bool = True) -> None:
        """The ACK (inbound) or the callee's answer (outbound). `caller_sends` False (our
        direction is sendonly/inactive): no RTP will ever come, so audio time starts now."""
        if not caller_sends or self._shallow_playout:
            # GPT-Live's session clock moves only with input audio (gpt-live-protocol.md
            # section 4): from the ACK on, silence stands in for RTP a caller has not sent yet,
            # or the greeting and the digits are never placed and the session expires idle.
            self.start_input()
        self.dispatch(m.Ack())

    def start_input(self) -> None:
        """Start the call's audio time (and so hold-filling) if it has not started."""
        if self._audio_t0 is None:
            self._audio_t0 = self._loop_time()

    def on_sip_ended(self, reason: str) -> None:
        """The dialog is gone (peer BYE, CANCEL, Timer H...): no BYE from us."""
        self.dispatch(m.CallerCancel() if reason == "cancelled" else m.CallerBye())

    def on_dtmf(self, digit: str, source: str) -> None:
        self.dispatch(m.Dtmf(digit, source, self._playout_snapshot()))

    def on_rtp_timeout(self, seconds: float) -> None:
        self.dispatch(m.RtpTimeout(seconds))

    def on_max_duration(self) -> None:
        self.dispatch(m.MaxDuration())

    def on_ack_timeout(self) -> None:
        self.dispatch(m.AckTimeout())

    def _loop_time(self) -> float:
        return (self._now or self._bind_clock())()

    def _bind_clock(self) -> Callable[[], float]:
        now = self._now = asyncio.get_running_loop().time
        return now

    def on_output_tick(self) -> None:
        """Called after an outbound 20 ms tick: detects drained playout, fills hold gaps.
        The media clock calls it on the ticks `tick_watch` says it has work (every tick
        without the watch); on any other tick it would do nothing."""
        if self._playout_nonempty and self.queue.queued_bytes == 0:
            self._playout_nonempty = False
            self.dispatch(m.PlayoutDrained())
        if self._audio_t0 is None:
            return  # no caller audio yet: nothing to keep running, nothing billed
        now = self._loop_time()
        if self._gather is not None and self._gather.due(now):
            self._send_gathered()
        behind = (now - self._audio_t0 - HOLD_FILL_AFTER_S) * SAMPLE_RATE - self._audio_samples
        if behind >= FRAME_BYTES:
            # Keep audio time running (server VAD and idle timeouts count audio, not wall
            # time), catching up what the caller's silence left out, not just one frame.
            frames = min(int(behind // FRAME_BYTES), 50)
            self.stats.silence_filled_bytes += frames * FRAME_BYTES
            self._audio_samples += frames * FRAME_BYTES
            self._append(self._silence * frames)

    def _session_seconds(self, seconds: float) -> None:
        """The current session's cumulative usage: its latest value replaces the previous one
        (reference section 10); the call's total adds each session's latest."""
        key = id(self._client)
        previous = self._voice_seconds.get(key, 0.0)
        if seconds <= previous:
            return
        self._voice_seconds[key] = seconds
        self.stats.voice_seconds = sum(self._voice_seconds.values())
        self._emit("voice_seconds", seconds=seconds - previous)

    def _playout_overflow(self, item_id: str, dropped: int) -> None:
        self.stats.playout_overflow_bytes += dropped
        if item_id not in self._overflow_logged:
            self._overflow_logged.add(item_id)
            log_event(
                log,
                "call.playout_overflow",
                "bot audio beyond the playout bound: the rest of this item is dropped",
                level=logging.WARNING,
                call_id=self.call_id,
                item_id=item_id,
                queued_bytes=self.queue.queued_bytes,
            )

    def say(self, text: str, role: str = "system", respond: bool = True) -> None:
        """Inject a message (control API `POST /calls/{id}/say`): a text item, then a response
        when `respond` (the machine holds it while another response is active)."""
        self.dispatch(m.OperatorSay(text, role, respond))

    def on_hold_changed(self, on_hold: bool, direction: str) -> None:
        """A re-INVITE/UPDATE changed our negotiated direction (hold, resume)."""
        self.dispatch(m.HoldChanged(on_hold, direction))

    def on_operator_hangup(self) -> None:
        """The control API hangs up an answered call: the machine ends it (BYE)."""
        self.dispatch(m.OperatorHangup())

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._observe is None:
            return
        try:
            self._observe(kind, fields)
        except Exception:  # observability must never take the call down
            log.exception("observer failed", extra={"call_id": self.call_id})

    def on_codec_answered(self, codec: str, config: Any, queue: PlayoutQueue) -> None:
        """Late offer: the ACK's answer chose `codec`; `config` and `queue` are the session
        configuration and playout queue for it, used when the machine says SwitchCodec."""
        self._codec_switch = (codec, config, queue)
        self.dispatch(m.CodecAnswered(codec))

    def set_codec(self, config: Any, queue: PlayoutQueue) -> None:
        """Switch the session's G.711 law (Realtime: one session.update; GPT-Live: a new
        session, its format is immutable) and the playout queue, so audio still passes
        through untranscoded."""
        self._send_gathered()  # caller audio in the old law goes before the switch
        fmt = self.backend.audio_format
        changed = fmt(config) != fmt(self.settings.config)
        config = self._with_replay_transcription(config, self.settings)
        self.settings.config = config
        self.queue = queue
        self.tick_watch.queue = queue
        if self._shallow_playout:
            queue.start_delay_frames = LIVE_PLAYOUT_START_DELAY_FRAMES
        self._silence = queue.silence_frame
        client = self._client
        if changed and client is not None and client.connected:
            self._spawn(self._reconfigure(client, config))

    async def _reconfigure(self, client: VoiceConnection, config: Any) -> None:
        try:
            switched = await client.switch_codec(config, self.settings.policy.setup_timeout_s)
        except VoiceSetupError as exc:
            self.dispatch(m.SessionFailed(f"codec switch refused: {exc}"))
            return
        if not switched and not await self._swap_to_new_session():
            self.dispatch(m.SessionFailed("codec switch: no session with the new format"))

    # -- the machine -------------------------------------------------------------------------

    def dispatch(self, event: m.Event) -> None:
        if self._closed:
            return
        before = self.ctx.state
        try:
            self.ctx, actions = m.step(self.ctx, event)
        except m.IllegalTransition as exc:
            self.stats.illegal_events += 1
            log_event(
                log, "call.illegal_event", str(exc), level=logging.WARNING, call_id=self.call_id
            )
            return
        state = self.ctx.state
        if state is not before:
            self.transitions.append((time.time(), state.value))
            # Turn-taking moves (3-4 a turn) are DEBUG: the record's timeline keeps them (issue 14).
            level = logging.DEBUG if state in m.ACTIVE and before in m.ACTIVE else logging.INFO
            log_event(log, "call.state", level=level, call_id=self.call_id, state=state.value,
                      previous=before.value)  # fmt: skip
        for action in actions:
            try:
                self._execute(action)
            except Exception:  # an action must never take the call down with it
                log.exception(
                    "action %s failed", type(action).__name__, extra={"call_id": self.call_id}
                )
        if self.ctx.state is m.State.ENDED and not self._ended_reported:
            self._ended_reported = True
            if self.on_ended is not None:
                self.on_ended(self.ctx.hangup_cause or "ended")

    def _bot_audio(self, event: m.BotAudio) -> None:
        """`dispatch(event)` for a bot audio delta (issue 14). A delta that moves no state
        (`m.steady_bot_audio`: the call already speaking, or the caller, or ending, or
        transferring) goes straight to the playout queue with the context `step` would give;
        any other (a reply's first audio in LISTENING, audio of a discarded reply, an illegal
        one) is dispatched: the state line, the transitions and the actions as ever."""
        if self._closed:
            return
        ctx = m.steady_bot_audio(self.ctx, event)
        if ctx is None:
            self.dispatch(event)
            return
        self.ctx = ctx
        try:
            self._enqueue_bot_audio(event.item_id, event.audio)
        except Exception:  # as in dispatch: an action must never take the call down with it
            log.exception("action EnqueueAudio failed", extra={"call_id": self.call_id})

    def _enqueue_bot_audio(self, item_id: str, audio: bytes) -> None:
        if self.queue.enqueue(item_id, audio) is False:  # dropped by the bound
            self._playout_overflow(item_id, len(audio))
        elif self._shallow_playout:
            # A real-time track (GPT-Live): at most this delta plus LIVE_PLAYOUT_SLACK
            # waits, so the caller stops hearing the model as soon as it falls silent.
            excess = self.queue.queued_bytes - len(audio) - LIVE_PLAYOUT_SLACK_BYTES
            if excess > 0:
                self.stats.playout_trimmed_bytes += self.queue.drop_oldest(excess)
        self._playout_nonempty = True

    def _execute(self, action: m.Action) -> None:
        match action:
            case m.EnqueueAudio(item_id, audio):
                self._enqueue_bot_audio(item_id, audio)
            case m.EndOfAudio(item_id):
                self.queue.end_of_item(item_id)
            case m.FlushPlayout():
                self.queue.flush()
                self._playout_nonempty = False
                self.stats.barge_ins += 1
            case m.StopBotAudio(items, cancel_reply):
                unheard = [(item.item_id, item.heard_ms) for item in items]
                for event in self.link.stop_bot_audio(cancel_reply, unheard):
                    self._send(event)
                for item in items:
                    self._forget_unheard(item.item_id, item.heard_ms)
                    # Cut: the queue forgets it (flushed above), or, as its discarded reply is
                    # never completed, it stays "playing" and every later turn of the caller
                    # would barge in on it and truncate it again.
                    self.queue.forget(item.item_id)
            case m.RequestReply(instructions):
                for event in self.link.request_reply(instructions):
                    self._send(event)
            case m.AddText(text, role):
                for event in self.link.add_text(text, role):
                    self._send(event)
                self.conversation.append(Turn(role, text))
            case m.ReturnToolResult(call_id, output):
                for event in self.link.return_tool_result(call_id, output):
                    self._send(event)
            case m.RunTool(call_id, name, arguments):
                self._spawn(self._run_tool(call_id, name, arguments))
            case m.SendDigits(digits):
                try:
                    self.control.send_digits(digits)
                except ValueError as exc:
                    log_event(
                        log,
                        "dtmf.send_failed",
                        str(exc),
                        level=logging.WARNING,
                        call_id=self.call_id,
                    )
            case m.OpenSession():
                self._spawn(self._open_session())
            case m.CloseSession():
                client = self._client
                self._set_client(None)
                if client is not None:
                    # Not cancelled by close(): a half-closed client would leak its tasks.
                    self._closing.add(self._spawn(client.close()))
            case m.Reconnect(reason):
                self._spawn(self._reconnect(reason))
            case m.Rollover():
                self._spawn(self._rollover())
            case m.Answer():
                self.control.answer()
            case m.Reject(status, reason, retry_after_s):
                self.control.reject(status, reason, retry_after_s)
            case m.SendBye(cause, text):
                client = self._client
                if self._shallow_playout and client is not None and client.connected:
                    # GPT-Live: session.close, its session.closed (bounded), then the BYE.
                    self._set_client(None)
                    self._closing.add(self._spawn(self._close_then_hangup(client, cause, text)))
                else:
                    self.control.hangup(cause, text)
            case m.SendRefer(target_uri):
                self._spawn(self._refer(target_uri))
            case m.SwitchCodec(codec):
                pending, self._codec_switch = self._codec_switch, None
                if pending is not None and pending[0] == codec:
                    self.set_codec(pending[1], pending[2])
            case m.StopMedia():
                self.control.stop_media()
            case m.StartTimer(name, seconds):
                self._start_timer(name, seconds)
            case m.CancelTimer(name):
                handle = self._timers.pop(name, None)
                if handle is not None:
                    handle.cancel()
            case m.Note(event, fields):
                log_event(log, event, call_id=self.call_id, **fields)
                if event in _IDLE_NOTES:
                    self._emit("idle", source=_IDLE_NOTES[event])
            case _:
                raise TypeError(f"unknown action {action!r}")

    async def _close_then_hangup(self, client: Any, cause: EndCause, text: str) -> None:
        # GPT-Live's session clock moves only while input audio arrives (reference section 2)
        # and its close drains output work first: silence keeps it going until session.closed
        # (section 6, transfer_call: "keep sending silence until the close completes").
        filler = self._spawn(self._silence_until_closed(client))
        try:
            await client.close()
        finally:
            filler.cancel()
            self.control.hangup(cause, text)

    async def _silence_until_closed(self, client: Any) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        frame_s = FRAME_BYTES / SAMPLE_RATE
        while client.connected:  # checked right before: the append cannot find it gone
            if client.append_audio(self._silence):
                self.stats.silence_filled_bytes += len(self._silence)
            due += frame_s
            await asyncio.sleep(max(0.0, due - loop.time()))  # paced like the media clock

    def _forget_unheard(self, item_id: str, heard_ms: int) -> None:
        """A barge-in's bookkeeping of one bot item: statistics, observer, the conversation
        kept for replays, the `call.truncate` log line."""
        if heard_ms > 0:
            self.stats.truncates += 1
            self._emit("barge_in", item_id=item_id, audio_end_ms=heard_ms, action="truncate")
            received_ms = self.ctx.received_bytes.get(item_id, 0) / 8
            self.conversation.truncate(item_id, heard_ms, received_ms)
            log_event(
                log, "call.truncate", call_id=self.call_id, item_id=item_id, audio_end_ms=heard_ms
            )
            return
        self.stats.deletes += 1
        self._emit("barge_in", item_id=item_id, audio_end_ms=0, action="delete")
        self.conversation.delete(item_id)
        log_event(
            log,
            "call.truncate",
            call_id=self.call_id,
            item_id=item_id,
            audio_end_ms=0,
            deleted=True,
        )

    def _send(self, event: dict[str, Any]) -> None:
        client = self._client
        if client is None or not client.connected:
            log_event(
                log,
                "realtime.event_dropped",
                "no voice session to send to",
                level=logging.WARNING,
                call_id=self.call_id,
                type=event.get("type"),
            )
            return
        client.send(event)

    # -- timers -------------------------------------------------------------------------------

    _TIMER_EVENTS: ClassVar[dict[str, Callable[[], m.Event]]] = {
        # Backend-neutral: Realtime waits for session.updated, GPT-Live for session.started.
        m.T_SETUP: lambda: m.SessionFailed(
            "the voice session was not ready within realtime.setup_timeout_s"
        ),
        m.T_DIGITS: m.DigitTimeout,
        m.T_DRAIN: m.DrainTimeout,
        m.T_IDLE: m.IdleTimeout,
        "session_cap": m.SessionCapNear,
    }

    def _start_timer(self, name: str, seconds: float) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        factory = self._TIMER_EVENTS[name]

        def fire() -> None:
            self._timers.pop(name, None)
            self.dispatch(factory())

        self._timers[name] = asyncio.get_running_loop().call_later(seconds, fire)

    def _playout_snapshot(self) -> tuple[m.PlayoutItem, ...]:
        return tuple(
            m.PlayoutItem(item_id, self.queue.played_bytes(item_id))
            for item_id in self.queue.pending_items()
        )

    # -- SIP-side async actions -----------------------------------------------------------------

    async def _refer(self, target_uri: str) -> None:
        try:
            status = await self.control.refer(target_uri)
        except Exception as exc:  # the transfer failing must reach the model, not kill the call
            log.warning("REFER to %s failed: %s", target_uri, exc, extra={"call_id": self.call_id})
            status = 500
        self.dispatch(m.ReferResult(status))

    async def _run_tool(self, call_id: str, name: str, arguments: Mapping[str, Any]) -> None:
        tool = self.settings.http_tools.get(name)
        started = time.monotonic()
        if tool is None:
            output = tool_error(f"unknown tool {name}")
        else:
            output = await call_http_tool(
                tool,
                call_id=self.call_id,
                caller=self.settings.caller,
                callee=self.settings.callee,
                arguments=arguments,
            )
        log_event(log, "tool.result", call_id=self.call_id, name=name, bytes=len(output))
        self._emit_tool(
            name,
            call_id,
            dict(arguments),
            _tool_result(tool is not None, output),
            round((time.monotonic() - started) * 1000),
            output[:2000],
        )
        self.dispatch(m.ToolResult(call_id, output))

    # -- ownership ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "call task failed", exc_info=task.exception(), extra={"call_id": self.call_id}
            )

    async def close(self) -> None:
        """Tear everything down (idempotent). The application calls this when the call is over."""
        if self._closed:
            return
        if self.ctx.state is not m.State.ENDED:
            self.dispatch(m.CallerBye())
        self._closed = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        client = self._client
        self._set_client(None)
        try:
            tasks = [t for t in self._tasks if t not in self._closing]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._closing:
                # Graceful closes (GPT-Live waits for session.closed up to 12 s): past 5 s
                # they are cancelled, and each still closes its socket on the way out.
                _, pending = await asyncio.wait(list(self._closing), timeout=5.0)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=3.0)
            if client is not None:
                await client.close()
        finally:
            # Every reference back into the call (its control, its observer, its end
            # callback) goes, even when the close is cancelled, so the ended call is freed by
            # reference counting (issue 14).
            self.control = ENDED_CONTROL
            self._observe = None
            self.on_ended = None


_IDLE_NOTES = {"call.idle_prompt": "prompt", "call.idle_hangup": "hangup"}


def _tool_result(known: bool, output: str) -> str:
    """ok / error / timeout / unknown_tool, from the output an HTTP tool produced (the tool
    module turns every failure into an `{"ok": false, "error": ...}` output for the model)."""
    if not known:
        return "unknown_tool"
    compact = output.replace(" ", "")
    if '"ok":false' not in compact:
        return "ok"
    return "timeout" if "timed out" in output or "timeout" in output.lower() else "error"
