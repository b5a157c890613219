"""The input side of a simulated session: the input audio buffer on audio time, server VAD turns
(speech_started / speech_stopped, idle timeout), commits and the user items they make.

`InputAudio` is one part of `SimSession` (session.py), which supplies the state, `options`,
`send`/`send_error` and, from responses.py, `_start_response`.
"""

from __future__ import annotations

from typing import Any

from gateway.realtime.simulator.items import Item, new_id
from gateway.sim_shared.audio import BYTES_PER_MS, decode_audio
from gateway.sim_shared.vad import (
    FRAME_MS,
    STARTED,
    STOPPED,
    frame_levels_db,
    sampled_frame_levels_db,
    vad_settings,
)


class InputAudio:
    async def on_input_audio_buffer_append(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        audio = decode_audio(event["audio"])
        if audio is None:
            await self.send_error(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio.",
                "audio",
                event_id,
            )
            return
        self.buffer += audio
        self.input_bytes_total += len(audio)
        if self.turn_detection is not None:
            await self._run_vad(audio)

    def _vad_reset(self) -> None:
        self._vad_residual = b""
        self._edges.reset()

    async def _run_vad(self, audio: bytes) -> None:
        fmt = self.input_format
        bpms = BYTES_PER_MS[fmt]
        frame_bytes = bpms * FRAME_MS
        data = self._vad_residual + audio
        usable = len(data) - len(data) % frame_bytes
        self._vad_residual = data[usable:]
        if not usable:
            return
        first_frame_ms = (self.input_bytes_total - len(audio) - (len(data) - len(audio))) // bpms
        levels = sampled_frame_levels_db if self.options.load_mode else frame_levels_db
        db = levels(data[:usable], fmt, frame_bytes)
        threshold_db, prefix_ms, silence_ms = vad_settings(
            self.turn_detection, self.options.vad_db_at_half
        )
        edges = self._edges
        for index, level in enumerate(db):
            start_ms = first_frame_ms + index * FRAME_MS
            end_ms = start_ms + FRAME_MS
            voiced = level > threshold_db
            edge = edges.frame(voiced, end_ms, silence_ms)
            if edge is STARTED:
                await self._speech_started(
                    max(self.buffer_start_byte // bpms, start_ms - prefix_ms)
                )
            elif edge is STOPPED:
                await self._speech_stopped(end_ms)
            elif (
                not voiced
                and not edges.speaking
                and self._idle_deadline_ms is not None
                and end_ms >= self._idle_deadline_ms
                and (self.response is None or self.response.done)
            ):
                await self._idle_timeout(end_ms)

    async def _idle_timeout(self, audio_end_ms: int) -> None:
        """server_vad `idle_timeout_ms`: commit the silent span and answer it (reference 5)."""
        self._idle_deadline_ms = None
        bpms = BYTES_PER_MS[self.input_format]
        audio_start_ms = self.buffer_start_byte // bpms
        end = audio_end_ms * bpms - self.buffer_start_byte
        audio = bytes(self.buffer[:end])
        del self.buffer[:end]
        self.buffer_start_byte = audio_end_ms * bpms
        item_id = new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": audio_start_ms,
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        await self._commit_user_audio(item_id, audio)
        await self._start_response(None)

    def _arm_idle_timeout(self, output_ms: int) -> None:
        # The server cannot see playout on WS: it assumes playback takes as long as the audio
        # it produced, so the timer starts at response.done + that duration (on input audio time).
        td = self.turn_detection or {}
        idle_ms = td.get("idle_timeout_ms")
        if td.get("type") != "server_vad" or not idle_ms:
            return
        now_ms = self.input_bytes_total // BYTES_PER_MS[self.input_format]
        self._idle_deadline_ms = now_ms + output_ms + int(idle_ms)

    async def _speech_started(self, audio_start_ms: int) -> None:
        self._idle_deadline_ms = None
        self._speech_item_id = new_id("item")
        self._speech_start_ms = audio_start_ms
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        td = self.turn_detection or {}
        if (
            td.get("interrupt_response", True)
            and self.response is not None
            and not self.response.done
        ):
            self.response.cancel_reason = "turn_detected"

    async def _speech_stopped(self, audio_end_ms: int) -> None:
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": self._speech_item_id,
            }
        )
        bpms = BYTES_PER_MS[self.input_format]
        start = self._speech_start_ms * bpms - self.buffer_start_byte
        end = audio_end_ms * bpms - self.buffer_start_byte
        utterance = bytes(self.buffer[max(0, start) : end])
        del self.buffer[:end]
        self.buffer_start_byte = audio_end_ms * bpms
        await self._commit_user_audio(self._speech_item_id, utterance)
        td = self.turn_detection or {}
        if td.get("create_response", True):
            await self._start_response(None)

    async def _commit_user_audio(self, item_id: str, audio: bytes) -> None:
        previous = next(reversed(self.items), None)
        self.user_turns += 1
        transcripts = self.options.transcripts
        transcript = transcripts[self.user_turns - 1] if self.user_turns <= len(transcripts) else ""
        item = Item(
            item_id,
            "message",
            role="user",
            audio=bytearray(audio),
            audio_format=self.input_format,
            transcript=transcript,
            has_audio=True,
        )
        self.items[item_id] = item
        self.last_user_text = transcript
        self.last_utterance = audio
        self.last_utterance_format = self.input_format
        self.pending_inputs_from_user = True
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": item.wire(), "previous_item_id": previous}
        )
        await self.send(
            {"type": "conversation.item.done", "item": item.wire(), "previous_item_id": previous}
        )
        if self.config["audio"]["input"].get("transcription"):
            completed = {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "duration",
                    "seconds": round(len(audio) / (BYTES_PER_MS[self.input_format] * 1000), 3),
                },
            }
            if self.options.transcription_timing == "after":
                # The ASR pass is slower than the model: the text of this turn comes after
                # the response.created of the answer to it.
                self._deferred_transcriptions.append(completed)
            else:
                await self.send(completed)

    async def on_input_audio_buffer_commit(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        bpms = BYTES_PER_MS[self.input_format]
        buffered_ms = len(self.buffer) / bpms
        if buffered_ms < 100:
            await self.send_error(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {buffered_ms:.2f}ms of audio.",
                None,
                event_id,
            )
            return
        audio = bytes(self.buffer)
        self.buffer_start_byte += len(self.buffer)
        self.buffer.clear()
        item_id = self._speech_item_id if self._edges.speaking else new_id("item")
        self._vad_reset()
        await self._commit_user_audio(item_id, audio)

    async def on_input_audio_buffer_clear(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        self.buffer_start_byte += len(self.buffer)
        self.buffer.clear()
        self._vad_reset()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_output_audio_buffer_clear(
        self, event: dict[str, Any], event_id: str | None
    ) -> None:
        # WebRTC/SIP only; on a WebSocket the server holds no output buffer. ASSUMED error shape.
        await self.send_error(
            "invalid_value",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            "type",
            event_id,
        )
