"""A/B micro-benchmark: the audio append fast path of gateway/wsock.py, this tree against a git
revision.

What the call session's appender runs per 20 ms of caller audio on an idle socket:
`WebSocketLink._send_text` with the append's parts bound (checks, masking key, the JSON
text's base64 and the RFC 6455 framing and masking in one step, `transport.write`); older
revisions through `_append_audio(prefix, audio, suffix)`, or `protocol.input_audio_append` +
`_append_frame` -> `_enqueue` -> `_write_now`. The transport is a stand-in that keeps (or drops) the
bytes, so the figures are the Python cost without the TCP send syscall. Both revisions draw
their masking keys from the same seeded stand-in for `os.urandom`, so the bytes they write
must be identical; then they are timed in alternating rounds (A B, B A, ...) so both see the
same machine load: on a shared machine compare the ratio, not the absolute figures.

    .venv/bin/python bench/wsock_ab.py                      # HEAD vs the working tree
    .venv/bin/python bench/wsock_ab.py --rev 1f2d1ce --rounds 20
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.protocol import State  # noqa: E402

from bench import ab  # noqa: E402
from gateway import wsock as current  # noqa: E402
from gateway.realtime import protocol  # noqa: E402


class _Transport:
    __slots__ = ("written",)

    def __init__(self, keep: bool) -> None:
        self.written: list[bytes] | None = [] if keep else None

    def write(self, data: bytes) -> None:
        if self.written is not None:
            self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def drive(module: ModuleType, chunks: list[bytes], seed: int, keep: bool) -> list[bytes]:
    rng = random.Random(seed)
    module.os = SimpleNamespace(urandom=rng.randbytes)  # the module's own `os` name only
    module._mask_keys = module._MaskKeys()
    link: Any = module.WebSocketLink(max_size=1 << 24)
    transport = _Transport(keep)
    link._ws = SimpleNamespace(
        transport=transport,
        protocol=SimpleNamespace(state=State.OPEN, expect_continuation_frame=False),
    )
    if hasattr(link, "_send_text"):  # the session's appender: the parts bound (i14-append)
        prefix, suffix = protocol.INPUT_AUDIO_APPEND_PARTS
        appender = functools.partial(link._send_text, prefix, suffix)
        for chunk in chunks:
            appender(chunk)
    elif hasattr(link, "_append_audio"):  # the parts framed in one step (gateway/_wsframe.c)
        append_audio = link._append_audio
        prefix, suffix = protocol.INPUT_AUDIO_APPEND_PARTS
        for chunk in chunks:
            append_audio(prefix, chunk, suffix)
    else:  # a revision before it: the JSON text, then the frame
        append_frame = link._append_frame
        encode = protocol.input_audio_append
        for chunk in chunks:
            append_frame(encode(chunk), 160)
    if link.stats.frames_written_sync != len(chunks):
        sys.exit(f"wsock_ab: {module.__name__} did not take the fast path for every append")
    module.os = os
    return transport.written or []


def time_once(module: ModuleType, chunks: list[bytes], seed: int) -> float:
    """Process CPU µs per append for one pass."""
    start = time.process_time_ns()
    drive(module, chunks, seed, keep=False)
    return (time.process_time_ns() - start) / 1000 / len(chunks)


def main() -> None:
    parser = ab.parser(__doc__)
    parser.add_argument("--appends", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    before = ab.load_revision(args.rev, "gateway/wsock.py")
    rng = random.Random(args.seed)
    chunks = [rng.randbytes(160) for _ in range(args.appends)]
    if drive(before, chunks, args.seed, True) != drive(current, chunks, args.seed, True):
        sys.exit("wsock_ab: the written frames differ")
    times = ab.alternate(
        args.rounds, before, current, lambda module: time_once(module, chunks, args.seed)
    )
    load = os.getloadavg()[0]
    print(
        f"wsock_ab: {args.appends} appends of 160 bytes x {args.rounds} rounds; before = "
        f"{args.rev}, after = working tree; load {load:.2f}; identical frames written"
    )
    ab.print_times("µs CPU per append (JSON + framing, no syscall)", times)


if __name__ == "__main__":
    main()
