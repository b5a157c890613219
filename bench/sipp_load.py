"""Benchmark: calls per core of the whole product, driven by SIPp over loopback.

`sip-realtime-gateway run` (SIP, RTP, jitter buffer, state machine, Realtime client, playout,
metrics, JSON logs: everything as shipped) answers N concurrent SIPp calls. Each SIPp call
plays a pcap of 20 ms PCMU (espeak-ng speech, then silence, repeated) for the whole hold time,
so the gateway appends 50 frames/s per call, the built-in simulator (`sip-realtime-gateway
simulator`, its own process) detects each utterance and answers with it, and the gateway
paces that bot audio back as RTP. Calls are set up at `--rate` per second; once all N are up
and settled, the CPU of each process is read from /proc over `--window` seconds. The figure
that matters is the gateway's CPU per call: µs of CPU per call per 20 ms, and the calls one
core could carry at that cost. SIPp and the simulator are not counted (they stand for phones
and OpenAI, elsewhere in production).

Also printed, from the gateway's own /metrics (deltas over the run): RTP packets in/out per
second of SIP-answered call (50/s each way expected: SIPp sends 50, the gateway sends 50, bot
audio or silence; the answered time comes from the gateway's JSON log, `log_figures`),
loss/late/concealed inbound frames, the media clock's lateness p50/p99 (histogram bucket
bounds), `srg_response_latency_seconds` p50/p95 and its count (caller stopped speaking ->
first bot audio: simulator + gateway, the delay a caller feels) and how calls ended; from the
log, per call, the teardown after the BYE and the bot audio trimmed from the playout queue.

Needs sipp, espeak-ng and sox (`make peers` installs them) and root or CAP_NET_RAW for SIPp's
play_pcap_audio. Loopback only; every process it starts is stopped at the end.

With `--simulator-load` the simulator runs in its load mode (`simulator --load`: the same
protocol without recorded audio, with a sampled VAD, on uvloop; gateway/realtime/simulator/
options.py), so that it is not what limits how many calls this machine can take;
`--simulator-profile FILE` writes the simulator's cProfile to FILE.

    .venv/bin/python bench/sipp_load.py                     # 50 and 100 calls
    .venv/bin/python bench/sipp_load.py --calls 200 --rate 25 --window 20
    .venv/bin/python bench/sipp_load.py --calls 100 --simulator-load
    .venv/bin/python bench/sipp_load.py --api live --calls 100 [--simulator-load]

With `--api live` the gateway's calls go to GPT-Live (`[realtime] api = "live"`, issue 12): the
same simulator process serves /v1/live/sessions (its defaults: one output delta every 100 ms,
continuous output with silence between replies; `--simulator-load` puts its live side in load
mode too), and the gateway is pointed at that path with `--realtime-url` and a dummy key, the
way `run` points itself at its built-in simulator. The same figures are printed, with one
difference: GPT-Live has no speech-stopped event (the model decides when to speak), so
`srg_response_latency_seconds` gets no observations in live mode and its column reads
"- / - (0)" (the number in brackets is how many turns it counted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._procstat import cpu_times, proc_cpu_s, steal_pct  # noqa: E402
from bench.rtp_sink import RtpSink  # noqa: E402
from tests.tools.media import make_test_media  # noqa: E402
from tests.tools.pcap import write_udp_pcap  # noqa: E402
from tests.tools.ports import free_port_block  # noqa: E402
from tests.tools.rtp import PhoneStreamSpec, build_g711_dtmf_packets  # noqa: E402

SCENARIO = ROOT / "bench" / "sipp" / "uac_load.xml"
SILENCE_ULAW = b"\xff"
HOST = "127.0.0.1"
SETTLE_S = 3.0
APIS = ("realtime", "live")
# The key the gateway sends the simulator in live mode (its handshake wants a Bearer token, any
# will do): the name of the environment variable realtime.api_key_env points at, and its value.
LIVE_KEY_ENV = "BENCH_LIVE_KEY"
LIVE_KEY = "bench"
TICKS_PER_S = 50  # 20 ms frames


# --- ports ---------------------------------------------------------------------------------


def ports_needed(calls: int) -> int:
    """One block: gateway SIP, simulator, control API, SIPp SIP, then the gateway's RTP range
    (2 per call + spare) and SIPp's media ports (4 per call, [auto_media_port])."""
    return 4 + (2 * calls + 20) + (4 * calls + 8)


# --- processes ------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def lower_priority(pid: int, nice: int) -> None:
    """Run a load generator (SIPp, the simulator, the RTP sink) `nice` steps below the
    gateway: in production the phones and the voice service are other machines, so here they
    must not take the CPU the gateway's clock needs (0: the same priority)."""
    if nice > 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, pid) + nice)


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout:.0f} s")


# --- metrics --------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")


def parse_metrics(text: str) -> dict[tuple[str, str], float]:
    """Prometheus text format -> {(name, labels text): value}."""
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match:
            out[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return out


def total(metrics: dict[tuple[str, str], float], name: str, label: str = "") -> float:
    return sum(v for (n, labels), v in metrics.items() if n == name and label in labels)


def by_label(metrics: dict[tuple[str, str], float], name: str, key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), v in metrics.items():
        match = re.search(key + r'="([^"]*)"', labels)
        if n == name and match and v:
            out[match.group(1)] = out.get(match.group(1), 0.0) + v
    return out


def quantile(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], name: str, q: float
) -> float | None:
    """Upper bound (s) of the histogram bucket holding quantile q, over after - before."""
    buckets: dict[float, float] = {}
    for (n, labels), v in after.items():
        if n != f"{name}_bucket":
            continue
        le = re.search(r'le="([^"]*)"', labels)
        if le:
            bound = float(le.group(1))
            buckets[bound] = buckets.get(bound, 0.0) + v - before.get((n, labels), 0.0)
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return None
    for bound in bounds:
        if buckets[bound] >= q * count:
            return bound
    return bounds[-1]


@dataclass
class LogFigures:
    """What the bench reads from the gateway's JSON log rather than its /metrics."""

    answered_s: float = 0.0  # SIP-answered time of the calls, summed (see `log_figures`)
    calls: int = 0  # calls with both ends of that time in the log
    trimmed_bytes: int = 0  # bot audio trimmed from the playout queue (call records), summed
    teardown_s: float = 0.0  # `sip.call.ended` (BYE) -> `call.ended` (teardown over), summed
    torn_down: int = 0  # calls with both ends of that time in the log


def log_figures(log_path: Path) -> LogFigures:
    """Each call's SIP-answered time, `sip.call.answered` (2xx sent) to its `sip.call.ended`
    (BYE), summed, and the `playout_trimmed_bytes` of the `call.ended` records (bot audio the
    shallow live queue dropped: no metric counts it), and each call's teardown after its BYE
    (`sip.call.ended` -> `call.ended`: with GPT-Live the voice session's graceful close,
    `session.close` -> `session.closed`, the service draining the reply in progress,
    gateway/live/client.py). Lines that are not such JSON records are skipped."""
    figures = LogFigures()
    answered: dict[str, datetime] = {}
    sip_ended: dict[str, datetime] = {}
    with log_path.open("rb") as log:
        for line in log:
            if b'"sip.call.' not in line and b'"call.ended"' not in line:
                continue
            try:
                entry = json.loads(line)
                event, call_id = entry["event"], entry["call_id"]
                at = datetime.fromisoformat(entry["ts"])
                if event == "call.ended":
                    figures.trimmed_bytes += int(entry.get("playout_trimmed_bytes") or 0)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if event == "sip.call.answered":
                answered[call_id] = at
            elif event == "sip.call.ended" and call_id in answered:
                figures.answered_s += (at - answered.pop(call_id)).total_seconds()
                figures.calls += 1
                sip_ended[call_id] = at
            elif event == "call.ended" and call_id in sip_ended:
                figures.teardown_s += (at - sip_ended.pop(call_id)).total_seconds()
                figures.torn_down += 1
    return figures


def fetch_metrics(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as reply:
        return parse_metrics(reply.read().decode())


# --- one run --------------------------------------------------------------------------------


@dataclass
class Result:
    calls: int
    ok: int
    failed: int
    active_peak: int
    window_s: float
    gateway_cpu_pct: float
    simulator_cpu_pct: float
    sipp_cpu_pct: float
    sink_cpu_pct: float  # bench/rtp_sink.py: the phones' RTP receive side (0 without it)
    steal_pct: float
    rtp_in_per_call_s: float
    rtp_out_per_call_s: float
    lost: float
    late: float
    concealed: float
    clock_late_p99_ms: float | None
    response_p50_ms: float | None
    response_p95_ms: float | None
    outcomes: dict[str, float]
    api: str = "realtime"
    clock_late_p50_ms: float | None = None
    response_count: int = 0  # srg_response_latency_seconds observations (none in live mode)
    # Mean time per call from the BYE to the end of its teardown (`sip.call.ended` ->
    # `call.ended` in the gateway's log): the voice session's close, the call still active.
    teardown_ms: float | None = None
    trimmed_ms_per_call: float = 0.0  # bot audio trimmed from the playout queue, ms per call
    gateway_rss_idle_mb: float = 0.0  # before the first call
    gateway_rss_loaded_mb: float = 0.0  # at the end of the window, every call up
    simulator_rss_mb: float = 0.0
    # What the phones received (bench/rtp_sink.py: every call but the first, whose port SIPp
    # holds), RTP packets per call per second of SIP-answered time; None without the sink.
    sink_rtp_per_call_s: float | None = None
    problem: str = ""

    @property
    def rss_per_call_kib(self) -> float:
        """Gateway memory one live call holds: (loaded - idle) / calls."""
        return (self.gateway_rss_loaded_mb - self.gateway_rss_idle_mb) * 1024 / self.calls

    @property
    def us_per_call_tick(self) -> float:
        return self.gateway_cpu_pct / 100 / self.calls / TICKS_PER_S * 1e6

    @property
    def calls_per_core(self) -> float:
        return 100 / (self.gateway_cpu_pct / self.calls) if self.gateway_cpu_pct else 0.0


def make_pcap(work: Path, hold_s: float) -> Path:
    """Speech then 2.5 s of silence, repeated for `hold_s`: a turn every few seconds."""
    media = make_test_media(work / "media", text="Hello, I would like to check my order.")
    speech = media.speech_ulaw.read_bytes()
    cycle = speech + SILENCE_ULAW * 20000
    frames = int(hold_s * 8000) // 160 * 160
    audio = (cycle * (frames // len(cycle) + 1))[:frames]
    packets = build_g711_dtmf_packets(audio, "", PhoneStreamSpec())
    path = work / "load.pcap"
    write_udp_pcap(path, packets)
    return path


def write_scenario(work: Path, hold_ms: int) -> Path:
    """bench/sipp/uac_load.xml for calls that hold `hold_ms` playing the speech pcap."""
    pcap = make_pcap(work, hold_ms / 1000 + 1)
    scenario = work / "uac_load.xml"
    scenario.write_text(
        SCENARIO.read_text().replace("@PCAP@", pcap.name).replace("@HOLD_MS@", str(hold_ms))
    )
    return scenario


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (proc(5) status), 0 when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass(frozen=True)
class ProductPorts:
    """Where the product under load listens: gateway SIP, simulator, control API, and the
    gateway's RTP range."""

    gateway_sip: int
    simulator: int
    control: int
    rtp: tuple[int, int]


class Product:
    """`sip-realtime-gateway simulator` and `sip-realtime-gateway run` as two processes, the
    way both benches (this one and tests/soak/test_capacity_soak.py) drive them: loopback,
    JSON log to `work/gateway.log`, /metrics public (the rest of the API keeps its token), the
    per-source admission limits lifted to the load (every call comes from one SIPp address:
    sip/admission.py defaults are 5 INVITE/s, burst 10, 20 calls). Use as a context manager;
    every process is stopped on exit."""

    def __init__(
        self,
        work: Path,
        ports: ProductPorts,
        *,
        max_calls: int,
        rate: float,
        simulator_load: bool = False,
        simulator_profile: Path | None = None,
        api: str = "realtime",
        generators_nice: int = 0,
        gateway_env: dict[str, str] | None = None,
    ) -> None:
        """`gateway_env`: variables for the gateway's process only (SRG_* settings such as
        SRG_MEDIA_APPEND_MS, or SRG_PURE_PYTHON), on top of the environment without the
        caller's own SRG_*/OPENAI_* (so a shell's settings never leak into a run)."""
        if api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, not {api!r}")
        self.api = api
        self.work = work
        self.ports = ports
        self.max_calls = max_calls
        self.rate = rate
        self.simulator_load = simulator_load
        self.simulator_profile = simulator_profile
        self.generators_nice = generators_nice
        self.gateway_env = dict(gateway_env or {})
        self.simulator: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __enter__(self) -> Product:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        work, ports = self.work, self.ports
        config = work / "gateway.toml"
        config.write_text(
            f'[control]\nhost = "{HOST}"\nport = {ports.control}\nmetrics_public = true\n'
            f'token_file = "{work / "control.token"}"\n'
            f"[sip]\ninvite_rate_per_source = {max(self.rate * 2, 5.0)}\n"
            f"invite_burst_per_source = {self.max_calls}\n"
            f"max_calls_per_source = {self.max_calls}\n"
            + (
                f'[realtime]\napi = "live"\napi_key_env = "{LIVE_KEY_ENV}"\n'
                if self.api == "live"
                else ""
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SRG_"))}
        voice_url = f"ws://{HOST}:{ports.simulator}/v1/realtime?model=gpt-realtime"
        if self.api == "live":
            # The simulator's GPT-Live path (it takes no query); a URL other than the default
            # is used as written, with the key as a Bearer token (gateway/call_settings.py).
            voice_url = f"ws://{HOST}:{ports.simulator}/v1/live/sessions"
            env[LIVE_KEY_ENV] = LIVE_KEY
        python = sys.executable
        profile = (
            ["-m", "cProfile", "-o", str(self.simulator_profile)] if self.simulator_profile else []
        )
        self.simulator = subprocess.Popen(
            [
                python, *profile, "-m", "gateway", "simulator",
                "--host", HOST, "--port", str(ports.simulator),
                *(["--load"] if self.simulator_load else []),
                *self._live_flags(),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        lower_priority(self.simulator.pid, self.generators_nice)
        _wait_port(ports.simulator, 20)
        self._log = (work / "gateway.log").open("wb")
        self.gateway = subprocess.Popen(
            [
                python, "-m", "gateway", "run", "--config", str(config),
                "--sip-host", HOST, "--sip-port", str(ports.gateway_sip),
                "--rtp-ports", f"{ports.rtp[0]}-{ports.rtp[1]}",
                "--max-calls", str(self.max_calls),
                "--realtime-url", voice_url,
                "--log-format", "json",
            ],
            cwd=ROOT,
            env={**env, **self.gateway_env},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )  # fmt: skip
        _wait_port(ports.control, 20)

    def _live_flags(self) -> list[str]:
        """The simulator's GPT-Live knobs for a load run, pinned so that a change of its
        defaults does not move the figures: one output delta every 100 ms (what the service was
        observed to send, gateway/live/simulator/options.py), so the gateway receives 10
        deltas per call per second, speech or silence. The rest stay at their defaults, which a
        load run does not reach: input is continuous (idle expiry 30 s), sessions last an hour,
        no faults. `--load` already puts the live side in load mode."""
        return ["--live-delta-ms", "100"] if self.api == "live" else []

    def metrics(self) -> dict[tuple[str, str], float]:
        return fetch_metrics(self.ports.control)

    def stop(self) -> None:
        _stop(self.gateway, grace=40)
        _stop(self.simulator)
        if self._log is not None:
            self._log.close()
            self._log = None


def sipp_command(
    sipp: str,
    scenario: Path,
    work: Path,
    gateway_sip: int,
    sipp_sip: int,
    media_base: int,
    *,
    rate: float,
    limit: int,
    total: int,
    timeout_s: float,
) -> list[str]:
    """SIPp placing `total` calls of `scenario` at `rate` per second, at most `limit` at once:
    a call that ends is replaced by the next (what keeps a soak at `limit` calls). Media ports
    are `media_base + 4 x (call number - 1) % 10000` ([auto_media_port])."""
    return [
        sipp, f"{HOST}:{gateway_sip}", "-sf", str(scenario), "-s", "100",
        "-i", HOST, "-p", str(sipp_sip), "-mi", HOST, "-mp", str(media_base),
        "-r", f"{rate:g}", "-rp", "1000", "-l", str(limit), "-m", str(total),
        "-nostdin", "-timeout", f"{int(timeout_s)}s",
        "-timeout_error", "-trace_err", "-error_file", str(work / "sipp_errors.log"),
    ]  # fmt: skip


def run_one(
    calls: int,
    rate: float,
    window_s: float,
    work: Path,
    sipp: str,
    port_base: int | None = None,
    simulator_load: bool = False,
    simulator_profile: Path | None = None,
    api: str = "realtime",
    sink: bool = True,
    generators_nice: int = 0,
    sink_mode: str = "hold",
    margin_s: float = 10.0,
    gateway_env: dict[str, str] | None = None,
) -> Result:
    """One measured run of `calls` concurrent calls; `port_base` starts a block of
    `ports_needed(calls)` free loopback ports (found here when None). `simulator_load` runs the
    simulator with `--load` (its cheap load mode); `simulator_profile` runs it under cProfile,
    writing the profile there when it stops; `api` is the voice API the gateway's calls use
    ("realtime" or "live"); `sink` receives the gateway's RTP on the phones' ports
    (bench/rtp_sink.py, in `sink_mode`: "hold" counts them without reading, "drain" reads
    each) instead of leaving them closed; `generators_nice` runs SIPp, the
    simulator and the sink that many nice steps below the gateway; `margin_s` is how long each
    call holds beyond the ramp, the settling and the window (slow call set-up eats into it)."""
    ramp_s = calls / rate
    hold_ms = int((ramp_s + SETTLE_S + window_s + margin_s) * 1000)
    scenario = write_scenario(work, hold_ms)
    base = free_port_block(ports_needed(calls)) if port_base is None else port_base
    gw_sip, sim_port, control, sipp_sip = base, base + 1, base + 2, base + 3
    rtp_low = base + 4
    media_base = rtp_low + 2 * calls + 20
    ports = ProductPorts(gw_sip, sim_port, control, (rtp_low, rtp_low + 2 * calls + 19))
    sipp_proc = None
    phones = (
        RtpSink(work, HOST, media_base, calls, mode=sink_mode)
        if sink
        else contextlib.nullcontext(None)
    )
    with (
        phones as rtp_sink,
        Product(
            work,
            ports,
            max_calls=calls + 10,
            rate=rate,
            simulator_load=simulator_load,
            simulator_profile=simulator_profile,
            api=api,
            generators_nice=generators_nice,
            gateway_env=gateway_env,
        ) as product,
    ):
        gateway, simulator = product.gateway, product.simulator
        assert gateway is not None and simulator is not None
        try:
            before = product.metrics()
            rss_idle = total(before, "srg_process_resident_memory_bytes")
            sipp_proc = subprocess.Popen(
                sipp_command(
                    sipp,
                    scenario,
                    work,
                    gw_sip,
                    sipp_sip,
                    media_base,
                    rate=rate,
                    limit=calls,
                    total=calls,
                    timeout_s=hold_ms / 1000 + ramp_s + 60,
                ),
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            lower_priority(sipp_proc.pid, generators_nice)
            if rtp_sink is not None:
                lower_priority(rtp_sink.pid, generators_nice)
            # All calls up?
            deadline = time.monotonic() + ramp_s + 30
            active = 0.0
            while time.monotonic() < deadline and sipp_proc.poll() is None:
                active = total(product.metrics(), "srg_calls_active")
                if active >= calls:
                    break
                time.sleep(0.5)
            problem = "" if active >= calls else f"only {active:.0f} of {calls} calls came up"
            time.sleep(SETTLE_S)
            m0 = product.metrics()
            pids = [p.pid for p in (gateway, simulator, sipp_proc)]
            if rtp_sink is not None:
                pids.append(rtp_sink.pid)
            cpu0 = [proc_cpu_s(pid) for pid in pids]
            machine0 = cpu_times()
            wall0 = time.monotonic()
            time.sleep(window_s)
            wall = time.monotonic() - wall0
            cpu = [proc_cpu_s(pid) - c for pid, c in zip(pids, cpu0, strict=True)]
            if rtp_sink is None:
                cpu.append(0.0)
            steal = steal_pct(machine0, cpu_times())
            m1 = product.metrics()
            rss_loaded = total(m1, "srg_process_resident_memory_bytes")
            simulator_rss = rss_bytes(simulator.pid)
            active_end = total(m1, "srg_calls_active")
            if not problem and active_end < calls:
                problem = f"{calls - active_end:.0f} calls ended during the window"
            sipp_rc = sipp_proc.wait(timeout=hold_ms / 1000 + ramp_s + 90)
            # Every call accounted: a call is counted once its teardown is over, which with
            # GPT-Live is after the voice session's graceful close (up to CLOSE_WAIT_S, 12 s,
            # gateway/live/client.py).
            deadline = time.monotonic() + 20
            after = product.metrics()
            while total(after, "srg_calls_active") > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
                after = product.metrics()
        finally:
            _stop(sipp_proc)
    # The `with` stopped the sink, which then wrote what it received.
    sink_packets = rtp_sink.counts().get("packets") if rtp_sink is not None else None
    outcomes = by_label(after, "srg_calls_total", "outcome")
    for key, value in by_label(before, "srg_calls_total", "outcome").items():
        outcomes[key] = outcomes.get(key, 0.0) - value
    ok = int(outcomes.get("remote_bye", 0.0))
    if sipp_rc != 0 and not problem:
        problem = f"sipp exited {sipp_rc} (see sipp_errors.log)"
    # RTP counters are added once per call at hangup (never per packet): rates over the
    # calls' whole SIP-answered time (log_figures says why not the call duration metric).
    logged = log_figures(work / "gateway.log")
    call_s, timed_calls = logged.answered_s, logged.calls
    if timed_calls != calls and not problem:
        problem = f"{timed_calls} of {calls} calls answered and ended in the gateway log"
    rtp_in = total(after, "srg_rtp_packets_total", 'direction="in"') - total(
        before, "srg_rtp_packets_total", 'direction="in"'
    )
    rtp_out = total(after, "srg_rtp_packets_total", 'direction="out"') - total(
        before, "srg_rtp_packets_total", 'direction="out"'
    )
    clock = quantile(m0, m1, "srg_pacer_lateness_seconds", 0.99)
    clock50 = quantile(m0, m1, "srg_pacer_lateness_seconds", 0.50)
    responses = total(after, "srg_response_latency_seconds_count") - total(
        before, "srg_response_latency_seconds_count"
    )
    p50 = quantile(before, after, "srg_response_latency_seconds", 0.50)
    p95 = quantile(before, after, "srg_response_latency_seconds", 0.95)
    return Result(
        calls=calls,
        ok=ok,
        failed=int(sum(outcomes.values()) - ok),
        active_peak=int(active),
        window_s=round(wall, 1),
        gateway_cpu_pct=round(100 * cpu[0] / wall, 1),
        simulator_cpu_pct=round(100 * cpu[1] / wall, 1),
        sipp_cpu_pct=round(100 * cpu[2] / wall, 1),
        sink_cpu_pct=round(100 * cpu[3] / wall, 1),
        sink_rtp_per_call_s=(
            round(sink_packets / (call_s * (calls - 1) / calls), 1)
            if sink_packets is not None and call_s > 0 and calls > 1
            else None
        ),
        steal_pct=steal,
        rtp_in_per_call_s=round(rtp_in / call_s, 1) if call_s > 0 else 0.0,
        rtp_out_per_call_s=round(rtp_out / call_s, 1) if call_s > 0 else 0.0,
        lost=total(after, "srg_rtp_packets_lost_total")
        - total(before, "srg_rtp_packets_lost_total"),
        late=total(after, "srg_rtp_packets_late_total")
        - total(before, "srg_rtp_packets_late_total"),
        concealed=total(after, "srg_rtp_concealed_frames_total")
        - total(before, "srg_rtp_concealed_frames_total"),
        clock_late_p99_ms=None if clock is None else clock * 1000,
        clock_late_p50_ms=None if clock50 is None else clock50 * 1000,
        response_count=int(responses),
        teardown_ms=(
            round(logged.teardown_s / logged.torn_down * 1000) if logged.torn_down else None
        ),
        trimmed_ms_per_call=round(logged.trimmed_bytes / 8 / calls, 1),
        api=api,
        response_p50_ms=None if p50 is None else p50 * 1000,
        response_p95_ms=None if p95 is None else p95 * 1000,
        outcomes={k: v for k, v in outcomes.items() if v},
        gateway_rss_idle_mb=round(rss_idle / 2**20, 1),
        gateway_rss_loaded_mb=round(rss_loaded / 2**20, 1),
        simulator_rss_mb=round(simulator_rss / 2**20, 1),
        problem=problem,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[50, 100])
    parser.add_argument(
        "--api",
        choices=APIS,
        default="realtime",
        help='the voice API of the calls: Realtime GA, or GPT-Live ([realtime] api = "live")',
    )
    parser.add_argument("--rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument("--window", type=float, default=15.0, help="measured seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--simulator-load",
        action="store_true",
        help="run the simulator in its load mode (`simulator --load`: no recorded audio, a "
        "sampled-energy VAD), so that it is not the bottleneck",
    )
    parser.add_argument(
        "--simulator-profile",
        metavar="FILE",
        help="run the simulator under cProfile and write its profile to FILE (with --calls N, "
        "the last N's run)",
    )
    parser.add_argument(
        "--no-sink",
        action="store_true",
        help="leave the phones' RTP ports closed, as before bench/rtp_sink.py (every packet the "
        "gateway sends then costs it an ICMP port unreachable): for comparing with old figures",
    )
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the gateway only, e.g. SRG_MEDIA_APPEND_MS=40 or "
        "SRG_PURE_PYTHON=1 (repeatable; the shell's own SRG_* never reach the gateway)",
    )
    parser.add_argument(
        "--sink-mode",
        choices=("hold", "drain"),
        default="hold",
        help="hold (default): the phones' ports are bound and counted by the kernel, not read "
        "(a remote phone's wakeups are not the gateway's CPU); drain: a process reads every "
        "packet, as before 2026-12-06 13:00 UTC (bench/rtp_sink.py)",
    )
    parser.add_argument(
        "--generators-nice",
        type=int,
        default=0,
        metavar="N",
        help="run SIPp, the simulator and the RTP sink N nice steps below the gateway (they "
        "stand for other machines; on this one they compete with the gateway's clock)",
    )
    args = parser.parse_args()
    sipp = shutil.which("sipp")
    missing = [b for b in ("sipp", "espeak-ng", "sox") if shutil.which(b) is None]
    if missing:
        sys.exit(f"sipp_load: missing {', '.join(missing)} (make peers installs them)")
    if any(n < 1 for n in args.calls) or args.rate <= 0 or args.window <= 0:
        sys.exit("sipp_load: --calls, --rate and --window must be positive")
    if not 0 <= args.generators_nice <= 19:
        sys.exit("sipp_load: --generators-nice must be 0..19")
    gateway_env = {}
    for item in args.gateway_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"sipp_load: --gateway-env wants KEY=VALUE, got {item!r}")
        gateway_env[key] = value
    load = os.getloadavg()
    print(
        f"rate={args.rate}/s window={args.window}s cpus={os.cpu_count()} "
        f"load={load[0]:.2f} python={sys.version.split()[0]} "
        f"simulator={'--load' if args.simulator_load else 'default'} api={args.api} "
        f"rtp_sink={'no' if args.no_sink else args.sink_mode} "
        f"generators_nice={args.generators_nice}"
        + (f" gateway_env={gateway_env}" if gateway_env else "")
    )
    results = []
    for n in args.calls:
        work = Path(tempfile.mkdtemp(prefix=f"sipp-load-{n}-"))
        try:
            assert sipp is not None
            profile = Path(args.simulator_profile).resolve() if args.simulator_profile else None
            results.append(
                run_one(
                    n,
                    args.rate,
                    args.window,
                    work,
                    sipp,
                    simulator_load=args.simulator_load,
                    simulator_profile=profile,
                    api=args.api,
                    sink=not args.no_sink,
                    generators_nice=args.generators_nice,
                    sink_mode=args.sink_mode,
                    gateway_env=gateway_env,
                )
            )
        except Exception as exc:  # one N failing must not hide the others
            print(f"calls={n}: failed: {exc!r} (work dir {work})")
            continue
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        "| calls | ok / failed | gateway CPU % | µs CPU per call per 20 ms | calls per core "
        "at that cost | RTP in / out per call per s | lost / late / concealed | clock late p50 "
        "/ p99 ms | response p50 / p95 ms (n) | simulator CPU % | SIPp CPU % | RTP sink CPU % | "
        "RTP received by the phones per call per s | steal % | "
        "gateway RSS MB idle / loaded | RSS per call KiB | simulator RSS MB | problem |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.calls} | {r.ok} / {r.failed} | {r.gateway_cpu_pct} | "
            f"{r.us_per_call_tick:.0f} | {r.calls_per_core:.0f} | "
            f"{r.rtp_in_per_call_s} / {r.rtp_out_per_call_s} | "
            f"{r.lost:g} / {r.late:g} / {r.concealed:g} | "
            f"{_fmt(r.clock_late_p50_ms)} / {_fmt(r.clock_late_p99_ms)} | "
            f"{_fmt(r.response_p50_ms)} / {_fmt(r.response_p95_ms)} ({r.response_count}) | "
            f"{r.simulator_cpu_pct} | "
            f"{r.sipp_cpu_pct} | {r.sink_cpu_pct} | {_fmt(r.sink_rtp_per_call_s)} | "
            f"{r.steal_pct} | {r.gateway_rss_idle_mb} / "
            f"{r.gateway_rss_loaded_mb} | {r.rss_per_call_kib:.0f} | {r.simulator_rss_mb} | "
            f"{r.problem or ''} |"
        )
    for r in results:
        print(
            f"calls={r.calls} outcomes: {r.outcomes}; teardown after BYE "
            f"{_fmt(r.teardown_ms)} ms per call (sip.call.ended -> call.ended in the gateway's log); "
            f"bot audio trimmed from playout {r.trimmed_ms_per_call:g} ms per call"
        )


if __name__ == "__main__":
    main()
