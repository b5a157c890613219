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
from dataclasses import dataclass

from sip.address import TransportAddr
from sip.auth import DigestCredentials, choose_challenge
from sip.message import Response

log = logging.getLogger("sip")

Hop = tuple[str, int]  # (IP literal, port)


@dataclass(frozen=True)
class Credentials:
    """Username/password for answering a proxy's 401/407 on requests we send.

    `bound_to`: the next hops ((IP, port), bind_hops) whose challenges these credentials may
    answer, e.g. a trunk's resolved registrar; a challenge to a request sent anywhere else is
    not answered (logged as sip.auth.challenge_refused). None = unbound."""

    username: str
    password: str
    bound_to: tuple[tuple[str, int], ...] | None = None


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


def answer_challenge(
    digest: DigestCredentials, resp: Response, method: str, uri: str, body: bytes
) -> list[tuple[str, str]]:
    """Authorization headers answering a 401/407, or [] when we must give up (22.2, 22.3)."""
    header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
    answer = "Authorization" if resp.status == 401 else "Proxy-Authorization"
    try:
        challenge = choose_challenge(resp.headers.get_all(header))
    except ValueError:
        return []
    if challenge is None:
        return []
    value = digest.authorize(challenge, method, uri, body)
    return [(answer, value)] if value else []


class DigestRetry:
    """The one digest-retry path every client request takes (INVITE, BYE, REFER, in-dialog
    requests, out-of-dialog requests, REGISTER): sans-I/O, the caller sends and feeds back.

        retry = DigestRetry(credentials, dest, "BYE", call_id)
        auth = []
        while True:
            resp = await send(build(auth))
            auth = retry.answer(resp, uri, body)
            if auth is None:
                return resp          # final for the caller: success, failure, or given up

    A challenge is answered only when the credentials may answer it (`may_answer`: bound
    credentials answer only their own hops; the refusal is logged and kept in `refused`), at
    most `max_sends - 1` times, and never when DigestCredentials gives up (wrong password, too
    many stale nonces: its `failure_reason`). A 2xx resets the credentials' rejection state."""

    def __init__(
        self,
        credentials: Credentials | DigestCredentials | None,
        dest: TransportAddr | None,
        method: str,
        call_id: str = "",
        *,
        max_sends: int = 3,
    ) -> None:
        self.digest = _as_digest(credentials)
        self.bound_to = credentials.bound_to if isinstance(credentials, Credentials) else None
        self.dest = dest
        self.method = method
        self.call_id = call_id
        self.sends_left = max_sends
        self.refused = False  # a challenge came from a hop these credentials do not belong to
        self.gave_up = False  # a challenge we could not answer (DigestCredentials.failure_reason)

    def answer(
        self, resp: Response | None, uri: str, body: bytes = b""
    ) -> list[tuple[str, str]] | None:
        """Authorization headers for the next attempt, or None: `resp` is the outcome."""
        self.sends_left -= 1
        digest = self.digest
        if resp is None or resp.status not in (401, 407) or digest is None:
            if resp is not None and digest is not None and resp.status < 300:
                digest.accepted()
            return None
        if self.sends_left <= 0:
            return None
        if self.bound_to is not None and (
            self.dest is None or not may_answer(self.bound_to, self.dest)
        ):
            self.refused = True
            if self.dest is not None:
                log_refused(self.method, resp.status, self.dest, self.call_id)
            return None
        auth = answer_challenge(digest, resp, self.method, uri, body)
        if not auth:
            self.gave_up = True
            return None
        return auth


def _as_digest(credentials: Credentials | DigestCredentials | None) -> DigestCredentials | None:
    if credentials is None or isinstance(credentials, DigestCredentials):
        return credentials
    return DigestCredentials(credentials.username, credentials.password)


__all__ = [
    "Credentials",
    "DigestRetry",
    "Hop",
    "answer_challenge",
    "bind_hops",
    "log_refused",
    "may_answer",
    "normalise_hop",
]
