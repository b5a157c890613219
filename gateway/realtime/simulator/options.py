"""What a simulator does beyond the protocol: its scripted replies, tool calls, pacing, faults and
memory bounds (`SimulatorOptions`), and the tool-call script rules (`ToolCallRule`).

`SimulatorOptions.from_mapping` reads them from plain data (the CLI's `--script` JSON, TOML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.sim_shared.options import arguments_json, plain_values

SESSION_LIMIT_S = 3600.0
RESPONSE_OUTCOMES = ("completed", "failed", "incomplete", "incomplete_silent")


@dataclass(frozen=True, slots=True)
class ToolCallRule:
    """Script: on the Nth user turn, or when the user's text contains `when_text_contains`,
    answer with a call of tool `name` with `arguments` (a dict is JSON-encoded)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    on_turn: int | None = None
    when_text_contains: str | None = None
    once: bool = True
    # A spoken preamble ("Let me check...") of this many ms of audio, as its own output item
    # before the function call in the same response (the service does this). 0 = none.
    preamble_ms: int = 0

    def matches(self, turn: int, text: str) -> bool:
        if self.on_turn is not None and self.on_turn == turn:
            return True
        return bool(self.when_text_contains) and self.when_text_contains.lower() in text.lower()

    def arguments_json(self) -> str:
        return arguments_json(self.arguments)


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    session_max_s: float = SESSION_LIMIT_S
    # Reply audio: None = play the caller's last utterance back; else raw bytes in reply_format.
    reply_audio: bytes | None = None
    reply_format: str = "audio/pcmu"
    reply_text: str | None = None
    # One transcript per user audio turn (turn 1 = index 0), used for input transcription
    # events and for `when_text_contains` rules; turns past the list get "".
    transcripts: tuple[str, ...] = ()
    tool_calls: tuple[ToolCallRule, ...] = ()
    # Irregular delta sizes (bytes of output audio), cycled: the real service is not frame-aligned.
    delta_sizes: tuple[int, ...] = (480, 1600, 160, 3200, 800, 2400, 1000)
    delta_interval_s: float = 0.002  # far faster than real time, like the service
    # Simulated VAD: frames louder than this many dBFS at threshold 0.5 are speech.
    vad_db_at_half: float = -40.0
    default_reply_ms: int = 1000
    # Cut every session's TCP connection (no close frame) this long after it opened; 0 = never.
    # A service that keeps dropping sessions: what a client's reconnect budget is for.
    drop_after_s: float = 0.0
    # Issue 10: what the real service does that the fast defaults above do not.
    # When the caller's input transcription arrives: "before" (right after the commit) or
    # "after" (after the response.created of the answer to it); the service does both.
    transcription_timing: str = "before"
    # All tool rules matching a turn fire in one response (several function_call items),
    # instead of the first one only.
    parallel_tool_calls: bool = False
    # Pace output audio near real time, as the service streams it: each delta is followed by
    # its own duration / realtime_pace (1.0 = real time, 1.5 = 50 % faster). 0 = off (the
    # fixed, far-faster `delta_interval_s`).
    realtime_pace: float = 0.0
    # Deltas already in flight when a response is cancelled (turn_detected or client):
    # this many more are still sent after the cancel, as the service's late deltas are.
    late_deltas: int = 0
    # Outcome of the n-th response (1-based order), then "completed" for the rest:
    # "completed", "failed" (no output, status_details.error), "incomplete" (half the audio,
    # reason max_output_tokens) or "incomplete_silent" (no audio, reason content_filter).
    response_outcomes: tuple[str, ...] = ()
    # Answer the first session.update with this error (event_id null, no param unless given):
    # e.g. {"type": "server_error", "code": None, "message": "..."}. None = accept it.
    session_update_error: dict[str, Any] | None = None
    # Which schema decides what a client event may hold: "auto" (the `openai` SDK's models
    # when importable, else the built-in tables), "sdk" (the same, named), "builtin".
    # Semantic rules (`semantic_problem`) apply either way; see gateway/realtime/sim_sdk.py.
    schema: str = "auto"
    # Memory over a long run (issue 14). Finished sessions kept for inspection (`sessions`),
    # the most recent ones; older finished sessions are forgotten. Live sessions are always kept.
    keep_sessions: int = 50
    # Base64 audio kept in a session's recorded events (client input_audio_buffer.append
    # `audio` + server response.output_audio.delta `delta`), in characters. Past it, recorded
    # events keep their shape with "" as audio (`audio_chars_dropped` counts what went); what
    # the session does with the audio is unchanged. 0 = record no audio.
    keep_audio_chars: int = 2 * 1024 * 1024
    # Load mode (issue 14), for load tests where the simulator must not be the bottleneck: the
    # wire protocol is unchanged (every client event validated, audio paced as configured) but
    # input_audio_buffer.append and response.output_audio.delta events are not recorded, and
    # the server VAD measures each 10 ms frame on a few samples (vad.py, sampled_frame_levels_db)
    # instead of decoding all of them with numpy. `simulator --load` also runs it on uvloop.
    load_mode: bool = False

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> SimulatorOptions:
        """Options from plain data (CLI `--script` JSON, TOML config): lists become tuples and
        `tool_calls` entries are dicts of ToolCallRule fields. Unknown keys are a ValueError."""
        values = plain_values(
            options,
            cls.__dataclass_fields__,
            ToolCallRule,
            ("transcripts", "delta_sizes", "response_outcomes"),
            "simulator",
            "tool_calls",
        )
        if values.get("reply_format", "audio/pcmu") not in ("audio/pcmu", "audio/pcma"):
            raise ValueError("reply_format must be audio/pcmu or audio/pcma")
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        """ValueError naming the option when a value is out of its range."""
        if self.schema not in ("auto", "sdk", "builtin"):
            raise ValueError("schema must be 'auto', 'sdk' or 'builtin'")
        if self.transcription_timing not in ("before", "after"):
            raise ValueError("transcription_timing must be 'before' or 'after'")
        bad = [o for o in self.response_outcomes if o not in RESPONSE_OUTCOMES]
        if bad:
            raise ValueError(f"response_outcomes: unknown outcome(s) {', '.join(bad)}")
        if self.realtime_pace < 0 or self.late_deltas < 0:
            raise ValueError("realtime_pace and late_deltas must be >= 0")
        if self.keep_sessions < 0 or self.keep_audio_chars < 0:
            raise ValueError("keep_sessions and keep_audio_chars must be >= 0")
