"""The control API's bearer token when the configuration gives none: generated once, kept in a
file only its owner can read.

Where: `control.token_file` if set, else DEFAULT_TOKEN_FILE relative to the working directory.
The container image's WORKDIR and the systemd unit's WorkingDirectory are both the state
directory /var/lib/sip-realtime-gateway (writable by the gateway's user, kept across restarts),
so the default lands there; a developer's `run` puts it in ./.srg/ of the checkout.

How: the token is written to a temporary file opened with O_CREAT|O_EXCL and mode 0600 in the
same directory, then hard-linked to its name. link() fails when the name exists, so two
gateways starting together never overwrite each other's token, and a reader never sees a
half-written file. The winner's token is what both use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.observe.logs import log_event
from gateway.secret import Secret

log = logging.getLogger("gateway.control")

DEFAULT_TOKEN_FILE = ".srg/control.token"
TOKEN_BYTES = 32  # 256 bits, URL-safe base64: 43 characters


class TokenSettings(Protocol):
    """What `control_token` reads: the [control] section (gateway.config ControlConfig), passed
    down by the process as a value rather than imported from the configuration."""

    @property
    def token(self) -> Secret: ...
    @property
    def token_env(self) -> str: ...
    @property
    def token_file(self) -> str: ...
    @property
    def token_required(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class TokenFile:
    token: str
    path: Path
    generated: bool  # True when this start created the file
    too_open: bool  # an existing file that group or others may read


class TokenFileError(OSError):
    """The token file cannot be created or read; the message names the path."""


def ensure_token_file(path: str | Path) -> TokenFile:
    """Read the token at `path`, generating it first when the file does not exist."""
    target = Path(path)
    try:
        return _read(target, generated=False)
    except FileNotFoundError:
        pass
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create(target, secrets.token_urlsafe(TOKEN_BYTES))
        return _read(target, generated=True)
    except FileExistsError:  # another process won the race: use its token
        return _read(target, generated=False)
    except OSError as exc:
        raise TokenFileError(
            exc.errno, f"cannot create the control token file {target}: {exc.strerror or exc}"
        ) from None


def control_token(cfg: TokenSettings) -> str | None:
    """The token the control API requires, or None when `token_required = false` and none is
    configured. Logs where it comes from (never the token). TokenFileError names the path."""
    if cfg.token_env:
        log_event(log, "control.token", f"control token from ${cfg.token_env}", source="env")
        return cfg.token.reveal()
    if cfg.token.reveal() and not cfg.token_file:  # given in code (tests, embedding)
        log_event(log, "control.token", "control token given by the caller", source="given")
        return cfg.token.reveal()
    if not cfg.token_file and not cfg.token_required:
        log_event(
            log,
            "control.token",
            "control API WITHOUT a token (control.token_required = false)",
            level=logging.WARNING,
            source="none",
        )
        return None
    found = ensure_token_file(cfg.token_file or DEFAULT_TOKEN_FILE)
    path = str(found.path.absolute())
    log_event(
        log,
        "control.token",
        f"control token {'generated into' if found.generated else 'read from'} {path}",
        source="file",
        path=path,
        generated=found.generated,
    )
    if found.too_open:
        log_event(
            log,
            "control.token_file_open",
            f"{path} may be read by other users: chmod 600 it",
            level=logging.WARNING,
            path=path,
        )
    return found.token


def _create(target: Path, token: str) -> None:
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (token + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, target)  # FileExistsError when the name is taken: never overwrite
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _read(target: Path, generated: bool) -> TokenFile:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TokenFileError(
            exc.errno, f"cannot read the control token file {target}: {exc.strerror or exc}"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        text = handle.read(4096).decode("utf-8", "replace").strip()
    if not text:
        raise TokenFileError(0, f"control token file {target} is empty")
    too_open = bool(mode & (stat.S_IRWXG | stat.S_IRWXO))
    return TokenFile(text, target, generated, too_open)


__all__ = [
    "DEFAULT_TOKEN_FILE",
    "TokenFile",
    "TokenFileError",
    "control_token",
    "ensure_token_file",
]
