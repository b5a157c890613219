"""The conversation of one call as text: what is replayed into a fresh voice session.

A rollover (the session cap) or a reconnect opens a new session that knows nothing; the call
session gives it the conversation so far as text (`replay_turns`). Turns are kept in the
order the service placed their items (a caller's transcription may arrive after the bot's
answer to it), interrupted bot sentences are cut where the caller stopped hearing them, and a
bot answer the dying session was still speaking is kept, marked as cut off.
"""

from __future__ import annotations

from dataclasses import dataclass

REPLAY_MAX_ITEMS = 40  # conversation items replayed into a new session (most recent)
# Turns kept (the oldest dropped beyond it): far more than a replay takes, and a bound on what a
# hostile voice service can make us keep and search. Without it, a server alternating caller
# and bot transcript fragments (a few bytes each, GPT-Live) made a new turn per fragment and
# each one was searched for across all: 20,000 alternations took 32 s of the event loop that
# every call shares.
MAX_TURNS = 256


@dataclass
class Turn:
    role: str  # "user" | "assistant" | "system"
    text: str
    item_id: str | None = None


class Conversation:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        # Bot transcript deltas of items not yet done: replayed (marked) if the socket drops.
        self.partial: dict[str, list[str]] = {}

    def append(self, turn: Turn) -> None:
        self.turns.append(turn)
        self._bound()

    def _bound(self) -> None:
        excess = len(self.turns) - MAX_TURNS
        if excess > 0:
            del self.turns[:excess]

    def place(self, turn: Turn, previous_item_id: str | None) -> None:
        """Put a conversation item's turn where the service put the item: right after
        `previous_item_id` when that item is known, else at the end (arrival order of the
        item, never of its text: transcription arrives before or after response.created)."""
        if any(t.item_id == turn.item_id for t in self.turns):
            return
        if previous_item_id is not None:
            for index in range(len(self.turns) - 1, -1, -1):
                if self.turns[index].item_id == previous_item_id:
                    self.turns.insert(index + 1, turn)
                    self._bound()
                    return
        self.append(turn)

    def fill(self, role: str, text: str, item_id: str) -> None:
        for turn in self.turns:
            if turn.item_id == item_id:
                turn.text = text
                return
        self.append(Turn(role, text, item_id))  # an item we did not see added

    def delete(self, item_id: str) -> None:
        self.turns = [t for t in self.turns if t.item_id != item_id]

    def bot_delta(self, item_id: str, delta: str) -> None:
        if item_id not in self.partial and len(self.partial) >= MAX_TURNS:
            del self.partial[next(iter(self.partial))]  # the oldest unfinished item
        self.partial.setdefault(item_id, []).append(delta)

    def bot_done(self, item_id: str, transcript: str) -> None:
        self.partial.pop(item_id, None)
        self.fill("assistant", transcript, item_id)

    def keep_partial(self) -> None:
        """The session died mid-answer: what the bot had said so far goes into the history the
        next session is given, marked, so the model knows where it was cut off."""
        for item_id, parts in self.partial.items():
            text = "".join(parts).strip()
            if text:
                self.fill("assistant", f"{text} [cut off]", item_id)
        self.partial.clear()

    def truncate(self, item_id: str, audio_end_ms: int, received_ms: float) -> None:
        """Keep roughly the part of the bot's sentence the caller heard (for replays)."""
        for turn in self.turns:
            if turn.item_id == item_id and received_ms > 0 and turn.text:
                keep = max(0, int(len(turn.text) * min(1.0, audio_end_ms / received_ms)))
                turn.text = turn.text[:keep] + " [interrupted]"

    def replay_turns(self) -> list[tuple[str, str]]:
        """The conversation so far as (role, text), for a fresh session (rollover, reconnect);
        the voice link turns them into its backend's items (`VoiceLink.replay`)."""
        spoken = [turn for turn in self.turns if turn.text]  # items with no text are skipped
        return [(turn.role, turn.text) for turn in spoken[-REPLAY_MAX_ITEMS:]]


__all__ = ["MAX_TURNS", "REPLAY_MAX_ITEMS", "Conversation", "Turn"]
