"""Which digest challenges our client requests may answer (RFC 3261 22.2, 22.3; issue 9).

A 401/407 is answered with a password only when the request went to a next hop the
credentials are bound to: a trunk's credentials belong to its registrar or outbound proxy.
Without this, anybody whom the gateway is made to call (an originated call to a URI an API
client chose, a REFER target, the far end of a dialog) could challenge it and collect a digest
response for the trunk's password, crackable offline and replayable against the registrar.

The check is on the transaction's next hop (the resolved address the request was sent to): a
response only matches a client transaction through its random branch (17.1.3), so a challenge
for it comes from that hop or from a proxy behind it that the hop forwarded the request to.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from sip.transport import TransportAddr

log = logging.getLogger("sip")

Hop = tuple[str, int]  # (IP literal, port)


def normalise_hop(host: str, port: int) -> Hop:
    """(IP in canonical text, port): "[::1]" and "0:0::1" compare equal to "::1"."""
    host = host.strip().strip("[]")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = host.lower()
    return host, int(port)


def bind_hops(hops: Iterable[tuple[str, int]]) -> tuple[Hop, ...]:
    return tuple(normalise_hop(host, port) for host, port in hops)


def may_answer(bound_to: tuple[Hop, ...] | None, dest: TransportAddr) -> bool:
    """True when credentials bound to `bound_to` may answer a challenge to a request sent to
    `dest`. None = not bound (a library caller that answers every challenge, e.g. a softphone
    dialling one peer it chose itself)."""
    if bound_to is None:
        return True
    return normalise_hop(dest.host, dest.port) in bound_to


def log_refused(method: str, status: int, dest: TransportAddr, call_id: str) -> None:
    log.warning(
        "%s challenge (%d) from %s:%d not answered: the credentials belong to other hosts",
        method,
        status,
        dest.host,
        dest.port,
        extra={
            "event": "sip.auth.challenge_refused",
            "method": method,
            "status": status,
            "host": dest.host,
            "port": dest.port,
            "call_id": call_id,
        },
    )


__all__ = ["Hop", "bind_hops", "log_refused", "may_answer", "normalise_hop"]
