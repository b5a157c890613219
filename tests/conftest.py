"""Shared test fixtures: free port blocks on loopback and real-peer requirements."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.tools.ports import free_port_block


@pytest.fixture
def port_block() -> int:
    """First port of a block of 40 free consecutive loopback ports for this test."""
    return free_port_block()


def require_peer(*binaries: str) -> None:
    """Fail (under CI=true) or skip (locally) when a real peer binary is missing."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    missing = [b for b in binaries if shutil.which(b, path=path) is None]
    if not missing:
        return
    message = f"real peer(s) not installed: {', '.join(missing)} (run `make peers`)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
