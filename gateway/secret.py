"""`Secret`: a string that never shows itself in a repr, a log line or a traceback.

A value type of its own, below everything that holds or redacts one: the configuration wraps
passwords, API keys and tokens in it, and the log formatter (gateway.observe.logs) recognises
it by type without importing the configuration.
"""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A secret string whose repr/str never show the value. Use `reveal()` where it is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__
