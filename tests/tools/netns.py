"""A network namespace joined to the host by a veth pair: a second machine for admission tests.

    with netns_pair() as pair:          # needs root and `ip`; fails under CI=true, else skips
        pair.host_addr, pair.ns_addr    # 10.a.b.1 (host side) / 10.a.b.2 (inside), a /30
        pair.uac(("10.a.b.1", port))    # a raw SIP INVITE sent from inside the namespace

Names carry a random suffix so parallel runs do not collide; the 10.x /30 is chosen among
networks no host interface uses and exists only on this pair. Teardown (namespace and veth) runs
in `finally`, also when the test fails.

`python -m tests.tools.netns uac HOST PORT` is what runs inside the namespace: one INVITE
(tests/tools/rawsip.py), then ACK and BYE if it was answered; prints the statuses as JSON.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_PATH = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"


class NetnsUnavailable(RuntimeError):
    """No root or no `ip`: the caller fails (CI) or skips (locally)."""


def _ip_binary() -> str:
    found = shutil.which("ip", path=_PATH)
    if found is None:
        raise NetnsUnavailable("`ip` (iproute2) is not installed")
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root")
    return found


def _run(args: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    # cwd: `python -m tests.tools.netns` inside the namespace imports from the repository.
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT
    )


def _used_networks(ip: str) -> list[ipaddress.IPv4Network]:
    out = _run([ip, "-4", "-o", "addr", "show"]).stdout
    networks = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            networks.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return networks


@dataclass(frozen=True)
class NetnsPair:
    ip: str
    namespace: str
    host_if: str
    ns_if: str
    host_addr: str
    ns_addr: str

    def exec(self, args: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return _run([self.ip, "netns", "exec", self.namespace, *args], timeout)

    def uac(self, target: tuple[str, int], wait_s: float = 10.0) -> dict[str, object]:
        """One raw INVITE from inside the namespace; {"statuses": [...], "final": N|None}."""
        result = self.exec(
            [sys.executable, "-m", "tests.tools.netns", "uac", target[0], str(target[1]),
             str(wait_s), self.ns_addr],
            timeout=wait_s + 20,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"uac in {self.namespace} failed: {result.stderr[-2000:]}")
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@contextlib.contextmanager
def netns_pair() -> Iterator[NetnsPair]:
    """Create the namespace and veth pair; always remove both."""
    ip = _ip_binary()
    suffix = secrets.token_hex(3)
    used = _used_networks(ip)
    rng = random.Random()
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{rng.randrange(100, 250)}.{rng.randrange(256)}.0/30")
        if not any(net.overlaps(u) for u in used):
            break
    else:
        raise NetnsUnavailable("no free 10.x /30 for the veth pair")
    host_addr, ns_addr = (str(h) for h in net.hosts())
    pair = NetnsPair(ip, f"srgt{suffix}", f"srgh{suffix}", f"srgn{suffix}", host_addr, ns_addr)
    steps = [
        [ip, "netns", "add", pair.namespace],
        [ip, "link", "add", pair.host_if, "type", "veth", "peer", "name", pair.ns_if],
        [ip, "link", "set", pair.ns_if, "netns", pair.namespace],
        [ip, "addr", "add", f"{host_addr}/30", "dev", pair.host_if],
        [ip, "link", "set", pair.host_if, "up"],
        [ip, "netns", "exec", pair.namespace, ip, "addr", "add", f"{ns_addr}/30", "dev",
         pair.ns_if],
        [ip, "netns", "exec", pair.namespace, ip, "link", "set", pair.ns_if, "up"],
        [ip, "netns", "exec", pair.namespace, ip, "link", "set", "lo", "up"],
    ]  # fmt: skip
    try:
        for step in steps:
            result = _run(step)
            if result.returncode != 0:
                raise NetnsUnavailable(f"{' '.join(step)}: {result.stderr.strip()}")
        yield pair
    finally:
        _run([ip, "netns", "del", pair.namespace])
        _run([ip, "link", "del", pair.host_if])  # usually gone with the namespace already


# -- inside the namespace -----------------------------------------------------------------------
def _uac(host: str, port: int, wait_s: float, local_host: str) -> dict[str, object]:
    from tests.tools.rawsip import UdpPeer, invite, new_dialog, request

    peer = UdpPeer(local_host, (host, port))
    dialog = new_dialog()
    statuses: list[int] = []
    final = None
    try:
        peer.send(invite(dialog, peer.local, peer.target))
        for reply in peer.replies(wait_s, until_final=True):
            statuses.append(reply.status)
            if reply.status >= 200:
                final = reply
        if final is not None:
            peer.ack(dialog, final)
            if final.status < 300:
                bye = request(
                    "BYE", dialog, peer.local, peer.target, to_tag=final.to_tag, cseq=2,
                    branch=f"z9hG4bK{secrets.token_hex(6)}",
                )  # fmt: skip
                peer.send(bye)
                done = peer.final(wait_s, method="BYE")
                statuses.append(done.status if done else 0)
    finally:
        peer.close()
    return {"statuses": statuses, "final": final.status if final else None}


def main(argv: list[str]) -> int:
    if len(argv) == 5 and argv[0] == "uac":
        print(json.dumps(_uac(argv[1], int(argv[2]), float(argv[3]), argv[4])))
        return 0
    print("usage: python -m tests.tools.netns uac HOST PORT WAIT_S LOCAL_HOST", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
