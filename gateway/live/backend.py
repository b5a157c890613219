"""GPT-Live as a voice backend (gateway/voice.py `VoiceBackend`). `LiveClient` is itself the
connection (`voice.VoiceConnection`): it knows `seconds_left` (the session's `expires_at`) and
refuses an in-place codec switch (the audio format is immutable: the call opens a new session
with the other law instead, which right after the ACK of a late offer costs one start-up)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway import voice
from gateway.live import protocol as lp
from gateway.live.client import LiveClient, LiveError
from gateway.live.link import LiveLink
from gateway.wsock import Endpoint


class LiveConnection(LiveClient):
    async def switch_codec(self, config: Any, timeout: float) -> bool:  # noqa: ASYNC109
        return False  # immutable format (reference 2): a new session instead


class LiveBackend:
    name = "live"

    async def open(
        self,
        endpoint: Endpoint,
        config: lp.LiveSessionConfig,
        history: Sequence[tuple[str, str]],
        timeout: float,  # noqa: ASYNC109 (every wait in the API is bounded)
    ) -> LiveConnection:
        """Start a session seeded with `history` (session.start `input`)."""
        client = LiveConnection(endpoint, config)
        try:
            await client.open(history, timeout)
        except LiveError as exc:
            raise voice.VoiceSetupError(str(exc)) from exc
        return client

    def new_link(self, config: lp.LiveSessionConfig) -> LiveLink:
        return LiveLink(responses_mode=config.responses_mode, law=config.law)

    def describe(self, endpoint: Endpoint) -> str:
        return endpoint.redacted()

    def audio_format(self, config: lp.LiveSessionConfig) -> str:
        return config.audio_format

    def with_replay_transcription(
        self, config: lp.LiveSessionConfig, model: str
    ) -> tuple[lp.LiveSessionConfig, bool]:
        # Both transcripts are always on in GPT-Live (no setting exists, reference 2): the
        # caller's are reported like the bot's.
        return config, False


__all__ = ["LiveBackend", "LiveConnection"]
