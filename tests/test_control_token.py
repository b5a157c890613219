"""gateway/control_token.py: the control API's token generated into an owner-only file."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from gateway.config import ControlConfig, Secret
from gateway.control_token import (
    DEFAULT_TOKEN_FILE,
    TokenFileError,
    control_token,
    ensure_token_file,
)


def test_generated_once_mode_0600_then_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "control.token"
    old_umask = os.umask(0)  # a permissive umask must not widen the file
    try:
        first = ensure_token_file(path)
    finally:
        os.umask(old_umask)
    assert first.generated and not first.too_open
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(first.token) >= 43
    again = ensure_token_file(path)
    assert (again.token, again.generated) == (first.token, False)
    assert [p.name for p in path.parent.iterdir()] == ["control.token"]  # no temp file left


def test_concurrent_starts_agree_on_one_token(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    tokens: list[str] = []
    threads = [
        threading.Thread(target=lambda: tokens.append(ensure_token_file(path).token))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens) == 8


def test_existing_file_too_open_is_flagged_and_empty_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    path.write_text("operator-token\n")
    path.chmod(0o644)
    found = ensure_token_file(path)
    assert found.token == "operator-token" and found.too_open
    path.write_text("")
    with pytest.raises(TokenFileError, match="empty"):
        ensure_token_file(path)


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x\n")
    link = tmp_path / "control.token"
    link.symlink_to(target)
    with pytest.raises(TokenFileError, match=str(link)):
        ensure_token_file(link)


def test_unwritable_directory_names_the_path(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(TokenFileError, match="cannot create"):
        ensure_token_file(locked / "control.token")


def test_control_token_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.chdir(tmp_path)
    # Nothing configured: generated at the documented default path.
    token = control_token(ControlConfig())
    assert token == (tmp_path / DEFAULT_TOKEN_FILE).read_text().strip()
    assert str(tmp_path / DEFAULT_TOKEN_FILE) in caplog.text
    assert token not in caplog.text  # the path is logged, never the token
    # From the environment (already resolved by the config loader).
    cfg = ControlConfig(token_env="X", token=Secret("from-env"))
    assert control_token(cfg) == "from-env"
    # Explicitly off.
    assert control_token(ControlConfig(token_required=False)) is None
    assert "WITHOUT a token" in caplog.text
