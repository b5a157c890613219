"""What the caller's audio costs from the RTP datagram to the WebSocket write (issue 14): CPU µs
per 20 ms packet, 100 calls round robin, real objects.

Each call is the product's: a `MediaLeg` bound on loopback (`open`, `apply`) and wired to a
`CallSession` the way gateway/call/call.py wires it (`leg.on_audio = session.on_audio`), the
session's voice connection a `RealtimeConnection` over a `RealtimeClient` whose socket is a
stand-in that records what the client writes (as bench/event_cost.py's). A round hands every
call one in-order datagram through `RtpStream.receive_rtp` (the compiled inbound path and
jitter buffer where built, release on arrival) on a virtual clock that moves 20 ms a round
(the session's input-rate bound reads the same clock), so each round is one released frame
per call: `MediaLeg` -> `CallSession.on_audio` -> ... -> `transport.write`.

Two figures per side: "full" (datagram to write) and "inbound" (the same datagrams with the
stream's `on_audio` pointed at a no-op: the RTP part alone); "append" is their difference,
the chain this bench is about. Each timed round is 100 packets (`time.perf_counter`); figures
are the median round. The written frames are unmasked and their text hashed after timing
(the `fingerprint`): both sides must send the same appends.

    .venv/bin/python bench/append_cost.py                    # this tree
    .venv/bin/python bench/append_cost.py --rev HEAD~3       # that revision, then this tree

With `--rev` both trees run in alternating child processes (A B, B A, ...), as in
bench/event_cost.py: on a shared machine compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._standins import StandInControl  # noqa: E402

PAYLOAD = bytes(range(160))


class _Transport:
    """What the client writes, kept for the fingerprint (never inspected while timing)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.write = self.written.append

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def _unmasked_text(wire: bytes) -> bytes:
    """The text of one masked client frame (RFC 6455 5.2; our appends are < 64 KiB)."""
    length = wire[1] & 0x7F
    offset = 2
    if length == 126:
        length = int.from_bytes(wire[2:4], "big")
        offset = 4
    mask = wire[offset : offset + 4]
    body = wire[offset + 4 : offset + 4 + length]
    return bytes(b ^ mask[i % 4] for i, b in enumerate(body))


async def _calls(n: int, clock: SimpleNamespace) -> list[tuple[Any, Any, _Transport]]:
    from websockets.protocol import State

    from gateway.call import machine as m
    from gateway.call.session import CallSession, SessionSettings
    from gateway.media.leg import LegSettings, MediaLeg
    from gateway.media.negotiated import NegotiatedMedia
    from gateway.media.ports import PortAllocator
    from gateway.realtime import protocol
    from gateway.realtime.backend import RealtimeBackend, RealtimeConnection
    from gateway.realtime.client import Endpoint, RealtimeClient

    transports: list[_Transport] = []

    class Backend(RealtimeBackend):
        async def open(self, endpoint: Any, config: Any, history: Any, timeout: float) -> Any:  # noqa: ASYNC109
            client = RealtimeClient(endpoint)
            transport = _Transport()
            client._ws = SimpleNamespace(  # type: ignore[assignment]
                transport=transport,
                protocol=SimpleNamespace(state=State.OPEN, expect_continuation_frame=False),
            )
            transports.append(transport)
            return RealtimeConnection(client)

    # Inside Linux's default ephemeral range (32768-60999), where the test suite's port blocks
    # are never drawn (tests/tools/ports.py): bound, never sent to.
    ports = PortAllocator(40000, 60000)
    calls = []
    for i in range(n):
        leg = MediaLeg(LegSettings(wants_audio=True), None, lambda *a: None)
        await leg.open(ports, "127.0.0.1")
        leg.apply(NegotiatedMedia("PCMU", 0, "127.0.0.1", 40000 + 2 * i, 40001 + 2 * i))
        config = protocol.SessionConfig(turn_detection=protocol.ServerVad())
        settings = SessionSettings(
            Endpoint.custom("ws://127.0.0.1:9/v1/realtime"),
            config,
            m.CallPolicy(),
            backend=Backend(),
        )
        control = StandInControl()
        assert leg.queue is not None
        session = CallSession(f"bench-{i}", settings, control, leg.queue)  # type: ignore[arg-type]
        session._now = lambda: clock.now
        session.start()
        for _ in range(100):
            if control.answered:
                break
            await asyncio.sleep(0)
        if not control.answered:
            raise SystemExit("append_cost: a bench call was not answered")
        session.on_ack()
        leg.after_tick = session.on_output_tick  # as gateway/call/call.py wires them
        leg.on_audio = session.on_audio
        calls.append((leg, session, transports[-1]))
    return calls


def _packets(n: int) -> list[bytes]:
    from gateway.media.rtp import RtpPacket

    return [
        RtpPacket(0, i & 0xFFFF, (160 * i) & 0xFFFFFFFF, 0x1234, PAYLOAD).encode() for i in range(n)
    ]


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    clock = SimpleNamespace(now=1000.0)
    calls = await _calls(args.calls, clock)
    packets = _packets(args.rounds * 2 + 10)
    perf = time.perf_counter
    rounds = {"full": [], "inbound": []}
    seq = 0

    def one_round(timed: bool, kind: str) -> None:
        nonlocal seq
        clock.now += 0.02
        now = clock.now
        datagram = packets[seq]
        seq += 1
        start = perf()
        for leg, _session, _transport in calls:
            leg.stream.receive_rtp(datagram, ("127.0.0.1", leg.negotiated.remote_port), now)
        spent = perf() - start
        if timed:
            rounds[kind].append(spent / len(calls) * 1e6)

    for _ in range(5):  # the jitter buffer's first packets, the first appends: not timed
        one_round(False, "full")
    gc.collect()
    for _ in range(args.rounds):
        one_round(True, "full")
    written = sum(len(t.written) for _, _, t in calls)
    # The RTP part alone: the same path with nothing wired after the stream.
    saved = [leg.stream.on_audio for leg, _, _ in calls]
    for leg, _, _ in calls:
        leg.stream.on_audio = _no_audio
    for _ in range(args.rounds):
        one_round(True, "inbound")
    for (leg, _, _), on_audio in zip(calls, saved, strict=True):
        leg.stream.on_audio = on_audio
    digest = hashlib.sha256()
    for _, session, transport in calls:
        for wire in transport.written:
            digest.update(_unmasked_text(wire))
        digest.update(repr(session.stats.audio_appended_bytes).encode())
    for leg, session, _ in calls:
        await session.close()
        leg.close("bench")
    full = statistics.median(rounds["full"])
    inbound = statistics.median(rounds["inbound"])
    return {
        "full_us": full,
        "inbound_us": inbound,
        "append_us": full - inbound,
        "frames_written": written,
        "fingerprint": digest.hexdigest(),
    }


def _no_audio(frames: list[Any]) -> None:
    pass


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from gateway.observe.logs import configure_logging

    devnull = open(os.devnull, "w")  # open for the process's lifetime
    configure_logging("INFO", "json", devnull)
    logging.getLogger().setLevel(logging.INFO)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover (the product runs on uvloop where installed)
        runner = asyncio.Runner()
    with runner:
        return runner.run(_measure(args))


def export_revision(rev: str) -> Path:
    """`rev`'s tree in a temporary directory, with this tree's compiled extensions (not in
    git: gateway/*.so and gateway/media/*.so), so both sides use the same C."""
    target = Path(tempfile.mkdtemp(prefix="append_cost_"))
    archive = subprocess.run(
        ["git", "archive", rev], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for folder in ("gateway", "gateway/media"):
        for built in (ROOT / folder).glob("_*.so"):
            shutil.copy2(built, target / folder / built.name)
    return target


def _run(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree),
        "--calls", str(args.calls), "--rounds", str(args.rounds),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"append_cost: the child for {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", help="also measure this git revision (A/B, alternating)")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=400, help="timed packets per call")
    parser.add_argument("--children", type=int, default=6, help="child processes per side")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(args.tree))
        print(json.dumps(run_child(args)))
        return 0
    trees = {"this tree": ROOT}
    tmp: Path | None = None
    if args.rev:
        tmp = export_revision(args.rev)
        trees = {f"before ({args.rev})": tmp, "after (this tree)": ROOT}
    sides: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    ratios: list[float] = []
    try:
        for r in range(args.children):
            order = list(trees.items())
            if r % 2:
                order.reverse()
            pair = {}
            for name, tree in order:
                result = _run(tree, args)
                sides[name].append(result)
                pair[name] = result["append_us"]
            if len(pair) == 2:
                before, after = (pair[name] for name in trees)
                ratios.append(after / before)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for name, results in sides.items():
        for x in results:
            # Every timed round must have released and written one frame per call, or the
            # figure is not the chain's.
            if x["frames_written"] < args.calls * args.rounds:
                raise SystemExit(f"append_cost: {name} wrote {x['frames_written']} frames")
    fingerprints = {x["fingerprint"] for results in sides.values() for x in results}
    if len(fingerprints) != 1:
        raise SystemExit(f"append_cost: the sides did not send the same appends: {fingerprints}")
    summary = {
        name: {
            key: statistics.median(x[key] for x in results)
            for key in ("full_us", "inbound_us", "append_us")
        }
        for name, results in sides.items()
    }
    if args.json:
        print(json.dumps({"sides": summary, "ratios": ratios}, indent=1))
        return 0
    load = os.getloadavg()
    print(
        f"bench/append_cost.py: {args.calls} calls round robin, {args.rounds} packets each, "
        f"{args.children} children per side; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f"; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("| side | full µs/packet | inbound only | append chain (difference) |")
    print("|---|---|---|---|")
    for name, fig in summary.items():
        print(
            f"| {name} | {fig['full_us']:.2f} | {fig['inbound_us']:.2f} | {fig['append_us']:.2f} |"
        )
    print("identical appends written on every child" + (" of both sides" if ratios else ""))
    if ratios:
        print(
            f"after / before (append chain), median of {len(ratios)} paired children: "
            f"{statistics.median(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
