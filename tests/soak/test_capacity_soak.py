"""Soak (issue 14): 100 concurrent calls for 10 minutes through `sip-realtime-gateway run`.

SIPp places calls that play speech (bench/sipp/uac_load.xml) against the gateway, which talks
to the built-in simulator in its load mode; each call holds SOAK_HOLD_S and SIPp replaces it
as it ends (`-l` calls at most, `-m` in all), so the gateway keeps SOAK_CALLS calls up for
SOAK_MINUTES while ~SOAK_CALLS x SOAK_MINUTES x 60 / SOAK_HOLD_S calls come and go. The
processes, config and SIPp command are bench/sipp_load.py's (`Product`, `sipp_command`).

What it asserts:
- no failed call: SIPp exits 0 and every call the gateway ended, ended by the caller's BYE;
- the gateway's RSS grows less than 5 % from the end of the first minute (warm-up) to the last
  sample with every call up (`srg_process_resident_memory_bytes`);
- the simulator's RSS (from /proc) grows less than 4 KiB per call ended from when its memory
  is at its full size to the end (less than 10 % in a run too short for that: under
  SIMULATOR_PER_CALL_MIN calls): it holds the conversation audio of the live calls and of the
  last `keep_sessions` (50) finished ones, so its full size comes once that many calls have
  ended and the calls then live have been up a whole hold;
- after the last call the gateway's descriptors and asyncio tasks come back to what they were
  before the first (`srg_process_open_fds`, `srg_asyncio_tasks`).

Run with `make soak` (skipped by `make test`). Shorter runs through the environment, e.g.
`SOAK_CALLS=50 SOAK_MINUTES=4 SOAK_HOLD_S=30 make soak ARGS=tests/soak/test_capacity_soak.py`
(shorter still fails on purpose: the simulator is measured from when `keep_sessions` calls have
ended plus one hold, over at least half of the soak after its first minute; 10 calls for 2
minutes leave it 10 s). The samples (every 10 s) are printed and written to SOAK_REPORT (a JSON
file) when set; they include the media clock's skipped and catch-up frames.
Needs sipp, espeak-ng, sox and root or CAP_NET_RAW (SIPp's play_pcap_audio).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from bench.rtp_sink import RtpSink
from bench.sipp_load import (
    Product,
    ProductPorts,
    by_label,
    rss_bytes,
    sipp_command,
    total,
    write_scenario,
)
from gateway.media.ports import pairs_needed
from gateway.realtime.simulator import SimulatorOptions
from tests.tools.peers import require_peer, which_peer
from tests.tools.ports import free_port_block
from tests.tools.wait import wait_until

pytestmark = pytest.mark.soak

CALLS = int(os.environ.get("SOAK_CALLS", "100"))
MINUTES = float(os.environ.get("SOAK_MINUTES", "10"))
HOLD_S = float(os.environ.get("SOAK_HOLD_S", "60"))
RATE = float(os.environ.get("SOAK_RATE", "10"))  # new calls per second at most
SAMPLE_S = 10.0
WARMUP_S = 60.0
GATEWAY_RSS_GROWTH = 0.05
SIMULATOR_RSS_GROWTH = 0.10  # runs too short for the per-call bound below
# Bytes of RSS per call ended. Five full soaks measured 865 to 1350 B per call over 800 calls
# (0.3-0.5 % of the 236 MB working set) while the simulator's traced Python memory stayed flat
# (41.82 MB over 1100 in-process sessions): allocator steps, not objects kept. 4 KiB is three
# times that noise and 800 times under the retention this guards against
# (3.2 MiB per call: every session's audio kept); what the simulator's own code keeps per
# session is bounded to 768 B, by tracemalloc, in tests/realtime/test_simulator_freed.py.
SIMULATOR_RSS_PER_CALL = 4096
# Calls ended within the span measured for the per-call bound to apply: the allocator grows
# the RSS in steps of 0.1-0.4 MB after warm-up (short runs, 10:08-10:19 UTC), under 1 KiB per
# call only over this many.
SIMULATOR_PER_CALL_MIN = 500
QUARANTINE_S = 30.0  # the default media.rtp_port_quarantine_s
KEEP_SESSIONS = SimulatorOptions().keep_sessions


@dataclass
class Sample:
    t: float  # seconds since SIPp started
    active: float
    ended: float  # calls the gateway ended so far
    gateway_rss: float
    fds: float
    tasks: float
    simulator_rss: int
    # The media clock's late-tick policy so far (srg_pacer_*_frames_total): frames skipped are
    # gaps the callers heard, catch-up frames went out in a burst. Reported, not bounded: they
    # measure the machine's load as much as the gateway.
    skipped_frames: float = 0.0
    catchup_frames: float = 0.0


def _report(samples: list[Sample], extra: dict[str, object]) -> str:
    text = json.dumps({**extra, "samples": [asdict(s) for s in samples]}, indent=1)
    path = os.environ.get("SOAK_REPORT")
    if path:
        Path(path).write_text(text)
    return text


def test_calls_held_for_minutes_fail_none_and_leak_nothing(tmp_path: Path) -> None:
    require_peer("sipp", "espeak-ng", "sox")
    generations = math.ceil(MINUTES * 60 / HOLD_S) + 1  # the last one keeps the end full
    total_calls = CALLS * generations
    # Every generation of calls ends together (same hold, fast ramp) and is replaced at once,
    # so each call slot can hold one pair in quarantine besides its live one: the worst case
    # of docs/deployment.md's rule, not its average (pairs_needed gave 160 pairs for 100
    # calls, and a full run at 07:01 had 244 INVITEs refused "no free RTP port pair" at the
    # first generation's end).
    pairs = CALLS * (1 + math.ceil(QUARANTINE_S / HOLD_S)) + 10
    assert pairs >= pairs_needed(CALLS, QUARANTINE_S, min_call_s=HOLD_S)
    # gateway SIP, simulator, control, SIPp SIP | RTP range | SIPp media: -mp + 4 x call number
    # (mod 10000), sent from a raw socket; bench/rtp_sink.py binds and drains them (the phones'
    # receive side: without it every RTP packet drew an ICMP port unreachable).
    media_span = 4 * min(total_calls, 2500) + 8
    base = free_port_block(4 + 2 * pairs + media_span)
    ports = ProductPorts(base, base + 1, base + 2, (base + 4, base + 4 + 2 * pairs - 1))
    media_base = base + 4 + 2 * pairs
    scenario = write_scenario(tmp_path, int(HOLD_S * 1000))
    samples: list[Sample] = []

    phones = RtpSink(tmp_path, "127.0.0.1", media_base, min(total_calls, 2500))
    with (
        phones,
        Product(tmp_path, ports, max_calls=CALLS + 10, rate=RATE, simulator_load=True) as product,
    ):
        assert product.simulator is not None
        simulator_pid = product.simulator.pid

        def sample(t0: float) -> Sample:
            m = product.metrics()
            return Sample(
                t=round(time.monotonic() - t0, 1),
                active=total(m, "srg_calls_active"),
                ended=total(m, "srg_calls_total") - ended_before,
                gateway_rss=total(m, "srg_process_resident_memory_bytes"),
                fds=total(m, "srg_process_open_fds"),
                tasks=total(m, "srg_asyncio_tasks"),
                simulator_rss=rss_bytes(simulator_pid),
                skipped_frames=total(m, "srg_pacer_skipped_frames_total"),
                catchup_frames=total(m, "srg_pacer_catchup_frames_total"),
            )

        before = product.metrics()
        ended_before = total(before, "srg_calls_total")
        baseline = sample(time.monotonic())
        assert baseline.fds > 0 and baseline.gateway_rss > 0, baseline
        sipp = subprocess.Popen(
            sipp_command(
                which_peer("sipp"),
                scenario,
                tmp_path,
                ports.gateway_sip,
                base + 3,
                media_base,
                rate=RATE,
                limit=CALLS,
                total=total_calls,
                timeout_s=generations * (HOLD_S + 30) + 120,
            ),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            t0 = time.monotonic()
            # Sample every SAMPLE_S until SIPp has placed and ended every call.
            while True:
                try:
                    sipp_rc = sipp.wait(timeout=SAMPLE_S)
                    break
                except subprocess.TimeoutExpired:
                    samples.append(sample(t0))
        finally:
            if sipp.poll() is None:
                sipp.kill()
                sipp.wait()
        # The gateway ends each call on SIPp's BYE; then its descriptors and tasks go back.
        wait_until(
            lambda: total(product.metrics(), "srg_calls_active") == 0, 30, "every call ended"
        )
        settled = wait_until(
            lambda: (s := sample(t0)).fds <= baseline.fds and s.tasks <= baseline.tasks and s,
            60,
            lambda: f"descriptors/tasks back to {baseline}: now {sample(t0)}",
            interval=0.5,
        )
        after = product.metrics()
    received = phones.counts()

    outcomes = by_label(after, "srg_calls_total", "outcome")
    for key, value in by_label(before, "srg_calls_total", "outcome").items():
        outcomes[key] = outcomes.get(key, 0.0) - value
    errors = (tmp_path / "sipp_errors.log").read_text()[-3000:] if sipp_rc else ""
    full = [s for s in samples if s.active >= CALLS]
    assert full, samples
    t_full = full[0].t
    warm = next(s for s in full if s.t >= t_full + WARMUP_S)
    # The simulator holds the conversation audio (~16 KB per second of call) of the live calls
    # and of the last KEEP_SESSIONS finished ones: its memory is at its full size once that many
    # calls have ended and the calls then live have been up a whole hold. Measured from there
    # (the full soak of 08:34 measured from when KEEP_SESSIONS calls had ended, at t = 80 s,
    # while the second generation of calls was still filling: 195.3 MB, then 237.3 MB from
    # t = 130 s to the end).
    t_kept = next((s.t for s in samples if s.ended >= KEEP_SESSIONS), full[-1].t)
    sim_warm = next((s for s in full if s.t >= max(warm.t, t_kept + HOLD_S)), full[-1])
    last = full[-1]
    report = _report(
        samples,
        {
            "calls": CALLS,
            "minutes": MINUTES,
            "hold_s": HOLD_S,
            "total_calls": total_calls,
            "outcomes": outcomes,
            "baseline": asdict(baseline),
            "settled": asdict(settled),
            "warm": asdict(warm),
            "simulator_warm": asdict(sim_warm),
            "last_full": asdict(last),
            "rtp_received_by_the_phones": received,
        },
    )
    print(report)

    assert sipp_rc == 0, errors
    assert outcomes == {"remote_bye": total_calls}, outcomes
    assert received.get("packets", 0) > 0, f"the phones received no RTP: {received}"
    # The span measured is the soak asked for: from minute 1 to (about) its end.
    assert last.t - warm.t >= (MINUTES * 60 - WARMUP_S) * 0.9, (warm, last)
    growth = (last.gateway_rss - warm.gateway_rss) / warm.gateway_rss
    assert growth < GATEWAY_RSS_GROWTH, f"gateway RSS +{growth:.1%} ({warm} -> {last})"
    assert last.t - sim_warm.t >= (MINUTES * 60 - WARMUP_S) * 0.5, (sim_warm, last)
    sim_calls = last.ended - sim_warm.ended
    sim_bytes = last.simulator_rss - sim_warm.simulator_rss
    if sim_calls >= SIMULATOR_PER_CALL_MIN:
        assert sim_bytes < SIMULATOR_RSS_PER_CALL * sim_calls, (
            f"simulator RSS +{sim_bytes / 1e6:.2f} MB over {sim_calls:.0f} calls "
            f"({sim_bytes / sim_calls:.0f} B per call; {sim_warm} -> {last})"
        )
    else:
        sim_growth = sim_bytes / sim_warm.simulator_rss
        assert sim_growth < SIMULATOR_RSS_GROWTH, f"simulator RSS +{sim_growth:.1%}"
    assert settled.fds <= baseline.fds and settled.tasks <= baseline.tasks, (baseline, settled)
