"""Real peer binaries (SIPp, baresip, Kamailio, tshark, sox, espeak-ng): where to find them,
and what a test does when one is missing."""

from __future__ import annotations

import os
import shutil

import pytest

# Kamailio lives in /usr/sbin, which is not on a non-root PATH.
PEER_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"


def require_peer(*binaries: str) -> None:
    """Fail (under CI=true) or skip (locally) when a real peer binary is missing."""
    missing = [b for b in binaries if shutil.which(b, path=PEER_PATH) is None]
    if not missing:
        return
    message = f"real peer(s) not installed: {', '.join(missing)} (run `make peers`)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def which_peer(binary: str) -> str:
    """The peer's path; call `require_peer` first (a miss here is a harness bug)."""
    found = shutil.which(binary, path=PEER_PATH)
    if found is None:
        raise RuntimeError(f"{binary} not found on {PEER_PATH}")
    return found
