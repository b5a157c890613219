"""The Realtime GA API as a voice backend (gateway/voice.py `VoiceBackend`): the call session
opens its sessions through this, never through `RealtimeClient` by name, so gateway/call
imports no backend. The connection is the client itself behind a thin adapter that adds what
the call asks of every backend (`seconds_left`, `switch_codec`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from gateway import voice
from gateway.realtime import protocol
from gateway.realtime.client import Endpoint, RealtimeClient, RealtimeError
from gateway.realtime.link import RealtimeLink


class RealtimeConnection:
    """A configured `RealtimeClient` as a `voice.VoiceConnection`. The hot-path methods are the
    client's own bound methods (no extra call per audio frame)."""

    def __init__(self, client: RealtimeClient) -> None:
        self.client = client
        self.append_audio = client.append_audio
        self.audio_appender = client.audio_appender
        self.send = client.send
        self.set_event_sink = client.set_event_sink

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def close(self) -> None:
        await self.client.close()

    def seconds_left(self) -> float | None:
        return None  # the configured cap (realtime.session_cap_s) applies

    async def switch_codec(self, config: Any, timeout: float) -> bool:  # noqa: ASYNC109
        """One session.update with the other G.711 law, confirmed (else VoiceSetupError)."""
        try:
            await self.client.configure(config, timeout=timeout)
        except RealtimeError as exc:
            raise voice.VoiceSetupError(str(exc)) from exc
        return True


class RealtimeBackend:
    """`client_factory` builds the client for an endpoint (tests and bench/latency.py observe
    it with a subclass)."""

    name = "realtime"

    def __init__(
        self, client_factory: Callable[[Endpoint], RealtimeClient] = RealtimeClient
    ) -> None:
        self._client_factory = client_factory

    async def open(
        self,
        endpoint: Endpoint,
        config: protocol.SessionConfig,
        history: Sequence[tuple[str, str]],
        timeout: float,  # noqa: ASYNC109 (every wait in the API is bounded)
    ) -> RealtimeConnection:
        """Connect and configure. History is replayed with the link's events (`replay`)."""
        client = self._client_factory(endpoint)
        try:
            await client.connect(timeout=timeout)
            # Any error during setup fails it at once (503 + Retry-After), not only one that
            # names a session parameter: nothing else has been sent that could have caused it.
            await client.configure(config, timeout=timeout, any_error=True)
        except RealtimeError as exc:
            await client.close()
            raise voice.VoiceSetupError(str(exc)) from exc
        except BaseException:
            await client.close()
            raise
        return RealtimeConnection(client)

    def new_link(self, config: Any) -> RealtimeLink:
        return RealtimeLink()

    def describe(self, endpoint: Endpoint) -> str:
        return endpoint.redacted()

    def audio_format(self, config: protocol.SessionConfig) -> str:
        return config.input_format

    def with_replay_transcription(
        self, config: protocol.SessionConfig, model: str
    ) -> tuple[protocol.SessionConfig, bool]:
        """The caller's side of the conversation must survive a rollover or reconnect, and the
        only text of it is the service's input transcription: when the operator configured
        none, `model` is turned on for replay only (calls.replay_transcription_model)."""
        if config.transcription_model or not model:
            return config, False
        return dataclasses.replace(config, transcription_model=model), True


__all__ = ["RealtimeBackend", "RealtimeConnection"]
