"""The logging contract (docs/architecture.md): one JSON object per line on stderr.

Every line carries `ts`, `level`, `event` (dotted name such as `call.offered`), `message` and the
structured fields of the call (`call_id`, ...). Interop tests parse these lines, so field names
are part of the product's interface. On a TTY the same records are printed as readable text.

Secrets are redacted by field name and by type (`gateway.secret.Secret`), so a stray
`password=` field or a config object can never leak a credential into the logs. Values are
redacted too, whatever logger wrote them (websockets logs every request header at DEBUG,
`Authorization: Bearer sk-...` and Azure's `api-key` included): `SecretFilter` on the handler
rewrites the message, the exception text and every string field, replacing the configured secret
strings (`set_secrets`, from the gateway at start) and anything shaped like a credential
(`Bearer <token>`, `api-key: <key>`, `sk-...`). The common case is a few substring tests per
string (no regular expression runs unless one of them hits): bench/log_record_cost.py.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from typing import Any, TextIO

import orjson

from gateway.secret import Secret

# LogRecord attributes that are not caller-supplied `extra` fields.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "event", "fields", "taskName"}

# How many attributes a record of `log_event` has (those of any LogRecord, `event`, `fields`).
_LOG_EVENT_ATTRS = len(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) + 2

# Field names whose values are never written, whatever their type.
_SECRET_NAMES = ("password", "secret", "api_key", "apikey", "authorization", "token")
REDACTED = "***"

DEFAULT_EVENT = "log"


_secret_names_seen: dict[str, bool] = {}


def _is_secret_name(name: str) -> bool:
    known = _secret_names_seen.get(name)
    if known is None:
        lowered = name.lower()
        known = any(s in lowered for s in _SECRET_NAMES)
        if len(_secret_names_seen) < 4096:  # field names are a small fixed set; bound anyway
            _secret_names_seen[name] = known
    return known


# Credential shapes, in any logger's text: an HTTP auth scheme's token, an API-key header or
# parameter, an OpenAI-style key. The value is replaced, the name kept (what leaked is useful).
_CREDENTIAL = re.compile(
    r"(?P<scheme>\b(?i:bearer)\s+)[A-Za-z0-9._~+/=-]+"
    r"|(?P<basic>\b(?i:basic)\s+)(?=[A-Za-z0-9+/]{8,})[A-Za-z0-9+/=]+"
    r"|(?P<key>\b(?i:x-api-key|api-key|api_key|apikey|authorization)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!(?i:bearer|basic|digest)\b)[^\s\"',;&]+"
    r"|\bsk-[A-Za-z0-9_-]{10,}"
)
# Cheap tests on the lower-cased text that must hit before _CREDENTIAL runs: every match
# contains one of these (a lower() and five substring tests beat any regular expression).
_CREDENTIAL_HINTS = ("bearer", "basic", "api", "authorization", "sk-")
_secrets: tuple[str, ...] = ()  # configured secret values (set_secrets)
MIN_SECRET_LEN = 4  # shorter values would blank out ordinary words and numbers


def set_secrets(values: Any) -> None:
    """The secret strings configured for this process (API key, control token, SIP passwords,
    credentials in tool/webhook URLs): from now on they never appear in a log line."""
    global _secrets
    unique = {str(v) for v in values if v and len(str(v)) >= MIN_SECRET_LEN}
    # As they appear inside a JSON line too (a quote or backslash in a password is escaped).
    unique |= {orjson.dumps(v).decode()[1:-1] for v in unique}
    # Longest first: a secret that contains another is replaced whole.
    _secrets = tuple(sorted(unique, key=len, reverse=True))


def _credential(match: re.Match[str]) -> str:
    prefix = match.group("scheme") or match.group("basic") or match.group("key")
    if prefix is not None:
        return prefix + REDACTED
    return "sk-" + REDACTED


def _redact_secrets(text: str) -> str:
    """The formatted line's last pass: a configured secret inside a nested value (a URL with
    a password in a config dict) is caught here."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_text(text: str) -> str:
    """`text` with configured secrets and credential-shaped values replaced by `***`."""
    return _redact_credentials(_redact_secrets(text))


def _redact_credentials(text: str) -> str:
    lowered = text.lower()
    for hint in _CREDENTIAL_HINTS:
        if hint in lowered:
            return _CREDENTIAL.sub(_credential, text)
    return text


class SecretFilter(logging.Filter):
    """On the handler (so it sees every logger's records, websockets' included): the message
    is formatted once here with its arguments and redacted, the exception text rendered and
    redacted. The formatters add the rest: string fields checked for credential shapes as
    they are read (`_clean`), the finished line for the configured secrets (nested values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(
                "".join(traceback.format_exception(*record.exc_info)).rstrip()
            )
        return True


def _exc_text(record: logging.LogRecord) -> str:
    if record.exc_text:
        return record.exc_text
    return redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip())  # type: ignore[misc]


def _clean(name: str, value: Any) -> Any:
    if _is_secret_name(name):
        return REDACTED
    if type(value) is str:
        # Configured secrets are replaced in the whole formatted line (`_redact_secrets`).
        return _redact_credentials(value)
    if isinstance(value, Secret):
        return REDACTED
    return value


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Structured fields of a record: `log_event` fields plus any plain `extra=` keys."""
    fields: dict[str, Any] = {}
    attributes = record.__dict__
    # A `log_event` record holds the LogRecord attributes plus `event` and `fields`, nothing
    # else: then there is no `extra=` key to look for among the ~20 attributes.
    if not (
        len(attributes) == _LOG_EVENT_ATTRS and "fields" in attributes and "event" in attributes
    ):
        for key, value in attributes.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                fields[key] = _clean(key, value)
    given = attributes.get("fields")
    if isinstance(given, dict):
        for key, value in given.items():
            fields[str(key)] = _clean(str(key), value)
    return fields


_ts_cache: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _iso_ts(created: float) -> str:
    global _ts_cache
    whole = int(created)
    cached = _ts_cache  # one tuple, swapped whole: safe when threads log too
    if cached[0] != whole:
        cached = _ts_cache = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int(created * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso_ts(record.created),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or DEFAULT_EVENT,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            # A field may not overwrite the envelope (a caller passing event=... by mistake).
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = _exc_text(record)
        return _redact_secrets(orjson.dumps(line, default=str).decode("utf-8"))


class TextFormatter(logging.Formatter):
    """Readable one-liners for a terminal: time, level, event, message, key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created))
        ms = int(record.created * 1000) % 1000
        event = getattr(record, "event", None) or DEFAULT_EVENT
        parts = [f"{ts}.{ms:03d} {record.levelname:<7} {event:<18} {record.getMessage()}"]
        for key, value in record_fields(record).items():
            parts.append(f"{key}={value}")
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + _exc_text(record)
        return _redact_secrets(text)


def use_json(fmt: str, stream: TextIO) -> bool:
    """`auto` means JSON unless the stream is an interactive terminal."""
    if fmt == "json":
        return True
    if fmt == "text":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Install the single stderr handler on the root logger (replacing earlier ones)."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(fmt, stream) else TextFormatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither format writes the process, thread or multiprocessing names, so the records need
    # not look them up (a getpid() syscall and two more calls per record; the logging docs'
    # "Optimization" section). Nor do they write the caller's source file, line or function:
    # `_srcfile = None` (the same section) spares the stack walk that finds them (a fifth of
    # a line's cost, bench/event_cost.py); exceptions keep their whole traceback either way.
    logging.logProcesses = False
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    # asyncio's own debug chatter is not part of the contract, nor are websockets' lines per
    # connection (the built-in simulator logs every session open/close at INFO); their
    # warnings and errors still come through. At DEBUG everything is let through.
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.DEBUG
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(quiet)


def log_event(
    logger: logging.Logger,
    event: str,
    message: str | None = None,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log a contract event: `log_event(log, "call.offered", call_id=..., source=...)`.

    Fields go in a dedicated `fields` dict so names such as `from` or `name` cannot collide
    with LogRecord attributes.
    """
    if not logger.isEnabledFor(level):
        return
    logger.log(level, message or event, extra={"event": event, "fields": fields})
