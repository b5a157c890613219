"""What the gateway sends a caller, on the wire: a short `bench/sipp_load.py` run (a few SIPp
calls through `sip-realtime-gateway run` + the simulator) with tshark capturing the gateway's
outbound RTP on loopback, then, per stream: packets per second, how many 20 ms frames are all
the codec's silence byte (0xFF, PCMU) and how those silent frames run, sequence and timestamp
continuity, marker bits and the largest gap between packets. Written for issue 12's question
"what does the gateway send while GPT-Live's model is silent?"; `--api realtime` gives the same
figures for Realtime GA to compare with.

Needs sipp, espeak-ng, sox and tshark, and root (SIPp's play_pcap_audio, tshark on lo).

    .venv/bin/python bench/rtp_out_capture.py --api live
    .venv/bin/python bench/rtp_out_capture.py --api realtime --calls 4
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tools.ports import free_port_block  # noqa: E402

PCMU_SILENCE = 0xFF
PT_PCMU = 0


def _sipp_load() -> object:
    spec = importlib.util.spec_from_file_location("bench_sipp_load", ROOT / "bench/sipp_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def describe(packets: list[tuple[float, bytes]]) -> str:
    """One outbound PCMU stream ((capture time, RTP packet) in order) in one line."""
    rtp = [(t, p) for t, p in packets if len(p) >= 12 and p[0] >> 6 == 2]
    if len(rtp) < 2:
        return f"{len(rtp)} packets"
    seqs = [struct.unpack("!H", p[2:4])[0] for _, p in rtp]
    stamps = [struct.unpack("!I", p[4:8])[0] for _, p in rtp]
    silent = [set(p[12:]) <= {PCMU_SILENCE} for _, p in rtp]
    runs: list[int] = []
    run = 0
    for frame_silent in silent:
        if frame_silent:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    if run:
        runs.append(run)
    span = rtp[-1][0] - rtp[0][0]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(rtp)]
    seq_breaks = sum(1 for a, b in itertools.pairwise(seqs) if (b - a) & 0xFFFF != 1)
    steps = Counter((b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps))
    return (
        f"{len(rtp)} packets over {span:.2f} s = {len(rtp) / span:.1f} pps; "
        f"all-0xFF frames {sum(silent)} ({100 * sum(silent) / len(rtp):.0f} %); "
        f"payload sizes {dict(Counter(len(p) - 12 for _, p in rtp))}; "
        f"sequence breaks {seq_breaks}; timestamp steps {dict(steps)}; "
        f"markers {sum(p[1] >> 7 for _, p in rtp)}; "
        f"largest gap {max(gaps) * 1000:.1f} ms; silent runs (frames) {runs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", choices=("realtime", "live"), default="live")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--window", type=float, default=3.0, help="sipp_load's window, s")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (pcap)")
    args = parser.parse_args()
    missing = [b for b in ("sipp", "espeak-ng", "sox", "tshark") if shutil.which(b) is None]
    if missing:
        sys.exit(f"rtp_out_capture: missing {', '.join(missing)}")
    sipp_load: object = _sipp_load()
    ports_needed = sipp_load.ports_needed  # type: ignore[attr-defined]
    base = free_port_block(ports_needed(args.calls))
    # The gateway's RTP range in sipp_load's port block (run_one's layout).
    rtp_low, rtp_high = base + 4, base + 4 + 2 * args.calls + 19
    work = Path(tempfile.mkdtemp(prefix="rtp-out-"))
    pcap = work / "gateway_out.pcap"
    capture = subprocess.Popen(
        ["tshark", "-i", "lo", "-w", str(pcap), "-f", f"udp src portrange {rtp_low}-{rtp_high}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # tshark prints "Capturing on" once it is listening.
        assert capture.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"Capturing on" not in capture.stderr.readline():
            pass
        result = sipp_load.run_one(  # type: ignore[attr-defined]
            args.calls, 20.0, args.window, work, "sipp", port_base=base, api=args.api
        )
    finally:
        time.sleep(0.5)  # the last packets reach the capture file
        capture.terminate()
        capture.wait(timeout=10)
    print(
        f"api={args.api} calls={args.calls} ok={result.ok} failed={result.failed} "
        f"problem={result.problem!r} work={work}"
    )
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.time_epoch", "-e",
         "udp.srcport", "-e", "data.data", "-d", f"udp.port=={rtp_low}-{rtp_high},data"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    streams: dict[str, list[tuple[float, bytes]]] = defaultdict(list)
    for line in fields.splitlines():
        at, port, data = [*line.split("\t"), "", ""][:3]
        if data:
            streams[port].append((float(at), bytes.fromhex(data)))
    for port, packets in sorted(streams.items()):
        if packets and len(packets[0][1]) >= 12 and packets[0][1][1] & 0x7F == PT_PCMU:
            print(f"RTP from gateway port {port}: {describe(packets)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
