"""Benchmark: latency the gateway adds on the call path, at N concurrent calls.

One gateway process runs the real per-call path for N calls: `RtpStream` (socket, latching,
jitter buffer) on the shared `MediaClock`, `CallSession` (state machine) with a `RealtimeClient`
(reader/writer tasks, websockets + orjson), a `PlayoutQueue` and a `CallOutput` wired exactly as
the call object (`gateway/call/call.py`, `gateway/media/leg.py`) wires them (the session's
per-tick hook after every frame). No SIP: the calls are set up directly, since signalling is not
on the measured paths. Two helper processes, so
their CPU does not count against the gateway:

- a minimal Realtime-shaped WebSocket server (hand-written RFC 6455 framing on uvloop, cheaper per
  frame than a websockets server so it keeps up with 25 000 appends/s): it answers
  `session.update`, discards appends, and every `--period` seconds per call plays one scripted
  turn: `response.created`, 1 s of bot audio in 4 deltas sent at once (the real service also
  sends faster than real time), then after `--barge-after` seconds `speech_started` (the caller
  interrupts while the bot is still playing), `response.done` (cancelled, as with
  `interrupt_response`), `speech_stopped` and `committed`. It runs no VAD: the turns are timed,
  so every call gets the same load;
- N simulated callers sending 20 ms PCMU RTP on loopback UDP, paced by their own media clock.
  Each payload starts with a 4-byte packet counter so the gateway side can match an append to
  the datagrams whose audio it carries.

Measured inside the gateway process with `time.perf_counter()` (CLOCK_MONOTONIC), by wrapping
methods on the bench's own instances (no product code changes):
1. RTP datagram received (`RtpStream._on_rtp` entry) -> the `input_audio_buffer.append` frame
   carrying its audio written to the WebSocket (the client's `_write_now` wrote it from the tick,
   or, when it had to queue, the writer's `ws.send` returned). Split into the
   jitter-buffer hold (received -> released by the clock tick, intentional: `jitter_min_ms`) and
   the processing after release (release -> written), which is what the 1 ms target is about.
2. First audio delta of a response received (the frame completed in websockets'
   `process_event`, i.e. in the socket read callback) -> the first RTP packet of its audio sent
   (`RtpStream.send_frame` returned). Split into delta received -> in the playout queue
   (processing), and -> the packet's tick (the wait for the next 20 ms frame boundary of the
   call's clock slot, uniform 0-20 ms by design of a paced stream).
3. `speech_started` received while bot audio is still queued -> the last bot RTP packet sent
   (0 when no bot packet left after it), closed at the first silence frame after it; and
   speech_started received -> playout flushed. A barge-in whose audio stopped without a flush
   (it ran out instead) is counted as "not flushed".
4. Socket waits (peer's write -> the gateway's read), and 5. pacing: |RTP send interval - 20 ms|.
CPU % = process time / wall time of the gateway over the measured window (helpers shown apart),
also as us per call per 20 ms; RSS at the end and grown per call since before the first call;
CPU steal % and the load average say how much the machine was shared. A run stays bounded on an
overloaded machine: no new call batch after a 40 s setup budget, every helper has a lifetime.

--api live: the same with GPT-Live (the product's LiveClient, a GPT-Live-shaped server that
streams a continuous real-time output track, no speech_started: path 3 is timed from the model's
last non-silent byte); bench/latency_live.py says what each live figure means.

Layout: this file runs and prints; bench/latency_peers.py holds the helper processes (server,
callers), bench/latency_probe.py the gateway-side probes and the observed call,
bench/latency_live.py the GPT-Live server, probe and client.

    .venv/bin/python bench/latency.py                        # 1, 100, 500 calls, 15 s each
    .venv/bin/python bench/latency.py --api live --calls 1 100 --seconds 15   # GPT-Live
    .venv/bin/python bench/latency.py --calls 100 --seconds 5 --loop asyncio
    .venv/bin/python bench/latency.py --calls 500 --cpu 0   # gateway pinned, helpers elsewhere
    .venv/bin/python bench/latency.py --send-cost           # CPU per WebSocket append frame
    .venv/bin/python bench/latency.py --calls 1 100 --seconds 10 --caller-phase random \
        --jitter-ms 30 --release arrival      # jitter-buffer hold: any phase, 30 ms jitter,
                                              # released on arrival as well as on the tick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench._procstat import cpu_times, proc_cpu_s, steal_pct
from bench.latency_live import BenchLiveBackend, LiteLive, LiveProbe, live_settings
from bench.latency_peers import (
    SETUP_BATCH,
    SETUP_BUDGET_S,
    LiteRealtime,
    ServerOptions,
    run_callers,
    run_server,
)
from bench.latency_probe import RELEASE, SAMPLE_LISTS, BenchCall, Recorder, summary
from bench.latency_report import merge_workers, print_tables
from gateway.call.session import SessionSettings
from gateway.call_settings import call_policy_for, session_config_for
from gateway.cli import settle_heap
from gateway.config import GatewayConfig
from gateway.media.pacer import (
    LatenessStats,
    shared_clock,
)
from gateway.media.ports import PortAllocator
from gateway.observe.logs import configure_logging
from gateway.realtime.backend import RealtimeBackend
from gateway.realtime.client import Endpoint

perf = time.perf_counter


def rss_bytes() -> int:
    """This process's resident set now (/proc/self/statm: pages)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _take_events(path: str) -> list[dict[str, Any]]:
    """The server's recorded client events (run_server's events_out); the file is removed."""
    events: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError):
        events = json.loads(Path(path).read_text() or "[]")
    with contextlib.suppress(OSError):
        os.unlink(path)
    return events


def _helper(role: str, *args: str) -> list[str]:
    cmd = [sys.executable, __file__, "--role", role, "--cpu", str(HELPER_PIN[0])]
    return [*cmd, "--helper-nice", str(HELPER_NICE[0]), *args]


HELPER_PIN = [-1]  # the gateway's --cpu, passed on so helpers avoid that CPU
HELPER_NICE = [0]  # the --helper-nice of this run
CALLER_PHASE = ["slot"]  # --caller-phase of this run
JITTER_MS = [0.0]  # --jitter-ms of this run


async def _read_line(proc: asyncio.subprocess.Process, timeout: float) -> str:  # noqa: ASYNC109
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"helper {proc.pid} exited early (rc={proc.returncode})")
    return line.decode().strip()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def run_gateway(
    calls: int,
    seconds: float,
    warmup: float,
    server_opts: ServerOptions,
    rtp_range: tuple[int, int],
    gc_mode: str = "on",
    measure_at: float | None = None,
    samples_out: str | None = None,
    api: str = "realtime",
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    settle_heap()  # as `sip-realtime-gateway run` does once it is up, before any call
    log_file = tempfile.NamedTemporaryFile("w+", prefix="latency-bench-", suffix=".log")
    configure_logging("INFO", "json", log_file)  # the product's log path, to a file
    lifetime = str(seconds + warmup + SETUP_BUDGET_S + 120)
    events_fd, events_path = tempfile.mkstemp(prefix="latency-bench-events-", suffix=".json")
    os.close(events_fd)
    server = await asyncio.create_subprocess_exec(
        *_helper(
            "server",
            "--period",
            str(server_opts.period_s),
            "--barge-after",
            str(server_opts.barge_after_s),
            "--lifetime",
            lifetime,
            "--api",
            api,
            "--events-out",
            events_path,
        ),
        stdout=asyncio.subprocess.PIPE,
    )
    callers: asyncio.subprocess.Process | None = None
    rec = Recorder()
    bench_calls: list[BenchCall] = []
    try:
        port = int((await _read_line(server, 10)).split()[1])
        probe_factory: Any = None
        backend_factory: Any = None
        if api == "live":
            settings = live_settings(port)
            probe_factory, backend_factory = LiveProbe, BenchLiveBackend
        else:
            config = GatewayConfig()
            settings = SessionSettings(
                endpoint=Endpoint.custom(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"),
                config=session_config_for(config, "PCMU", "Latency benchmark."),
                policy=call_policy_for(config),
                backend=RealtimeBackend(),
            )
        rss_before_calls = rss_bytes()
        clock = shared_clock(loop)
        allocator = PortAllocator(*rtp_range)
        setup_started = perf()
        for first in range(0, calls, SETUP_BATCH):
            if perf() - setup_started > SETUP_BUDGET_S:
                break  # the machine cannot set up more calls in time: measure those we have
            count = min(calls, first + SETUP_BATCH) - first
            batch = [
                BenchCall(first + i, rec, clock, probe_factory, backend_factory)
                for i in range(count)
            ]
            bench_calls += batch
            for call in batch:
                await call.open(allocator, settings)
            # A call whose session setup fails (503 after setup_timeout_s) is counted, not fatal:
            # on an overloaded machine that is itself the finding.
            await asyncio.wait([asyncio.ensure_future(c.answered) for c in batch], timeout=30)
            for call in batch:
                if call.answered.done() and call.answered.exception() is None:
                    assert call.session is not None
                    call.session.on_ack()
                elif call.problem is None:
                    call.problem = "not answered within 30 s"
        setup_s = perf() - setup_started
        answered = [c for c in bench_calls if c.problem is None]
        callers = await asyncio.create_subprocess_exec(
            *_helper(
                "callers",
                "--lifetime",
                lifetime,
                "--caller-phase",
                CALLER_PHASE[0],
                "--jitter-ms",
                str(JITTER_MS[0]),
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert callers.stdin is not None
        callers.stdin.write(json.dumps([c.rtp_port for c in answered]).encode() + b"\n")
        await callers.stdin.drain()
        await _read_line(callers, 30)
        server.send_signal(signal.SIGUSR1)
        if gc_mode == "freeze":
            # What a gateway could do once started: move everything allocated so far (modules,
            # calls set up) out of the collector's reach, so collections only scan new objects.
            gc.collect()
            gc.freeze()
        await asyncio.sleep(warmup)
        if measure_at is not None:
            # Several workers: measure the same window (CLOCK_MONOTONIC is system-wide).
            await asyncio.sleep(max(0.0, measure_at - time.monotonic()))
        appended0 = sum(c.session.stats.audio_appended_bytes for c in bench_calls if c.session)
        inbound0 = _inbound_counts(bench_calls)
        load0 = os.getloadavg()
        machine0 = cpu_times()
        server0, callers0 = proc_cpu_s(server.pid), proc_cpu_s(callers.pid)
        buckets0 = list(clock.stats.bucket_counts)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        rec.measuring = True
        cpu0, wall0 = time.process_time(), perf()
        await asyncio.sleep(seconds)
        rec.measuring = False
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        rss_end = rss_bytes()
        lateness = LatenessStats()
        lateness.bucket_counts = [
            b - a for a, b in zip(buckets0, clock.stats.bucket_counts, strict=True)
        ]
        lateness.wakeups = sum(lateness.bucket_counts)
        cpu, wall = time.process_time() - cpu0, perf() - wall0
        server_cpu = proc_cpu_s(server.pid) - server0
        callers_cpu = proc_cpu_s(callers.pid) - callers0
        load1 = os.getloadavg()
        steal = steal_pct(machine0, cpu_times())
        appended = sum(c.session.stats.audio_appended_bytes for c in bench_calls if c.session)
        dropped = sum(c.session.stats.appends_dropped for c in bench_calls if c.session)
        inbound = [b - a for a, b in zip(inbound0, _inbound_counts(bench_calls), strict=True)]
        windows = [c.stream.jitter.delay_ms for c in answered]
        window_ms = round(sum(windows) / len(windows), 1) if windows else 0.0
    finally:
        if callers is not None:
            await _stop(callers)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in bench_calls)), 30)
        await _stop(server)
    client_events = _take_events(events_path)
    problems: dict[str, int] = {}
    for call in bench_calls:
        if call.problem:
            problems[call.problem] = problems.get(call.problem, 0) + 1
    if calls > len(bench_calls):
        problems[f"not attempted: {SETUP_BUDGET_S:.0f} s setup budget spent"] = calls - len(
            bench_calls
        )
    log_file.flush()
    log_file.seek(0)
    warnings: dict[str, int] = {}
    for line in log_file:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                warnings[record.get("event", "log")] = (
                    warnings.get(record.get("event", "log"), 0) + 1
                )
    log_file.close()
    s = rec.samples
    raw = {name: list(getattr(s, name)) for name in SAMPLE_LISTS} if samples_out else None
    return {
        "_raw": raw,
        "calls": calls,
        "answered": len(answered),
        "set_up": len(bench_calls),
        "loop": type(loop).__module__.split(".")[0],
        "setup_s": round(setup_s, 1),
        "seconds": round(wall, 2),
        "api": api,
        "cpu_pct": round(100 * cpu / wall, 1),
        # The gateway process's CPU per answered call per 20 ms packet time (issue 14's unit).
        "cpu_us_per_call_per_20ms": round(cpu / wall * 0.020 * 1e6 / max(1, len(answered)), 1),
        "rss_mib": round(rss_end / 2**20, 1),
        # RSS grown since before the first call, per answered call (the calls' own memory).
        "rss_kib_per_call": round((rss_end - rss_before_calls) / 1024 / max(1, len(answered)), 1),
        # A few client control events of each type as the server got them (live mode).
        "client_events": client_events if api == "live" else [],
        "unmatched_deltas": sum(getattr(c.probe, "unmatched", 0) for c in bench_calls),
        "playout_trimmed_bytes": sum(
            c.session.stats.playout_trimmed_bytes for c in bench_calls if c.session
        ),
        "server_cpu_pct": round(100 * server_cpu / wall, 1),
        "callers_cpu_pct": round(100 * callers_cpu / wall, 1),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in load1],
        "steal_pct": steal,
        "append_bytes_per_s": round((appended - appended0) / wall),
        "expected_bytes_per_s": calls * 8000,
        "appends_dropped": dropped,
        "inbound_late": inbound[0],
        "inbound_concealed": inbound[1],
        "inbound_reordered": inbound[2],
        "window_ms": window_ms,
        "problems": problems,
        "warnings": warnings,
        **{name: summary(getattr(s, name)) for name in SAMPLE_LISTS},
        "bot_packets_after_speech_max": max(s.bot_packets_after_speech, default=0),
        # The clock's slot timers, late by at most this (histogram bucket bounds, ms): how
        # long the loop was busy (or the process descheduled) when a tick was due.
        "clock_late_p50_ms": lateness.quantile(0.5) * 1000,
        "clock_late_p99_ms": lateness.quantile(0.99) * 1000,
        # Involuntary context switches per second: the kernel took the CPU away (other
        # processes on it), as opposed to the loop waiting in epoll (voluntary).
        "preempted_per_s": round((usage1.ru_nivcsw - usage0.ru_nivcsw) / wall, 1),
        "not_flushed": s.not_flushed,
    }


async def run_send_cost(frames: int = 20000) -> dict[str, float]:
    """CPU per append frame: one `ws.send` per frame, 4 frames coalesced into one write, and
    the product's fast path (our framing + one `transport.write` per frame)."""
    from websockets.asyncio.client import connect

    from gateway.realtime import protocol
    from gateway.realtime.client import _mask_keys, masked_text_frame

    server = await asyncio.create_subprocess_exec(
        *_helper("server", "--lifetime", "120"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port = int((await _read_line(server, 10)).split()[1])
        ws = await asyncio.wait_for(connect(f"ws://127.0.0.1:{port}/", compression=None), 10)
        await asyncio.wait_for(ws.recv(), 10)
        frame = protocol.input_audio_append(bytes(160))
        for _ in range(2000):  # warm-up
            await ws.send(frame, text=True)
        cpu0 = time.process_time()
        for _ in range(frames):
            await ws.send(frame, text=True)
        one = (time.process_time() - cpu0) / frames
        cpu0 = time.process_time()
        for _ in range(frames // 4):
            # websockets' sans-I/O layer queues 4 frames, then one transport write.
            for _ in range(4):
                ws.protocol.send_text(frame)
            ws.send_data()
            await asyncio.sleep(0)
        four = (time.process_time() - cpu0) / (frames // 4 * 4)
        # The product's fast path (RealtimeClient._write_now): frame + mask here, one
        # transport.write per frame, no task wakeup, no drain; yield as often as above.
        transport = ws.transport
        cpu0 = time.process_time()
        for _ in range(frames // 4):
            for _ in range(4):
                transport.write(masked_text_frame(frame, _mask_keys.next()))
            await asyncio.sleep(0)
        direct = (time.process_time() - cpu0) / (frames // 4 * 4)
        cpu0 = time.process_time()
        for _ in range(frames):
            protocol.input_audio_append(bytes(160))
        encode = (time.process_time() - cpu0) / frames
        await asyncio.wait_for(ws.close(), 5)
    finally:
        await _stop(server)
    return {
        "one_send_per_frame_us": round(one * 1e6, 2),
        "four_frames_per_write_us": round(four * 1e6, 2),
        "fast_path_write_per_frame_us": round(direct * 1e6, 2),
        "encode_only_us": round(encode * 1e6, 2),
    }


# ============================================================================================
# Orchestration


def _inbound_counts(calls: list[BenchCall]) -> tuple[int, int, int]:
    """Jitter-buffer counters summed over the calls: late, concealed frames, reordered."""
    late = concealed = reordered = 0
    for call in calls:
        stats = call.stream.jitter.stats
        late += stats.late
        concealed += stats.concealed_frames
        reordered += stats.reordered
    return late, concealed, reordered


def _run(loop_kind: str, coro: Any) -> Any:
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_workers(args: argparse.Namespace, n: int) -> dict[str, Any] | None:
    """Run N calls in `args.workers` gateway processes at once (each with its own helpers and
    RTP port range) and merge their figures; None (and a line saying why) on failure."""
    workers = min(args.workers, n)
    low, high = args.rtp_ports
    span = (high - low + 1) // workers
    budget = SETUP_BUDGET_S if workers == 1 else 20.0
    measure_at = time.monotonic() + budget + args.warmup if workers > 1 else None
    procs = []
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
        for w in range(workers):
            calls = n // workers + (1 if w < n % workers else 0)
            first = low + w * span
            cmd = [sys.executable, __file__, "--one", "--calls", str(calls)]
            cmd += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
            cmd += ["--loop", args.loop, "--period", str(args.period), "--cpu", str(args.cpu)]
            cmd += ["--gc", args.gc, "--barge-after", str(args.barge_after)]
            cmd += ["--api", args.api]
            cmd += ["--helper-nice", str(args.helper_nice)]
            cmd += ["--caller-phase", args.caller_phase]
            cmd += ["--release", args.release, "--jitter-ms", str(args.jitter_ms)]
            cmd += ["--rtp-ports", str(first), str(first + span - 1)]
            cmd += ["--samples-out", f"{tmp}/w{w}.json"]
            if measure_at is not None:
                cmd += ["--measure-at", repr(measure_at)]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        parts, raws = [], []
        timeout = args.seconds + args.warmup + SETUP_BUDGET_S + 150
        for w, proc in enumerate(procs):
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            if proc.returncode != 0:
                print(f"calls={n} worker {w}: failed: {err.strip().splitlines()[-3:]}")
                for other in procs:
                    if other.poll() is None:
                        other.kill()
                        other.communicate()
                return None
            parts.append(json.loads(out.strip().splitlines()[-1]))
            raws.append(orjson.loads(Path(f"{tmp}/w{w}.json").read_bytes()))
    return parts[0] if workers == 1 else merge_workers(parts, raws)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per N")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between bot turns")
    parser.add_argument("--barge-after", type=float, default=0.6)
    parser.add_argument("--rtp-ports", type=int, nargs=2, default=[14000, 17999])
    parser.add_argument(
        "--cpu",
        type=int,
        default=-1,
        help="CPU for the gateway process, helpers on the others (-1: no pinning)",
    )
    parser.add_argument("--json", action="store_true", help="print raw JSON per N as well")
    parser.add_argument(
        "--gc",
        choices=["on", "freeze"],
        default="on",
        help="freeze: gc.freeze() again after the calls are set up (the product freezes "
        "only what exists at startup)",
    )
    parser.add_argument(
        "--send-cost", action="store_true", help="only measure the CPU per WebSocket append"
    )
    parser.add_argument("--role", choices=["server", "callers"], help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=300.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the calls (one event loop each, as several instances "
        "behind the dispatcher): percentiles over all of them, CPU summed",
    )
    parser.add_argument(
        "--helper-nice",
        type=int,
        default=10,
        help="niceness of the stand-in peers (callers, Realtime server): they stand for "
        "machines elsewhere, so they yield the CPU to the gateway when both want it (0: equal)",
    )
    parser.add_argument(
        "--caller-phase",
        choices=["slot", "random"],
        default="slot",
        help="slot: caller i sends in the clock slot of call i's tick (one phase for all calls); "
        "random: callers take the gateway's slots in random order (any phase, as real peers)",
    )
    parser.add_argument(
        "--release",
        choices=["tick", "arrival", "due"],
        default="tick",
        help="when inbound audio leaves the jitter buffer: tick (the product: the call's 20 ms "
        "clock tick only), arrival (also right after each packet), due (also a timer at "
        "JitterBuffer.next_due): what stream.py could do",
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="injected network jitter: each caller packet is sent 0..J ms late (uniform)",
    )
    parser.add_argument(
        "--api",
        choices=["realtime", "live"],
        default="realtime",
        help="the voice backend the calls use, as [realtime] api: realtime (GA) or live "
        "(GPT-Live: its own stand-in server and figures, bench/latency_live.py)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--measure-at", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--samples-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    server_opts = ServerOptions(period_s=args.period, barge_after_s=args.barge_after)

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = args.cpu >= 0 and len(cpus) > 1 and args.cpu in cpus
    if pin:
        # The gateway gets its CPU; our own load generators run on the others, so at least
        # they do not compete with it (other jobs on the machine still can).
        mine = {args.cpu} if args.role is None else set(cpus) - {args.cpu}
        os.sched_setaffinity(0, mine)
    if args.role is not None and args.helper_nice > 0:
        os.nice(args.helper_nice)
    if args.role == "server":
        protocol = LiteLive if args.api == "live" else LiteRealtime
        _run("uvloop", run_server(server_opts, args.lifetime, protocol, args.events_out))
        return
    if args.role == "callers":
        ports = json.loads(sys.stdin.readline())
        _run(
            "uvloop",
            run_callers(
                "127.0.0.1", ports, args.lifetime, args.caller_phase, args.jitter_ms / 1000.0
            ),
        )
        return
    # 500 calls: 2 UDP sockets + 1 TCP connection each, beyond the usual 1024 soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    if args.send_cost:
        print(json.dumps(_run(args.loop, run_send_cost())))
        return
    if args.one:
        HELPER_PIN[0] = args.cpu
        HELPER_NICE[0] = args.helper_nice
        CALLER_PHASE[0] = args.caller_phase
        RELEASE[0] = args.release
        JITTER_MS[0] = args.jitter_ms
        result = _run(
            args.loop,
            run_gateway(
                args.calls[0],
                args.seconds,
                args.warmup,
                server_opts,
                tuple(args.rtp_ports),
                args.gc,
                args.measure_at,
                args.samples_out,
                args.api,
            ),
        )
        raw = result.pop("_raw")
        if args.samples_out and raw is not None:
            Path(args.samples_out).write_bytes(orjson.dumps(raw))
        print(json.dumps(result))
        return
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    print(
        f"loop={args.loop} seconds={args.seconds} warmup={args.warmup} period={args.period} "
        f"barge_after={args.barge_after} gateway_cpu={args.cpu if pin else 'any'} gc={args.gc} "
        f"cpus={os.cpu_count()} workers={args.workers} helper_nice={args.helper_nice} "
        f"api={args.api} "
        f"caller_phase={args.caller_phase} release={args.release} jitter_ms={args.jitter_ms:g}"
    )
    results = []
    for n in args.calls:
        result = run_workers(args, n)
        if result is not None:
            results.append(result)
    print_tables(results, args.api == "live")
    if args.json:
        for r in results:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
