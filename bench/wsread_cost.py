"""What reading one server WebSocket message costs, from the bytes the transport hands over to
the message handed to the voice client (`_CallbackConnection.data_received` -> `on_message`;
gateway/wsock.py, issue 14): websockets' own parse (a generator per frame, an event list,
`process_event`) against the read fast path (`read_text_messages`, compiled and pure).

The message is a Realtime `response.output_audio.delta` (the simulator's shape, `--audio-ms`
of G.711 as base64), one frame per `data_received` call as a loopback read usually delivers
it, or `--per-chunk` frames together. The connection is a real `_CallbackConnection` after a
real handshake (websockets' server side answered it), with a stand-in transport; the handler
only counts. CPU time (`time.process_time_ns`) per message, median of `--rounds` rounds of
`--messages` messages, the three ways alternated within each round.

    .venv/bin/python bench/wsread_cost.py
    .venv/bin/python bench/wsread_cost.py --audio-ms 20 --per-chunk 4
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._wsconn import handshaken_connection, server_frame  # noqa: E402
from gateway import wsock  # noqa: E402


def delta_frame(audio_ms: int) -> bytes:
    payload = json.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": "event_0001234",
            "response_id": "resp_000004SIM",
            "item_id": "item_000005SIM",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(b"\x7f" * (audio_ms * 8)).decode(),
        },
        separators=(",", ":"),
    ).encode()
    return server_frame(payload)


def one_round(ways: dict[str, Any], chunk: bytes, frames: int, messages: int) -> dict[str, float]:
    out = {}
    clock = time.process_time_ns
    for name, (conn, counter) in ways.items():
        counter.clear()
        receive = conn.data_received
        calls = messages // frames
        start = clock()
        for _ in range(calls):
            receive(chunk)
        elapsed = clock() - start
        assert len(counter) == calls * frames, (name, len(counter))
        out[name] = elapsed / (calls * frames)
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    chunk = delta_frame(args.audio_ms) * args.per_chunk
    ways: dict[str, Any] = {}
    for name in ("websockets", "fast, pure", "fast, compiled"):
        counter: list[int] = []
        conn = handshaken_connection(lambda message, counter=counter: counter.append(1))
        conn._read_fast = name != "websockets"
        ways[name] = (conn, counter)
    scans = {"fast, pure": wsock.py_read_text_messages, "fast, compiled": wsock.read_text_messages}
    if wsock.READ_IMPLEMENTATION != "c":
        del ways["fast, compiled"]
    rounds: dict[str, list[float]] = {name: [] for name in ways}
    original = wsock.read_text_messages
    try:
        for _ in range(args.rounds):
            for name in ways:
                wsock.read_text_messages = scans.get(name, original)
                result = one_round({name: ways[name]}, chunk, args.per_chunk, args.messages)
                rounds[name].append(result[name])
    finally:
        wsock.read_text_messages = original
    return {
        "frame_bytes": len(chunk) // args.per_chunk,
        "per_chunk": args.per_chunk,
        "ns_per_message": {name: statistics.median(values) for name, values in rounds.items()},
        "load": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--audio-ms", type=int, default=100, help="audio per delta")
    parser.add_argument("--per-chunk", type=int, default=1, help="frames per data_received")
    parser.add_argument("--messages", type=int, default=20000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(result))
        return 0
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(f"{x:.2f}" for x in result["load"])
    print(
        f"bench/wsread_cost.py: {result['frame_bytes']} B frames, {args.per_chunk} per read, "
        f"{args.rounds} x {args.messages} messages; {stamp}; load average {load}"
    )
    base = result["ns_per_message"]["websockets"]
    for name, ns in result["ns_per_message"].items():
        print(f"  {name:16s} {ns / 1000:6.2f} µs per message  ({ns / base:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
