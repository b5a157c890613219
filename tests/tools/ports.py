"""Free loopback port blocks, for tests and benchmarks (no pytest needed), and how the
real-peer tests lay their parties out inside one block."""

from __future__ import annotations

import os
import random
import socket
from dataclasses import dataclass

# Ports are drawn from a high range, in blocks, so tests never collide with a PBX on 5060
# or with each other. Every port in a block is checked free for both UDP and TCP. The range
# leaves out the kernel's ephemeral ports (ip_local_port_range, 32768-60999 by default): a
# socket bound to port 0 or a connect() anywhere on the machine (thousands of them while the
# parallel pass runs beside the serial one) could otherwise take a port of a block between
# its check and the gateway's bind, and the test would fail to start its gateway.
_SPAN = (20000, 65536)
_DEFAULT_EPHEMERAL = (32768, 60999)
_BLOCK = 40
_handed_out: set[int] = set()


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's ephemeral port range, both ends included (Linux; the default elsewhere)."""
    try:
        with open(path) as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL
    return low, high


def quiet_ranges(ephemeral: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """The parts of _SPAN (LOW-HIGH, HIGH excluded) that the kernel never hands out as
    ephemeral ports, largest first; those too small for four blocks are left out."""
    low, high = _SPAN
    e_low, e_high = ephemeral or ephemeral_range()
    parts = [(low, min(high, e_low)), (max(low, e_high + 1), high)]
    parts = [(a, b) for a, b in parts if b - a >= 4 * _BLOCK]
    return sorted(parts, key=lambda part: part[1] - part[0], reverse=True)


def default_range() -> tuple[int, int]:
    """The largest quiet range; the whole span when the ephemeral range covers it all."""
    quiet = quiet_ranges()
    return quiet[0] if quiet else _SPAN


_PORT_RANGE = default_range()


# Two pytest runs at once (`make test`'s passes overlapped, tests/tools/two_passes.py) are given
# disjoint ranges in this variable, "LOW-HIGH"; pytest-xdist's workers then split their run's.
PORT_RANGE_ENV = "SRG_TEST_PORT_RANGE"


def _run_range() -> tuple[int, int]:
    value = os.environ.get(PORT_RANGE_ENV, "")
    if not value:
        return _PORT_RANGE
    low_text, _, high_text = value.partition("-")
    if low_text.isdigit() and high_text.isdigit():
        low, high = int(low_text), int(high_text)
        if 1024 <= low < high <= 65536 and high - low >= 4 * _BLOCK:
            return low, high
    raise ValueError(
        f"{PORT_RANGE_ENV}={value!r}: want LOW-HIGH (HIGH excluded) within 1024-65536, 160+ ports"
    )


def _worker_range() -> tuple[int, int]:
    """This process's share of the run's range (_PORT_RANGE, or SRG_TEST_PORT_RANGE). Under
    pytest-xdist each worker (PYTEST_XDIST_WORKER gwN of PYTEST_XDIST_WORKER_COUNT) draws from
    its own slice, so two workers never hand out the same block (a block checked free by one
    could be bound a moment later by the other's gateway). The variables reach the gateway and
    bench subprocesses a test starts, so they stay in their test's slice too."""
    low, high = _run_range()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count <= 1:
        return low, high
    share = (high - low) // count
    index = int(worker[2:]) % count
    return low + index * share, low + (index + 1) * share


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port_block(size: int = _BLOCK) -> int:
    """Return the first port of `size` consecutive ports free on 127.0.0.1 (UDP and TCP)."""
    rng = random.Random()
    low, high = _worker_range()
    for _ in range(200):
        base = rng.randrange(low + (low & 1), high - size, 2)  # even: RTP bases (RFC 3550 11)
        block = range(base, base + size)
        if any(p in _handed_out for p in block):
            continue
        if all(_port_free(p) for p in block):
            _handed_out.update(block)
            return base
    raise RuntimeError(f"no free block of {size} ports found on 127.0.0.1 in {low}-{high}")


def release_port_block(base: int, size: int = _BLOCK) -> None:
    """The test that drew this block has ended (its processes stopped): it may be drawn again
    (it is checked free again then)."""
    _handed_out.difference_update(range(base, base + size))


@dataclass(frozen=True)
class InteropPorts:
    """Where each party listens inside one 40-port block (even RTP bases, RFC 3550 11)."""

    base: int

    @property
    def gateway_sip(self) -> int:
        return self.base

    @property
    def gateway_rtp(self) -> tuple[int, int]:
        return self.base + 2, self.base + 13

    @property
    def sipp_sip(self) -> int:
        return self.base + 14

    @property
    def sipp_media(self) -> int:
        return self.base + 16  # SIPp also uses +2 for its echo of video; keep 16-19 free

    @property
    def kamailio_sip(self) -> int:
        return self.base + 20

    @property
    def baresip_sip(self) -> int:
        return self.base + 22

    @property
    def baresip_rtp(self) -> tuple[int, int]:
        return self.base + 24, self.base + 29

    @property
    def baresip_ctrl(self) -> int:
        return self.base + 30

    @property
    def baresip_cons(self) -> int:
        return self.base + 31

    @property
    def gateway_tls(self) -> int:
        return self.base + 32  # the gateway's SIP over TLS listener (TCP)

    @property
    def kamailio_tls(self) -> int:
        return self.base + 34  # Kamailio's TLS listener (TCP)

    @property
    def all(self) -> tuple[int, int]:
        return self.base, self.base + 39


def udp_port_bound(port: int, host: str = "127.0.0.1") -> bool:
    """Whether some process has a UDP socket bound to `host`:`port` (or the wildcard address).

    Read from /proc/net/udp (Linux), not by trying to bind: a probe bind could take the port
    at the very moment the peer binds it."""
    wanted = {f"{_proc_ipv4(host)}:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/udp") as table:
            next(table)  # header
            return any(line.split()[1] in wanted for line in table)
    except OSError:
        return False


def _proc_ipv4(host: str) -> str:
    # /proc/net/udp prints the address as the in-memory 32-bit word: little-endian hex.
    return socket.inet_aton(host)[::-1].hex().upper()
