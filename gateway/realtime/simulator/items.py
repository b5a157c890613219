"""The simulator's conversation state as plain data: recorded wire events, conversation items
(with their wire form) and responses, plus the ids they carry."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from gateway.sim_shared.audio import BYTES_PER_MS
from gateway.sim_shared.records import Recorded, new_id

__all__ = ["Item", "Recorded", "Response", "new_id"]


@dataclass(slots=True)
class Item:
    id: str
    type: str
    role: str | None = None
    text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    audio_format: str = "audio/pcmu"
    transcript: str = ""
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    status: str = "completed"
    has_audio: bool = False

    @property
    def audio_ms(self) -> int:
        return len(self.audio) // BYTES_PER_MS[self.audio_format]

    def wire(self, with_audio: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": "realtime.item",
            "type": self.type,
            "status": self.status,
        }
        if self.type == "message":
            out["role"] = self.role
            content: list[dict[str, Any]] = []
            if self.role == "assistant" and self.has_audio:
                part: dict[str, Any] = {"type": "output_audio", "transcript": self.transcript}
                if with_audio:
                    part["audio"] = base64.b64encode(self.audio).decode()
                content.append(part)
            elif self.role == "assistant":
                content.append({"type": "output_text", "text": self.text})
            elif self.has_audio:
                part = {"type": "input_audio", "transcript": self.transcript or None}
                if with_audio:
                    part["audio"] = base64.b64encode(self.audio).decode()
                content.append(part)
            else:
                content.append({"type": "input_text", "text": self.text})
            out["content"] = content
        elif self.type == "function_call":
            out.update(call_id=self.call_id, name=self.name, arguments=self.arguments or "")
        elif self.type == "function_call_output":
            out.update(call_id=self.call_id, output=self.output or "")
        return out


@dataclass(slots=True)
class Response:
    id: str
    output: list[Item] = field(default_factory=list)
    cancel_reason: str | None = None
    done: bool = False
    outcome: str = "completed"  # RESPONSE_OUTCOMES
    late_deltas_sent: int = 0  # deltas sent after the cancel (in flight, as on the service)
