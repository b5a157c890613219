"""What the GPT-Live simulator does beyond the protocol: pacing, the session clock's limits,
barge-in latency, scripted replies and delegation calls, faults and memory bounds
(`LiveSimulatorOptions`), and the delegation script rules (`LiveToolCallRule`).

`LiveSimulatorOptions.from_mapping` reads them from plain data (the CLI's `--script` JSON under
its "live" key). Values the reference gives as measured are the defaults; UNKNOWN ones are
marked so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.sim_shared.options import arguments_json, plain_values


@dataclass(frozen=True, slots=True)
class LiveToolCallRule:
    """Script of the Responses backend: after the `on_utterance`-th caller utterance, or when a
    caller transcript, an append's content or a `response.item.create` message contains
    `when_text_contains`, call function tool `name` with `arguments` (a dict is JSON-encoded).
    The call is made only when the session offers a function tool of that name (the backend
    model calls only tools it has). In client delegation mode the same rule emits a
    `session.delegation.created{target: client}` instead (no tool list exists there).
    After every call of the batch has its output and `response.create` arrives, the simulator
    speaks `continuation_text` (a tone of `continuation_ms`)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    on_utterance: int | None = None
    when_text_contains: str | None = None
    once: bool = True
    continuation_text: str = "Done."

    def matches(self, utterance: int | None, text: str) -> bool:
        if utterance is not None and self.on_utterance == utterance:
            return True
        return bool(self.when_text_contains) and self.when_text_contains.lower() in text.lower()

    def arguments_json(self) -> str:
        return arguments_json(self.arguments)


@dataclass(frozen=True, slots=True)
class LiveSimulatorOptions:
    # One session.output_audio.delta every delta_ms, paced on the monotonic clock. 100 ms is
    # what was observed (TRV: 557 deltas over 55.6 s); tests may use 20.
    delta_ms: int = 100
    # Wall time without input audio after which the session ends session.closed{expired}
    # (measured about 31 s by a third party, gpt-live-protocol.md section 2).
    idle_expire_s: float = 30.0
    # expires_at = start + session_max_s; at it, session.closed{expired}. The real maximum is
    # UNKNOWN; short values serve rollover tests.
    session_max_s: float = 3600.0
    # Caller speech over non-silent output: the output turns to silence this long after the
    # caller's speech starts, with no event. The real latency is UNKNOWN (T2: faster than the
    # caller's transcript fragments, which lag 0.6-1 s).
    barge_in_latency_ms: int = 200
    # VAD: frames louder than this (dBFS) are speech; this much silence ends an utterance.
    vad_db: float = -40.0
    silence_ms: int = 500
    prefix_ms: int = 300
    # Caller transcript of utterance 1, 2, ... (past the list: "utterance N"), delivered as
    # session.input_transcript.delta fragments on a 200 ms grid, transcript_lag_ms behind.
    transcripts: tuple[str, ...] = ()
    transcript_lag_ms: int = 600
    # Reply to an utterance: None = the caller's own utterance, byte for byte; else raw audio in
    # the session format. reply_text: its transcript (default: the caller's transcript).
    reply_audio: bytes | None = None
    reply_text: str | None = None
    # Greeting: an instructions.append placed before any caller speech is answered with
    # greeting_audio (raw, session format), else a 440 Hz tone of greeting_ms.
    greeting_audio: bytes | None = None
    greeting_ms: int = 1000
    greeting_text: str = "Hello, how can I help?"
    # A commentary append is spoken as a 550 Hz tone of commentary_ms with its content as the
    # output transcript.
    commentary_ms: int = 600
    continuation_ms: int = 600
    # Appends are acknowledged when the session clock (input audio) reaches this many ms after
    # their arrival, drawn per append in [low, high] (TRV: 602-959 ms).
    append_ack_ms: tuple[int, int] = (600, 1000)
    # session.usage.updated{usage{seconds}} each time the session clock passes a multiple of it
    # (about 15 s observed, TRV).
    usage_every_s: float = 15.0
    tool_calls: tuple[LiveToolCallRule, ...] = ()
    # session.close drains queued speech for at most this long (about 10 s, PC).
    close_drain_s: float = 10.0
    # Faults. drop_after_s: cut each session's TCP connection (no session.closed) this long
    # after session.started; 0 = never. reject_starts: answer the first N session.start
    # (counted over the simulator's life) with error{type: server_error} and close the socket.
    # moderation_on_utterance: the reply to that utterance is cut by a moderation error (the
    # session goes on). content_close_on_utterance: the reply to that utterance ends the session
    # with session.closed{reason: content}.
    drop_after_s: float = 0.0
    reject_starts: int = 0
    # ignore_starts: leave the first N session.start (after the rejected ones) unanswered, the
    # socket open: a start-up timeout for the client.
    ignore_starts: int = 0
    moderation_on_utterance: int | None = None
    content_close_on_utterance: int | None = None
    # Memory (as the Realtime simulator's, issue 14): finished sessions kept for inspection,
    # and base64 audio characters kept in each session's recorded events.
    keep_sessions: int = 50
    keep_audio_chars: int = 2 * 1024 * 1024
    # Load mode (as the Realtime simulator's, `simulator --load`): the same wire protocol, but
    # input appends and output deltas are not recorded and the VAD measures each 10 ms frame on
    # a few samples (gateway/sim_shared/vad.py, sampled_frame_levels_db).
    load_mode: bool = False

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> LiveSimulatorOptions:
        """Options from plain data; unknown keys and bad values are a ValueError naming them."""
        values = plain_values(
            options,
            cls.__dataclass_fields__,
            LiveToolCallRule,
            ("transcripts", "append_ack_ms"),
            "live simulator",
            "live.tool_calls",
        )
        options_ = cls(**values)
        options_.check()
        return options_

    def check(self) -> None:
        """ValueError naming the option when a value is out of its range."""
        if not 10 <= self.delta_ms <= 1000:
            raise ValueError("live.delta_ms must be between 10 and 1000")
        for name in ("idle_expire_s", "session_max_s", "close_drain_s", "usage_every_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"live.{name} must be > 0")
        if self.drop_after_s < 0 or self.reject_starts < 0 or self.ignore_starts < 0:
            raise ValueError("live.drop_after_s, reject_starts and ignore_starts must be >= 0")
        low, high = self.append_ack_ms
        if not 0 <= low <= high:
            raise ValueError("live.append_ack_ms must be [low, high] with 0 <= low <= high")
        if self.keep_sessions < 0 or self.keep_audio_chars < 0:
            raise ValueError("live.keep_sessions and live.keep_audio_chars must be >= 0")
        if self.barge_in_latency_ms < 0 or self.silence_ms < 10 or self.prefix_ms < 0:
            raise ValueError("live.barge_in_latency_ms, silence_ms, prefix_ms out of range")
