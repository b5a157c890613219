"""Packets captured from real peers, stored as text under tests/fixtures/rtp/.

One datagram per line: `<ms since the file's first packet> <src port>><dst port> <hex>`;
lines starting with `#` say where the packets came from (tests/fixtures/rtp/README.md has the
command that captured each file). Text rather than pcap: a reviewer can read a diff of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "rtp"


@dataclass(frozen=True, slots=True)
class CapturedPacket:
    t_ms: float  # capture time, ms after the file's first packet
    src_port: int
    dst_port: int
    data: bytes  # the UDP payload as it was on the wire


def load_captured(name: str) -> list[CapturedPacket]:
    packets: list[CapturedPacket] = []
    for line in (FIXTURE_DIR / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        t_ms, ports, data = line.split()
        src, _, dst = ports.partition(">")
        packets.append(CapturedPacket(float(t_ms), int(src), int(dst), bytes.fromhex(data)))
    return packets


def dump_captured(
    path: Path, comments: Iterable[str], packets: Iterable[tuple[float, int, int, bytes]]
) -> int:
    """Write packets given as (capture time in s, src port, dst port, payload); returns the
    number written."""
    lines = [f"# {c}" if c else "#" for c in comments]
    rows = list(packets)
    first = rows[0][0] if rows else 0.0
    lines += [f"{(t - first) * 1000:.1f} {s}>{d} {data.hex()}" for t, s, d, data in rows]
    path.write_text("\n".join(lines) + "\n")
    return len(rows)
