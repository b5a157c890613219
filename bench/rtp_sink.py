"""The phones' RTP receive side for the load benches: binds the media ports SIPp offers, so
the gateway's RTP lands on open ports, and counts what arrives.

SIPp's `[auto_media_port]` puts call n's media on `-mp + 4 x (n - 1)` in its SDP but binds only
`-mp` itself (SIPp 3.6.1), so without a receiver every RTP packet the gateway sends lands on a
closed port: on loopback the kernel answers each with an ICMP port unreachable, built and
delivered inside the gateway's own `sendto`, which counted that work against the gateway and
is not what a phone that listens costs it. This process binds the RTP and RTCP port of every
call but the first (SIPp holds it) and counts what arrives, so the benches can also report
what the phones received.

Two modes:
- `hold` (the default): the sockets are bound with the smallest receive buffer and never read
  while the bench runs. The kernel queues the first packets and drops the rest at the full
  buffer, counting each drop per socket (the `drops` column of /proc/net/udp); at the end the
  sink adds what is queued. This costs the machine nothing per packet beyond the kernel's
  delivery, and it is what a remote phone costs the gateway: on loopback the sender's own
  `sendto` wakes a reading receiver (`try_to_wake_up`, charged to the gateway), which a phone
  across a network never is. At 300 calls the draining sink took 15-17 % of a core.
- `drain`: reads every packet as it arrives (one `recv_into` per packet, a selector wakeup per
  burst), as the sink did before: a listening process on the same machine.

    python bench/rtp_sink.py --host 127.0.0.1 --first 40000 --count 100 --step 4 --stats out.json

It prints `ready <bound sockets>` once bound, runs until SIGTERM/SIGINT, then writes
{"packets": N, "rtcp_packets": M, "sockets": S, "mode": ...} to --stats (and "bytes" in drain
mode). Not a benchmark itself.
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
import time
from pathlib import Path
from typing import Any

MODES = ("hold", "drain")


class RtpSink:
    """This module as a subprocess (a context manager): `pid` for its CPU, `counts()` once
    stopped."""

    def __init__(
        self, work: Path, host: str, first: int, count: int, step: int = 4, mode: str = "hold"
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"rtp_sink mode must be one of {MODES}, got {mode!r}")
        self.stats_path = work / "rtp_sink.json"
        self._argv = [
            sys.executable, __file__, "--host", host, "--first", str(first),
            "--count", str(count), "--step", str(step), "--stats", str(self.stats_path),
            "--mode", mode,
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


def bind_ports(
    host: str, first: int, count: int, step: int, rcvbuf: int | None = None
) -> list[tuple[socket.socket, bool]]:
    """Non-blocking UDP sockets on the RTP (`first + step x k`) and RTCP (+1) port of calls
    k = 1 .. count-1, (socket, is_rtcp); ports already taken are skipped. `rcvbuf`: SO_RCVBUF
    before binding (the kernel raises a tiny value to its minimum)."""
    sockets = []
    for k in range(1, count):
        for offset in (0, 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if rcvbuf is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.bind((host, first + step * k + offset))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            sockets.append((sock, offset == 1))
    return sockets


def kernel_drops(host: str, ports: set[int], table: str = "/proc/net/udp") -> dict[int, int]:
    """Datagrams the kernel dropped at each of `ports` on `host` (IPv4), from the `drops`
    column of /proc/net/udp (a full receive buffer counts there)."""
    want = socket.inet_aton(host)[::-1].hex().upper()  # the table's address: host byte order
    drops: dict[int, int] = {}
    with open(table) as rows:
        next(rows)  # the header
        for row in rows:
            fields = row.split()
            address, _, port_hex = fields[1].partition(":")
            port = int(port_hex, 16)
            if address == want and port in ports:
                drops[port] = drops.get(port, 0) + int(fields[-1])
    return drops


def drain(sock: socket.socket, buf: bytearray) -> tuple[int, int]:
    """(packets, bytes) read from `sock` until it would block."""
    packets = nbytes = 0
    recv_into = sock.recv_into
    while True:
        try:
            n = recv_into(buf)
        except OSError:  # drained (BlockingIOError) or the socket failed
            return packets, nbytes
        packets += 1
        nbytes += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--first", type=int, required=True, help="SIPp's -mp")
    parser.add_argument("--count", type=int, required=True, help="calls (ports) to bind")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--mode", choices=MODES, default="hold")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    hold = args.mode == "hold"
    sockets = bind_ports(args.host, args.first, args.count, args.step, 1 if hold else None)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"ready {len(sockets)}", flush=True)
    buf = bytearray(2048)
    counts: dict[str, Any] = {"sockets": len(sockets), "mode": args.mode}
    if hold:
        while not stop:
            time.sleep(0.2)  # nothing to do until told to stop: the kernel counts
        rtcp_ports = {s.getsockname()[1] for s, rtcp in sockets if rtcp}
        drops = kernel_drops(args.host, {s.getsockname()[1] for s, _ in sockets})
        packets = sum(n for port, n in drops.items() if port not in rtcp_ports)
        rtcp_packets = sum(n for port, n in drops.items() if port in rtcp_ports)
        for sock, rtcp in sockets:
            queued = drain(sock, buf)[0]
            if rtcp:
                rtcp_packets += queued
            else:
                packets += queued
        counts.update(packets=packets, rtcp_packets=rtcp_packets)
    else:
        selector = selectors.DefaultSelector()
        for sock, rtcp in sockets:
            selector.register(sock, selectors.EVENT_READ, rtcp)
        packets = nbytes = rtcp_packets = 0
        while not stop:
            for key, _ in selector.select(timeout=0.5):
                got, size = drain(key.fileobj, buf)  # type: ignore[arg-type]
                if key.data:
                    rtcp_packets += got
                else:
                    packets += got
                    nbytes += size
        counts.update(packets=packets, bytes=nbytes, rtcp_packets=rtcp_packets)
    Path(args.stats).write_text(json.dumps(counts))
    for sock, _ in sockets:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
