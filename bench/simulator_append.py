"""Benchmark: the simulator's CPU per input_audio_buffer.append, what its load mode saves.

An append (20 ms of G.711, 50 per call per second) is what the simulator does most under
`bench/sipp_load.py`: at 100 calls, 5000 a second. This drives one `SimSession` in-process with
the frames a gateway sends (JSON text, base64 PCMU: speech then 2.5 s of silence, as the SIPp
load's pcap), without sockets, and prints the µs of CPU per append of each variant:

- `default`: as shipped, default options;
- `validator per event`: default, with the client-event checker built for every event (as
  before the checkers were built once per type);
- `load: recording only`: load mode's recording (no audio events) with the full numpy VAD;
- `load: VAD only`: default recording with load mode's sampled VAD;
- `load`: `SimulatorOptions(load_mode=True)`.

The WebSocket framing and the event loop (websockets, asyncio/uvloop) are not in these figures;
`bench/sipp_load.py --simulator-load` measures the whole process.

    .venv/bin/python bench/simulator_append.py [--appends 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.media import g711  # noqa: E402
from gateway.realtime.simulator import SimSession, SimulatorOptions  # noqa: E402
from gateway.realtime.simulator import input_audio as input_audio_module  # noqa: E402
from gateway.realtime.simulator import schema as schema_module  # noqa: E402
from gateway.sim_shared.vad import frame_levels_db, sampled_frame_levels_db  # noqa: E402


class _NullSocket:
    """What SimSession needs of a websockets ServerConnection: no request, a send that drops."""

    request = None

    async def send(self, message: Any, text: bool = False) -> None:
        return None


def _speech_then_silence(seconds: float) -> bytes:
    """150 Hz harmonics with a syllable envelope for 1.5 s, then 2.5 s of silence, repeated."""
    rate = 8000
    t = np.arange(int(1.5 * rate)) / rate
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    speech = (wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) / 2.3 * 0.3 * 32767).astype("<i2")
    cycle = g711.encode("PCMU", speech.tobytes()) + b"\xff" * int(2.5 * rate)
    total = int(seconds * rate)
    return (cycle * (total // len(cycle) + 1))[:total]


def _frames(appends: int) -> list[bytes]:
    audio = _speech_then_silence(appends * 0.02)
    return [
        orjson.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(audio[i : i + 160]).decode(),
            }
        )
        for i in range(0, appends * 160, 160)
    ]


SESSION_UPDATE = orjson.dumps(
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    # No responses: only the append path (VAD events and commits included).
                    "turn_detection": {"type": "server_vad", "create_response": False},
                },
                "output": {"format": {"type": "audio/pcmu"}},
            },
        },
    }
)


class _CheckerPerEvent(dict):  # type: ignore[type-arg]
    """schema._EVENT_CHECKS as it was: a new checker for every event."""

    def __getitem__(self, kind: str) -> Any:
        required, optional = schema_module.EVENT_FIELDS[kind]
        return schema_module.c_obj(
            {**required, "type": schema_module.c_any},
            {**optional, "event_id": schema_module.c_str},
        )


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


async def _run(frames: list[bytes], options: SimulatorOptions) -> float:
    """CPU seconds for `frames` appends through one session."""
    session = SimSession(_NullSocket(), options, "gpt-realtime")  # type: ignore[arg-type]
    await session.handle_frame(SESSION_UPDATE)
    start = time.process_time()
    for frame in frames:
        await session.handle_frame(frame)
    return time.process_time() - start


def measure(appends: int, repeat: int) -> dict[str, float]:
    """Best of `repeat` runs of each variant, in µs of CPU per append."""
    frames = _frames(appends)
    default = SimulatorOptions(schema="builtin")
    load = SimulatorOptions(schema="builtin", load_mode=True)
    variants: dict[str, Any] = {
        "default": lambda: _run(frames, default),
        "validator per event": lambda: _run(frames, default),
        "load: recording only": lambda: _run(frames, load),
        "load: VAD only": lambda: _run(frames, default),
        "load": lambda: _run(frames, load),
    }
    patches = {
        "validator per event": (schema_module, "_EVENT_CHECKS", _CheckerPerEvent()),
        "load: recording only": (input_audio_module, "sampled_frame_levels_db", frame_levels_db),
        "load: VAD only": (input_audio_module, "frame_levels_db", sampled_frame_levels_db),
    }
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, run in variants.items():
            patch = patches.get(name)
            with _patched(*patch) if patch else contextlib.nullcontext():
                seconds = asyncio.run(run())
            best[name] = min(best.get(name, float("inf")), seconds / appends * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=20000, help="appends per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each variant (best kept)")
    args = parser.parse_args()
    if args.appends < 1 or args.repeat < 1:
        sys.exit("simulator_append: --appends and --repeat must be positive")
    load = os.getloadavg()
    print(
        f"appends={args.appends} repeat={args.repeat} load={load[0]:.2f} "
        f"python={sys.version.split()[0]}"
    )
    results = measure(args.appends, args.repeat)
    print()
    print("| variant | µs CPU per append | vs default |")
    print("|---|---|---|")
    for name, us in results.items():
        print(f"| {name} | {us:.1f} | {us - results['default']:+.1f} |")


if __name__ == "__main__":
    main()
