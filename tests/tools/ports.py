"""Free loopback port blocks, for tests and benchmarks (no pytest needed)."""

from __future__ import annotations

import random
import socket

# Ports are drawn from a high range, in blocks, so tests never collide with a PBX on 5060
# or with each other. Every port in a block is checked free for both UDP and TCP.
_PORT_RANGE = (20000, 60000)
_BLOCK = 40
_handed_out: set[int] = set()


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
    for _ in range(200):
        base = rng.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - size, 2)
        block = range(base, base + size)
        if any(p in _handed_out for p in block):
            continue
        if all(_port_free(p) for p in block):
            _handed_out.update(block)
            return base
    raise RuntimeError("no free port block found on 127.0.0.1")
