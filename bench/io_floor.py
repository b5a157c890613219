"""Benchmark: the floor under the gateway's per-call CPU -- the I/O alone, no media logic.

Issue 14 asks for 40 µs of CPU per call per 20 ms and calls it "close to what one Python
process can do with one receive, one send and one WebSocket frame per call per 20 ms". This
measures exactly that process, with nothing else in it: per call, one UDP socket on uvloop
that receives a 172-byte RTP-sized datagram every 20 ms (`datagram_received` doing nothing but
one `transport.write` of a 300-byte pre-built frame on the call's own TCP connection: the
append), and one `sendto` of a 172-byte datagram per call on a shared 20 ms timer (the paced
RTP out). A second process (not measured) is the phones and the voice service: it sends the
datagrams, spread over each 20 ms like SIPp's calls are, reads the TCP streams and drains the
datagrams. The CPU of the measured process over the window, per call per 20 ms, is the floor
that Python code in the gateway's per-packet path adds to.

    .venv/bin/python bench/io_floor.py --calls 100 [--window 15] [--loop uvloop|asyncio]

Loopback only; both processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procstat import cpu_times, proc_cpu_s, steal_pct

HOST = "127.0.0.1"
PERIOD = 0.020
RTP = bytes(172)
FRAME = bytes(300)


class _Call(asyncio.DatagramProtocol):
    def __init__(self, tcp: asyncio.WriteTransport) -> None:
        self.tcp = tcp
        self.udp: asyncio.DatagramTransport | None = None
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.udp = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.received += 1
        self.tcp.write(FRAME)


async def _measured(calls: int, base: int, window: float) -> None:
    """The process under measurement: `calls` UDP sockets on base+2k, TCP to base, RTP out to
    base+2k+1."""
    loop = asyncio.get_running_loop()
    members: list[tuple[_Call, tuple[str, int]]] = []
    for k in range(calls):
        tcp, _ = await loop.create_connection(asyncio.Protocol, HOST, base)
        _, call = await loop.create_datagram_endpoint(
            lambda tcp=tcp: _Call(tcp),  # type: ignore[misc]
            local_addr=(HOST, base + 2 + 2 * k),
        )
        members.append((call, (HOST, base + 3 + 2 * k)))
    epoch = loop.time()
    frame = 0

    def tick() -> None:
        nonlocal frame
        frame += 1
        loop.call_at(epoch + frame * PERIOD, tick)
        for call, addr in members:
            assert call.udp is not None
            call.udp.sendto(RTP, addr)

    loop.call_at(epoch + PERIOD, tick)
    print("ready", flush=True)
    await asyncio.sleep(3)
    got0, sent0 = sum(c.received for c, _ in members), frame * calls
    await asyncio.sleep(window)
    got, sent = sum(c.received for c, _ in members) - got0, frame * calls - sent0
    print(f"{got / calls / window:.1f} {sent / calls / window:.1f}", flush=True)
    await asyncio.sleep(30)


def _peer(calls: int, base: int) -> None:
    """Phones and voice service: a TCP server reading, datagrams out spread over 20 ms, and
    the RTP-out ports drained."""
    import selectors

    server = socket.create_server((HOST, base))
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ, "accept")
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k in range(calls):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, base + 3 + 2 * k))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "udp")
    buf = bytearray(65536)
    start = time.monotonic()
    n = 0  # datagrams sent
    while True:
        # Datagram n goes to call n % calls at start + n x (20 ms / calls).
        due = start + n * PERIOD / calls
        now = time.monotonic()
        if now >= due:
            try:
                out.sendto(RTP, (HOST, base + 2 + 2 * (n % calls)))
            except OSError:
                pass
            n += 1
            continue
        for key, _ in sel.select(timeout=min(due - now, 0.005)):
            sock = key.fileobj
            if key.data == "accept":
                conn, _ = server.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, "tcp")
                continue
            while True:
                try:
                    got = sock.recv_into(buf)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    break
                if key.data == "tcp" and got == 0:
                    sel.unregister(sock)
                    break
                if key.data == "udp":
                    continue
                break


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="+", default=[100])
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--role", choices=("measured", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--base", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "peer":
        _peer(args.calls[0], args.base)
        return
    if args.role == "measured":
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(_measured(args.calls[0], args.base, args.window))
        else:
            asyncio.run(_measured(args.calls[0], args.base, args.window))
        return
    from tests.tools.ports import free_port_block

    print(
        f"loop={args.loop} window={args.window}s cpus={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f} python={sys.version.split()[0]}"
    )
    print(
        "| calls | CPU % | µs CPU per call per 20 ms | datagrams in / out per call per s | steal % |"
    )
    print("|---|---|---|---|---|")
    for calls in args.calls:
        base = free_port_block(2 * calls + 4)
        me = [sys.executable, __file__, "--calls", str(calls), "--base", str(base)]
        peer = subprocess.Popen([*me, "--role", "peer"])
        time.sleep(0.5)
        measured = subprocess.Popen(
            [*me, "--role", "measured", "--loop", args.loop, "--window", str(args.window)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert measured.stdout is not None
            if measured.stdout.readline().strip() != "ready":
                raise RuntimeError("the measured process did not start")
            time.sleep(3)
            c0, m0, t0 = proc_cpu_s(measured.pid), cpu_times(), time.monotonic()
            time.sleep(args.window)
            cpu, wall = proc_cpu_s(measured.pid) - c0, time.monotonic() - t0
            steal = steal_pct(m0, cpu_times())
            pct = 100 * cpu / wall
            rates = measured.stdout.readline().split()
            print(
                f"| {calls} | {pct:.1f} | {pct / 100 / calls / 50 * 1e6:.0f} | "
                f"{' / '.join(rates)} | {steal} |"
            )
        finally:
            for p in (measured, peer):
                p.terminate()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
