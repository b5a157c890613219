"""Who may make the gateway place a Realtime session (and so spend money): inbound INVITE admission.

Sans-I/O: every decision takes the source address and `now` as arguments; the UA asks, then
answers (or stays silent) itself. Nothing here sends, logs or sleeps.

The admission rule (docs: gateway/config.py `SipConfig`):

    trusted(source) = source is local (loopback, the host's own addresses)
                      or in allow_networks
                      or is a registrar of a configured registration (the PBX we registered to)
    no inbound digest:      admitted  <=> trusted(source)
    inbound digest, allow_networks empty:  any source is challenged; admitted <=> digest ok
    inbound digest, allow_networks set:    admitted <=> trusted(source) and digest ok
                                           (others get 403 without a challenge)

"Open" (any source admitted without digest) takes an explicit setting: a /0 network in
allow_networks (0.0.0.0/0 for IPv4, ::/0 for IPv6).

Before any of that, each source has a token bucket for new INVITEs (`invite_rate`, `invite_burst`):
past it the INVITE is dropped without an answer, before a transaction exists. After admission a
source may hold at most `max_calls_per_source` calls. Per-source state lives in an LRU of at most
`max_sources` entries, so a flood from spoofed addresses evicts old entries instead of growing
memory (an evicted source starts again with a full bucket: the bound costs leniency, not safety).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: tuple[IpNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)

# Why a source was admitted (or None): the UA logs it and the refusal line names the keys.
LOCAL = "local"
ALLOWLIST = "allow_networks"
REGISTRAR = "registrar"
OPEN = "open"

# What to do with a new INVITE after the rate limit.
ADMIT = "admit"  # go on (max calls, then the call)
CHALLENGE = "challenge"  # go on, but only with valid digest credentials
REFUSE = "refuse"  # 403

# The configuration keys that would admit a refused source (named in the refusal log line).
ADMITTING_KEYS = (
    "sip.allow_networks",
    "sip.inbound_auth.username",
    "[[registrations]]",
    'sip.allow_networks = ["0.0.0.0/0"] (open to any source)',
)


def parse_address(host: str) -> IpAddress | None:
    """The IP of a transport source ('[::1]', '::ffff:10.0.0.1' -> 10.0.0.1), None if not one."""
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_open_network(network: IpNetwork) -> bool:
    """0.0.0.0/0 or ::/0: the operator opened admission to every source of that family."""
    return network.prefixlen == 0


# -- token bucket -------------------------------------------------------------------------------
@dataclass
class TokenBucket:
    """`rate` tokens per second up to `burst`; `take(now)` spends one if there is one."""

    rate: float
    burst: float
    tokens: float = -1.0  # -1: full at the first `take`
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens = self.burst
        elif now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# -- per-source state ---------------------------------------------------------------------------
@dataclass
class SourceState:
    bucket: TokenBucket
    last_refusal_log: float | None = None
    refusals_unlogged: int = 0


@dataclass(frozen=True)
class AdmissionPolicy:
    """What the operator configured (gateway/config.py SipConfig maps onto this)."""

    allow_networks: tuple[str, ...] = ()
    invite_rate: float = 5.0  # new INVITEs per second per source (token refill)
    invite_burst: int = 10
    max_calls_per_source: int = 20
    max_sources: int = 4096  # LRU bound of per-source state
    refusal_log_interval: float = 60.0  # at most one refusal line per source per interval
    refusal_lines_per_interval: int = 20  # and this many in all (spoofed sources are many)


@dataclass
class AdmissionCounters:
    rate_limited: int = 0  # INVITEs dropped silently by the per-source bucket
    refusal_lines_suppressed: int = 0  # refusal log lines held back by the global budget
    sources_evicted: int = 0  # LRU evictions of per-source state


@dataclass
class Admission:
    """The admission decisions of one UA; `configure()` swaps the policy (SIGHUP)."""

    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    # Always admitted (subject to digest when configured): loopback and the host's addresses.
    local_networks: tuple[IpNetwork, ...] = LOOPBACK_NETWORKS
    registrars: frozenset[IpAddress] = frozenset()
    counters: AdmissionCounters = field(default_factory=AdmissionCounters)

    def __post_init__(self) -> None:
        self._sources: OrderedDict[IpAddress | str, SourceState] = OrderedDict()
        self.configure(self.policy)

    # -- configuration ------------------------------------------------------------------------
    def configure(self, policy: AdmissionPolicy) -> None:
        """Apply a policy; ValueError names a bad network. Existing buckets take the new rate."""
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in policy.allow_networks)
        self.policy = policy
        self._networks = networks
        self._log_budget = TokenBucket(
            policy.refusal_lines_per_interval / policy.refusal_log_interval,
            policy.refusal_lines_per_interval,
        )
        self.open_families = frozenset(n.version for n in networks if is_open_network(n))
        for state in self._sources.values():
            state.bucket.rate = policy.invite_rate
            state.bucket.burst = policy.invite_burst
            state.bucket.tokens = min(state.bucket.tokens, float(policy.invite_burst))
        while len(self._sources) > policy.max_sources:
            self._sources.popitem(last=False)
            self.counters.sources_evicted += 1

    def set_registrars(self, addresses: Iterable[str]) -> None:
        self.registrars = frozenset(a for a in map(parse_address, addresses) if a is not None)

    def set_local_addresses(self, addresses: Iterable[str]) -> None:
        """Loopback plus these host addresses (each as a /32 or /128).

        Trusting them is safe against spoofing because Linux drops a packet arriving from the
        network with one of the host's own (or a loopback) addresses as its source ("martian
        source", net.ipv4.conf.*.accept_local=0 and route_localnet=0, the defaults)."""
        extra = [
            ipaddress.ip_network(a)
            for a in map(parse_address, addresses)
            if a is not None and not a.is_unspecified
        ]
        self.local_networks = LOOPBACK_NETWORKS + tuple(
            n for n in extra if not any(n.subnet_of(loop) for loop in _same(n, LOOPBACK_NETWORKS))
        )

    @property
    def is_open(self) -> bool:
        return bool(self.open_families)

    @property
    def tracked_sources(self) -> int:
        return len(self._sources)

    # -- decisions -----------------------------------------------------------------------------
    def _state(self, key: IpAddress | str, now: float) -> SourceState:
        state = self._sources.get(key)
        if state is None:
            state = SourceState(TokenBucket(self.policy.invite_rate, self.policy.invite_burst))
            self._sources[key] = state
            if len(self._sources) > self.policy.max_sources:
                self._sources.popitem(last=False)
                self.counters.sources_evicted += 1
        else:
            self._sources.move_to_end(key)
        return state

    def take_invite_token(self, host: str, now: float) -> bool:
        """A new INVITE from `host`: False = over its rate, drop it without an answer."""
        key: IpAddress | str = parse_address(host) or host
        if self._state(key, now).bucket.take(now):
            return True
        self.counters.rate_limited += 1
        return False

    def trusted_as(self, host: str) -> str | None:
        """Why `host` is trusted (LOCAL, ALLOWLIST, REGISTRAR, OPEN), None if it is not."""
        addr = parse_address(host)
        if addr is None:
            return None
        if any(addr in n for n in _same(addr, self.local_networks)):
            return LOCAL
        if addr in self.registrars:
            return REGISTRAR
        if addr.version in self.open_families:
            return OPEN
        if any(addr in n for n in _same(addr, self._networks)):
            return ALLOWLIST
        return None

    def decide(self, host: str, digest: bool) -> tuple[str, str | None]:
        """(ADMIT | CHALLENGE | REFUSE, why trusted) for a new INVITE from `host`."""
        trusted = self.trusted_as(host)
        if digest:
            if trusted is not None or not self._networks:
                return CHALLENGE, trusted
            return REFUSE, None
        if trusted is not None:
            return ADMIT, trusted
        return REFUSE, None

    def refusal_to_log(self, host: str, now: float) -> int | None:
        """Note a 403; the number of refusals to report when a log line is due for this source
        (at most one per `refusal_log_interval`), else None."""
        key: IpAddress | str = parse_address(host) or host
        state = self._state(key, now)
        state.refusals_unlogged += 1
        last = state.last_refusal_log
        if last is not None and now - last < self.policy.refusal_log_interval:
            return None
        if not self._log_budget.take(now):
            self.counters.refusal_lines_suppressed += 1
            return None
        state.last_refusal_log = now
        count, state.refusals_unlogged = state.refusals_unlogged, 0
        return count


def _same(addr: IpAddress | IpNetwork, networks: Iterable[IpNetwork]) -> list[IpNetwork]:
    return [n for n in networks if n.version == addr.version]


# -- the host's own addresses ------------------------------------------------------------------
def local_addresses(
    fib_trie: Path = Path("/proc/net/fib_trie"), if_inet6: Path = Path("/proc/net/if_inet6")
) -> list[str]:
    """The host's own interface addresses, from Linux /proc (empty elsewhere or unreadable).

    /proc/net/fib_trie lists an address line (`|-- 192.0.2.2`) before its `/32 host LOCAL` leaf;
    /proc/net/if_inet6 has one IPv6 address per line as 32 hex digits."""
    found: list[str] = []
    try:
        last = ""
        for line in fib_trie.read_text().splitlines():
            text = line.strip()
            if text.startswith("|--"):
                last = text[3:].strip()
            elif text.endswith("host LOCAL") and last:
                found.append(last)
    except OSError:
        pass
    try:
        for line in if_inet6.read_text().splitlines():
            hexaddr = line.split(" ", 1)[0]
            if len(hexaddr) == 32:
                found.append(str(ipaddress.IPv6Address(int(hexaddr, 16))))
    except (OSError, ValueError):
        pass
    return sorted(set(found))
