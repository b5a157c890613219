"""Both jitter buffer implementations, for tests that run against each (issue 14): the pure
class `PyJitterBuffer` and the compiled `gateway.media._jitter.JitterBuffer`; likewise the
inbound (inbound.py) and outbound (outbound.py) RTP paths.

Where the extension is not built the compiled cases skip locally and fail under CI=true (as a
missing real peer does): `make test` builds it, so CI must test both paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.media import jitter
from gateway.media.jitter import PyJitterBuffer

try:
    from gateway.media._jitter import JitterBuffer as CJitterBuffer  # type: ignore[import-not-found]
except ImportError as error:  # not built: pure path only
    CJitterBuffer = None
    IMPORT_ERROR: str = str(error)
else:
    IMPORT_ERROR = ""
    # jitter.py binds the types the C buffer builds; with SRG_PURE_PYTHON set it does not.
    jitter._bind_extension()

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_extension() -> type[Any]:
    """The compiled class; skip (locally) or fail (CI=true) when it is not built."""
    if CJitterBuffer is None:
        message = (
            "gateway.media._jitter is not built (run `make install` or "
            f"`python setup.py build_ext --inplace`): {IMPORT_ERROR}"
        )
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CJitterBuffer


IMPLEMENTATIONS = ["python", "c"]


def implementation(name: str) -> type[Any]:
    return PyJitterBuffer if name == "python" else require_extension()


# -- the inbound path (gateway/media/inbound.py and its compiled twin, _inbound.c) ---------------


def _compiled_path(name: str, module: Any, pure: type[Any], source: str) -> type[Any]:
    """`pure`, or the compiled twin from `module._bind_extension()` (skip locally / fail under
    CI when the extension is not built, or was built without `source`)."""
    if name == "python":
        return pure
    require_extension()
    compiled = module._bind_extension()
    if compiled is None:
        message = f"gateway.media._jitter was built without {source}"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return compiled  # type: ignore[no-any-return]


def inbound_implementation(name: str) -> type[Any]:
    """PyInboundPath, or the compiled InboundPath (skip locally / fail under CI when not built)."""
    from gateway.media import inbound

    return _compiled_path(name, inbound, inbound.PyInboundPath, "the inbound path (_inbound.c)")


def outbound_implementation(name: str) -> type[Any]:
    """PyOutboundPath, or the compiled OutboundPath (skip locally / fail under CI when not built)."""
    from gateway.media import outbound

    return _compiled_path(
        name, outbound, outbound.PyOutboundPath, "the outbound path (_outbound.c)"
    )


def use_stream_implementation(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make every RtpStream built from now on use one implementation of every compiled piece:
    the jitter buffer, the inbound and the outbound path (as the product does: SRG_PURE_PYTHON
    switches them all)."""
    from gateway.media import stream

    monkeypatch.setattr(stream, "JitterBuffer", implementation(name))
    monkeypatch.setattr(stream, "InboundPath", inbound_implementation(name))
    monkeypatch.setattr(stream, "OutboundPath", outbound_implementation(name))


# -- the outbound tick (gateway/media/playout.py, pacer.py and their twins, _playout.c, _tick.c) --


def playout_implementation(name: str) -> type[Any]:
    """PyPlayoutQueue, or the compiled PlayoutQueue (skip locally / fail under CI when not built)."""
    from gateway.media import playout

    return _compiled_path(name, playout, playout.PyPlayoutQueue, "the playout queue (_playout.c)")


def output_implementation(name: str) -> type[Any]:
    """PyCallOutput, or the compiled CallOutput (skip locally / fail under CI when not built)."""
    from gateway.media import pacer

    playout_implementation(name)  # the compiled tick needs the queue's binding
    return _compiled_path(name, pacer, pacer.PyCallOutput, "the pacer's tick (_tick.c)")


# -- shared by the attack tests -----------------------------------------------------------------


def outcome(step: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", what `step()` returned) or ("raised", the exception's type): the parity tests
    compare both implementations' answers to a step, exceptions included."""
    try:
        return ("ok", step())
    except Exception as error:
        return ("raised", type(error))


def rss_bytes() -> int:
    """The process's resident memory (Linux), for the "a million X leave memory flat" tests."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_with_switch(code: str, value: str) -> list[str]:
    """The words `code` prints in a fresh interpreter with SRG_PURE_PYTHON=`value` (the switch
    is read at import, so only a new process shows what the product selects)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, jitter.PURE_PYTHON_ENV: value},
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()


# -- the clock's slot wakeup (gateway/media/pacer.py, stream.py and their twins, _clock.c) -------


def _clock_piece(name: str, attribute: str) -> Any:
    """The compiled `attribute` of the extension (skip locally / fail under CI when not built,
    or built without _clock.c)."""
    require_extension()
    from gateway.media import _jitter  # type: ignore[attr-defined]

    piece = getattr(_jitter, attribute, None)
    if piece is None:
        message = "gateway.media._jitter was built without the clock (_clock.c)"
        if ON_CI:
            pytest.fail(message)
        pytest.skip(message)
    return piece


def run_slot_implementation(name: str) -> Callable[..., None]:
    """pacer._py_run_slot, or the compiled run_slot."""
    from gateway.media import pacer

    return pacer._py_run_slot if name == "python" else _clock_piece(name, "run_slot")


def watch_implementation(name: str) -> type[Any]:
    """pacer.PyTickWatch, or the compiled TickWatch."""
    from gateway.media import pacer

    return pacer.PyTickWatch if name == "python" else _clock_piece(name, "TickWatch")


def stream_class(name: str) -> type[Any]:
    """RtpStream on the pure tick (stream.PyStreamTick) or on the compiled StreamTickCore: the
    same class body over either base (the product picks one at import)."""
    from gateway.media import stream

    base = stream.PyStreamTick if name == "python" else _clock_piece(name, "StreamTickCore")
    if stream.RtpStream.__bases__ == (base,):
        return stream.RtpStream
    slots = set(stream.RtpStream.__slots__)
    namespace = {key: value for key, value in vars(stream.RtpStream).items() if key not in slots}
    return type("RtpStream", (base,), namespace)
