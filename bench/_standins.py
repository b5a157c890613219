"""Stand-ins for what a bench call's objects talk to, when the bench times the call path itself
(event_cost.py, append_cost.py, wsread_cost.py through _wsconn.py)."""

from __future__ import annotations

from typing import Any


class StandInTransport:
    """What the voice client and websockets' connection ask of a transport; writes (appends, a
    barge-in's cancel and truncate, pongs) go nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class StandInControl:
    """The call's SIP side (gateway/call/session.py `CallControl`): answering is recorded."""

    answered = False

    def answer(self) -> None:
        self.answered = True

    def reject(self, status: int, reason: str, retry_after_s: int | None) -> None:
        pass

    def hangup(self, cause: Any, text: str = "") -> None:
        pass

    async def refer(self, target_uri: str) -> int:
        return 202

    def send_digits(self, digits: str) -> None:
        pass

    def stop_media(self) -> None:
        pass
