"""Benchmark: the GPT-Live simulator's CPU per session (issue 12), so a load test knows how many
calls one simulator process can stand for.

Starts `sip-realtime-gateway simulator` (its own process, optionally `--load`), opens `--calls`
GPT-Live sessions from this process, and streams into each what a gateway sends: a 20 ms
`session.input_audio.append` of G.711 u-law every 20 ms at real time (speech then silence,
repeated, so the simulator answers turns), for `--window` seconds, while the simulator streams
its continuous output back (one delta every `--delta-ms`). Prints the simulator's CPU (% of one
core and µs per session per 20 ms), the output deltas received per session per second, and the
machine's steal. Quote it with the machine's load (`uptime`): the figures move with it.

    .venv/bin/python bench/live_simulator.py --calls 50 --window 10 [--load]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._procstat import cpu_times, proc_cpu_s, steal_pct  # noqa: E402
from gateway.sim_shared.audio import tone  # noqa: E402

FRAME = 160


async def _session(url: str, audio: bytes, stop: asyncio.Event, counts: list[int]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers={"Authorization": "Bearer bench"}) as ws:
        start = {"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu", "rate": 8000}}}
        await ws.send(orjson.dumps({"type": "session.start", "session": start}).decode())

        async def read() -> None:
            async for frame in ws:
                if b'"session.output_audio.delta"' in (
                    frame if isinstance(frame, bytes) else frame.encode()
                ):
                    counts[0] += 1

        reader = asyncio.create_task(read())
        frames = [
            orjson.dumps(
                {
                    "type": "session.input_audio.append",
                    "audio": base64.b64encode(audio[i : i + FRAME]).decode(),
                }
            ).decode()
            for i in range(0, len(audio), FRAME)
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        index = 0
        while not stop.is_set():
            await ws.send(frames[index % len(frames)])
            index += 1
            deadline += 0.02  # real time: one 20 ms frame per 20 ms, on absolute deadlines
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        reader.cancel()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--delta-ms", type=int, default=100)
    parser.add_argument("--load", action="store_true", help="run the simulator with --load")
    args = parser.parse_args()

    command = [sys.executable, "-m", "gateway", "simulator", "--port", "0"]
    command += ["--live-delta-ms", str(args.delta_ms)] + (["--load"] if args.load else [])
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    await proc.stdout.readline()  # the Realtime URL
    url = (await proc.stdout.readline()).decode().split()[-1]
    # 1 s of speech-like tone, then 2 s of silence: a turn every 3 s per call.
    audio = tone(1000, "audio/pcmu", 220.0) + b"\xff" * 16000
    stop = asyncio.Event()
    counts = [0]
    tasks = [asyncio.create_task(_session(url, audio, stop, counts)) for _ in range(args.calls)]
    await asyncio.sleep(2.0)  # every session started and streaming
    cpu_before, machine_before, received_before = proc_cpu_s(proc.pid), cpu_times(), counts[0]
    t0 = time.monotonic()
    await asyncio.sleep(args.window)
    elapsed = time.monotonic() - t0
    cpu = proc_cpu_s(proc.pid) - cpu_before
    steal = steal_pct(machine_before, cpu_times())
    received = counts[0] - received_before
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    proc.terminate()
    await proc.wait()
    per_session_20ms_us = cpu / elapsed / args.calls * 0.02 * 1e6
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(
        "| calls | delta ms | load mode | simulator CPU % | µs CPU per session per 20 ms "
        "| output deltas per session per s | steal % |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.calls} | {args.delta_ms} | {'yes' if args.load else 'no'} "
        f"| {100 * cpu / elapsed:.1f} | {per_session_20ms_us:.0f} "
        f"| {received / elapsed / args.calls:.1f} | {steal} |"
    )


if __name__ == "__main__":
    asyncio.run(main())
