"""`python -m gateway simulator` as a child process on loopback (port 0: the OS picks), for the
tests of the command itself (tests/realtime/test_simulator_cli.py,
tests/live_simulator/test_cli.py). It prints one "... listening on ws://..." line per API."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def simulator_process(*flags: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The simulator command with `flags` added; terminated (and waited for) on exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def listening_line(proc: asyncio.subprocess.Process) -> str:
    """The next line the simulator prints (within 20 s)."""
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
