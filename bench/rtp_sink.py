"""The phones' RTP receive side for the load benches: binds the media ports SIPp offers and
drains them.

SIPp's `[auto_media_port]` puts call n's media on `-mp + 4 x (n - 1)` in its SDP but binds only
`-mp` itself (SIPp 3.6.1), so without a receiver every RTP packet the gateway sends lands on a
closed port: on loopback the kernel answers each with an ICMP port unreachable, built and
delivered inside the gateway's own `sendto`, which counted that work against the gateway and
is not what a phone that listens costs it. This process binds the RTP and RTCP port of every
call but the first (SIPp holds it), reads whatever arrives, and counts it, so the benches can
also report what the phones received.

    python bench/rtp_sink.py --host 127.0.0.1 --first 40000 --count 100 --step 4 --stats out.json

It prints `ready <bound sockets>` once bound, runs until SIGTERM/SIGINT, then writes
{"packets": N, "bytes": B, "rtcp_packets": M, "sockets": S} to --stats. Not a benchmark itself.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


class RtpSink:
    """This module as a subprocess (a context manager): `pid` for its CPU, `counts()` once
    stopped."""

    def __init__(self, work: Path, host: str, first: int, count: int, step: int = 4) -> None:
        self.stats_path = work / "rtp_sink.json"
        self._argv = [
            sys.executable, __file__, "--host", host, "--first", str(first),
            "--count", str(count), "--step", str(step), "--stats", str(self.stats_path),
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.sockets = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> RtpSink:
        self.proc = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            self.stop()
            raise RuntimeError(f"rtp_sink did not start (said {line!r})")
        self.sockets = int(line[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def counts(self) -> dict[str, Any]:
        """What the sink received (after stop); empty when it wrote nothing."""
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}


def bind_ports(host: str, first: int, count: int, step: int) -> list[tuple[socket.socket, bool]]:
    """Non-blocking UDP sockets on the RTP (`first + step x k`) and RTCP (+1) port of calls
    k = 1 .. count-1, (socket, is_rtcp); ports already taken are skipped."""
    sockets = []
    for k in range(1, count):
        for offset in (0, 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, first + step * k + offset))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            sockets.append((sock, offset == 1))
    return sockets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--first", type=int, required=True, help="SIPp's -mp")
    parser.add_argument("--count", type=int, required=True, help="calls (ports) to bind")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--stats", required=True)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    sockets = bind_ports(args.host, args.first, args.count, args.step)
    selector = selectors.DefaultSelector()
    for sock, rtcp in sockets:
        selector.register(sock, selectors.EVENT_READ, rtcp)
    counts = {"packets": 0, "bytes": 0, "rtcp_packets": 0, "sockets": len(sockets)}
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"ready {len(sockets)}", flush=True)
    buf = bytearray(2048)
    packets = nbytes = rtcp_packets = 0
    while not stop:
        for key, _ in selector.select(timeout=0.5):
            recv_into = key.fileobj.recv_into  # type: ignore[union-attr]
            while True:
                try:
                    n = recv_into(buf)
                except OSError:  # drained (BlockingIOError) or the socket failed: next one
                    break
                if key.data:
                    rtcp_packets += 1
                else:
                    packets += 1
                    nbytes += n
    counts.update(packets=packets, bytes=nbytes, rtcp_packets=rtcp_packets)
    Path(args.stats).write_text(json.dumps(counts))
    for sock, _ in sockets:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
