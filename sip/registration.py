"""REGISTER client (RFC 3261 10): digest auth, refresh, backoff, unregister.

`RegistrationCore` is the pure decision logic (time is an argument, no I/O): given REGISTER
outcomes it says when to send the next REGISTER and with which Expires. `RegistrationClient` is
the thin async driver that sends REGISTERs through the UserAgent and sleeps until the core's next
deadline.

Refresh: at max(granted/2, granted - margin) after a success, so a 60 s binding is refreshed at
30 s and a 3600 s one 30 s before expiry. Failures back off exponentially (min_backoff doubling to
max_backoff); a 503's Retry-After is honoured; 423 Interval Too Brief raises Expires to the
registrar's Min-Expires and retries at once. A rejected password is not retried in a loop: the
attempt fails and the next one waits for the backoff.

API:
    client = RegistrationClient(ua, "sip:pbx.example.org:5060", "gateway", "secret",
                                domain="", expires=300, on_state=cb)   # cb(client, state, reason)
    await client.start()          # returns at once; registers in the background
    client.state                  # "registering" | "registered" | "failed" | "unregistered"
    client.registered, client.core.granted, client.core.reason
    await client.stop(timeout=2)  # unregister (Expires: 0); True if the registrar confirmed
The Contact is <sip:username@advertised_host:port> (;transport=tcp or ;transport=tls with the
advertised TLS port when the registrar URI says so; sips:username@host:tls_port for a sips:
registrar), so calls the registrar routes to us carry the username in the Request-URI.

Over TCP/TLS (issue 13) the registration keeps its connection: refreshes reuse it (the transport
keys streams by address) and RFC 5626 CRLF keep-alives run on it (sip/keepalive.py: ping within
80-100% of `keepalive.interval`, default 30 s; no pong within 10 s marks the flow dead, and the
client closes it and registers again at once on a new connection). `keepalive=None` turns that
off. `poke()` makes the driver look at its deadlines again (tests with a fake clock).

Events logged (logging contract): `registration.ok` (aor, expires), `registration.failed`
(aor, reason, retry_in_s), `registration.stopped`, `registration.flow_dead` (aor, after_s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sip.address import TransportAddr
from sip.auth import DigestCredentials
from sip.keepalive import DEAD, PING, KeepAliveCore, KeepAlivePolicy
from sip.message import Response, generate_call_id, generate_tag
from sip.uac_auth import DigestRetry
from sip.uri import UriError, parse_name_addr, parse_uri
from sip.useragent import UserAgent

log = logging.getLogger("sip")

REGISTERING = "registering"
REGISTERED = "registered"
FAILED = "failed"
UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class Backoff:
    min_backoff: float = 2.0
    max_backoff: float = 300.0
    refresh_margin: float = 30.0


@dataclass(frozen=True)
class Outcome:
    """One REGISTER exchange as the core sees it."""

    status: int | None  # None: no final response (Timer F) or a transport error
    granted: int | None = None  # expiry granted for our contact
    retry_after: float | None = None
    min_expires: int | None = None
    reason: str = ""  # why it failed (auth gave up, status text...)


class RegistrationCore:
    """Pure registration state: feed outcomes and `now`, read `state` and `next_at`."""

    def __init__(self, expires: int, policy: Backoff | None = None) -> None:
        if expires <= 0:
            raise ValueError(f"expires: {expires} must be positive")
        self.policy = policy or Backoff()
        self.expires = expires
        self.state = REGISTERING
        self.granted: int | None = None
        self.failures = 0
        self.reason = ""
        self.next_at = 0.0  # when to send the next REGISTER
        self.expires_at: float | None = None  # when the registrar drops our binding

    def start(self, now: float) -> None:
        self.state = REGISTERING
        self.next_at = now

    def refresh_delay(self, granted: int) -> float:
        return max(granted / 2, granted - self.policy.refresh_margin)

    def backoff(self) -> float:
        delay = self.policy.min_backoff * (2 ** max(0, self.failures - 1))
        return min(delay, self.policy.max_backoff)

    def on_outcome(self, outcome: Outcome, now: float) -> None:
        status = outcome.status
        if status is not None and 200 <= status < 300:
            granted = outcome.granted if outcome.granted and outcome.granted > 0 else self.expires
            self.granted = granted
            self.failures = 0
            self.reason = ""
            self.state = REGISTERED
            self.expires_at = now + granted
            self.next_at = now + self.refresh_delay(granted)
            return
        if status == 423 and outcome.min_expires and outcome.min_expires > self.expires:
            # 10.2.8: retry at once with the registrar's minimum.
            self.expires = outcome.min_expires
            self.state = REGISTERING
            self.next_at = now
            return
        self.failures += 1
        self.reason = outcome.reason or (f"status {status}" if status else "timeout")
        self.state = FAILED
        delay = self.backoff()
        if status == 503 and outcome.retry_after is not None:
            delay = max(0.0, float(outcome.retry_after))
        # An existing binding stays valid until it expires: keep trying before that.
        if self.expires_at is not None and self.expires_at > now:
            self.state = REGISTERED if self.expires_at - now > delay else FAILED
        self.next_at = now + delay

    def flow_failed(self, now: float) -> None:
        """The connection our binding lives on died (RFC 5626 4.4.1): register again now, on a
        new one. The binding itself may still be valid, so the state is kept."""
        self.next_at = now


def granted_expiry(resp: Response, contact_uri: str) -> int | None:
    """The expiry granted to our contact (10.2.4): its Contact ;expires, else Expires."""
    try:
        ours = parse_uri(contact_uri)
    except UriError:
        ours = None
    for value in resp.headers.get_all("Contact"):
        try:
            addr = parse_name_addr(value)
        except (UriError, ValueError):
            continue
        uri = addr.uri
        if ours is not None and (uri.user, uri.host_no_brackets.lower(), uri.port or 5060) == (
            ours.user,
            ours.host_no_brackets.lower(),
            ours.port or 5060,
        ):
            expires = addr.params.get("expires")
            if expires and expires.strip().isdigit():
                return int(expires)
    header = resp.headers.get("Expires")
    if header and header.strip().isdigit():
        return int(header.strip())
    return None


StateCallback = Callable[["RegistrationClient", str, str], Any]


class RegistrationClient:
    """Keeps one AOR registered through `ua`; `await start()`, `await stop()` (unregisters)."""

    def __init__(
        self,
        ua: UserAgent,
        registrar_uri: str,
        username: str,
        password: str,
        domain: str = "",
        expires: int = 300,
        contact: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        auth_username: str | None = None,
        policy: Backoff | None = None,
        request_timeout: float | None = None,
        on_state: StateCallback | None = None,
        keepalive: KeepAlivePolicy | None = KeepAlivePolicy(),  # noqa: B008 - frozen
        keepalive_random: Callable[[], float] | None = None,
    ) -> None:
        self.ua = ua
        self.registrar = parse_uri(registrar_uri)  # UriError names a bad registrar URI
        self.registrar_uri = registrar_uri
        self.username = username
        self.domain = domain or self.registrar.host
        self.aor = f"sip:{username}@{self.domain}"
        self._contact = contact
        self.clock = clock
        self.core = RegistrationCore(expires, policy)
        self.digest = DigestCredentials(auth_username or username, password)
        self.call_id = generate_call_id(ua.advertised_host or "gateway")
        self.from_tag = generate_tag()
        self.cseq = 0
        self.request_timeout = request_timeout
        self.on_state = on_state
        self._task: asyncio.Task[None] | None = None
        self._last_reported: tuple[str, str] | None = None
        self._callback_tasks: set[asyncio.Future[Any]] = set()
        # RFC 5626 keep-alives on a TCP/TLS flow (None: off).
        self.keepalive = (
            KeepAliveCore(keepalive, *([keepalive_random] if keepalive_random else []))
            if keepalive is not None
            else None
        )
        self.flow: TransportAddr | None = None  # where the last REGISTER went
        self._ping_conn: Any = None  # the stream our pending ping went on
        self._ping_pongs = 0  # its pong count when we pinged
        self._wake = asyncio.Event()

    @property
    def state(self) -> str:
        return self.core.state

    @property
    def registered(self) -> bool:
        return self.core.state == REGISTERED

    @property
    def contact_uri(self) -> str:
        if self._contact:
            try:
                return str(parse_name_addr(self._contact).uri)
            except (UriError, ValueError):
                return self._contact
        sips = self.registrar.scheme == "sips"
        proto = "tls" if sips else (self.registrar.transport or "udp").lower()
        suffix = f";transport={proto}" if proto in ("tcp", "tls") and not sips else ""
        host = self.ua.advertised_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        scheme = "sips" if sips else "sip"
        return f"{scheme}:{self.username}@{host}:{self.ua.port_for(proto)}{suffix}"

    async def start(self) -> None:
        """Begin registering in the background (returns at once)."""
        if self._task is None:
            self.core.start(self.clock())
            self._task = asyncio.get_running_loop().create_task(self._run())

    def poke(self) -> None:
        """Look at the deadlines again now (the clock moved: fake-clock tests)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            now = self.clock()
            self._keepalive_step(now)
            if self.core.next_at > now:
                wake = self.core.next_at
                ka = self.keepalive.next_deadline if self.keepalive is not None else None
                if ka is not None:
                    wake = min(wake, ka)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, wake - now))
                continue
            try:
                outcome = await self.register_once(self.core.expires)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end registration for good: back off
                log.exception("REGISTER failed", extra={"event": "sip.registration_error"})
                outcome = Outcome(None, reason=f"internal error: {exc}")
            now = self.clock()
            self.core.on_outcome(outcome, now)
            self._flow_after(outcome, now)
            self._report()

    def _flow_after(self, outcome: Outcome, now: float) -> None:
        """Keep-alives run while we are registered over a stream (TCP/TLS)."""
        ka = self.keepalive
        if ka is None:
            return
        ok = outcome.status is not None and 200 <= outcome.status < 300
        if ok and self.flow is not None and self.flow.reliable:
            if not ka.running:
                ka.start(now)
        else:
            ka.stop()

    def _keepalive_step(self, now: float) -> None:
        ka = self.keepalive
        if ka is None or not ka.running or self.flow is None:
            return
        conn = self._ping_conn
        if ka.ping_sent_at is not None and conn is not None and conn.pongs > self._ping_pongs:
            ka.pong(now)
        action = ka.due(now)
        if action == PING:
            ping = getattr(self.ua.transport, "ping", None)
            conn = ping(self.flow) if ping is not None else None
            if conn is not None:
                self._ping_conn, self._ping_pongs = conn, conn.pongs
                ka.pinged(now)
                return
            action = DEAD  # the stream is gone already: same remedy
        if action == DEAD:
            after = now - ka.ping_sent_at if ka.ping_sent_at is not None else 0.0
            ka.flow_dead()
            self._ping_conn = None
            close = getattr(self.ua.transport, "close_stream", None)
            if close is not None:
                close(self.flow)
            log.warning(
                "registration flow of %s to %s:%s is dead (no keep-alive pong); registering again",
                self.aor,
                self.flow.host,
                self.flow.port,
                extra={"event": "registration.flow_dead", "aor": self.aor, "after_s": after},
            )
            self.core.flow_failed(now)

    def _report(self) -> None:
        core = self.core
        # A failed refresh while the old binding is still valid keeps state "registered" (the
        # registrar still routes to us) but is logged as a failure.
        failed = core.failures > 0
        key = (core.state, core.reason if failed else "")
        if key == self._last_reported and not failed:
            return  # refreshes are not news
        self._last_reported = key
        if not failed and core.state == REGISTERED:
            log.info(
                "registered %s (expires %s s)",
                self.aor,
                core.granted,
                extra={"event": "registration.ok", "aor": self.aor, "expires": core.granted},
            )
        elif failed:
            log.warning(
                "registration of %s failed: %s",
                self.aor,
                core.reason,
                extra={
                    "event": "registration.failed",
                    "aor": self.aor,
                    "reason": core.reason,
                    "retry_in_s": round(max(0.0, core.next_at - self.clock()), 1),
                },
            )
        state = FAILED if failed else core.state
        if self.on_state is not None:
            try:
                result = self.on_state(self, state, core.reason)
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    self._callback_tasks.add(task)
                    task.add_done_callback(self._callback_tasks.discard)
            except Exception:
                log.exception("on_state callback failed", extra={"event": "sip.callback_error"})

    async def register_once(self, expires: int) -> Outcome:
        """One REGISTER, answering up to a few digest challenges (401/407, stale nonces)."""
        auth: list[tuple[str, str]] = []
        resp: Response | None = None
        # The registrar is the hop these credentials exist for: they are not bound to it.
        retry = DigestRetry(self.digest, None, "REGISTER", self.call_id, max_sends=4)
        while True:  # digest answers: DigestRetry bounds them (sip/uac_auth.py)
            self.cseq += 1
            headers = [
                ("From", f"<{self.aor}>;tag={self.from_tag}"),
                ("To", f"<{self.aor}>"),
                ("Call-ID", self.call_id),
                ("CSeq", f"{self.cseq} REGISTER"),
                ("Contact", f"<{self.contact_uri}>;expires={expires}"),
                ("Expires", str(expires)),
                *auth,
            ]
            try:
                # Resolved here (not inside request) so the keep-alives know the flow.
                self.flow = await self.ua.resolve(self.registrar)
                resp = await self.ua.request(
                    "REGISTER",
                    self.registrar_uri,
                    dest=self.flow,
                    headers=headers,
                    timeout=self.request_timeout,
                )
            except OSError as exc:  # unresolvable registrar host, sips: over UDP and the like
                return Outcome(None, reason=f"cannot reach registrar: {exc}")
            if resp is None:
                return Outcome(None, reason=self._no_response_reason())
            answer = retry.answer(resp, self.registrar_uri, b"")
            if answer is None:
                if retry.gave_up:
                    reason = self.digest.failure_reason or "no usable digest challenge"
                    return Outcome(resp.status, reason=f"authentication failed: {reason}")
                break
            auth = answer
        assert resp is not None
        if 200 <= resp.status < 300:  # DigestRetry has reset the digest's rejection state
            return Outcome(resp.status, granted=granted_expiry(resp, self.contact_uri))
        retry_after = _int_header(resp, "Retry-After")
        min_expires = _int_header(resp, "Min-Expires")
        return Outcome(
            resp.status,
            retry_after=retry_after,
            min_expires=min_expires,
            reason=f"{resp.status} {resp.reason}".strip(),
        )

    def _no_response_reason(self) -> str:
        """Why the REGISTER got no response: the connection's failure when the transport
        reported one (a TLS registrar whose certificate does not verify), else a timeout."""
        flow = self.flow
        failures = getattr(self.ua, "send_failures", None)
        if isinstance(flow, TransportAddr) and failures:
            why = failures.pop((flow.proto, flow.host.strip("[]"), flow.port), None)
            if why:
                return f"cannot reach registrar over {flow.proto.upper()}: {why}"
        return "no response from registrar (timeout)"

    async def stop(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
        """Stop refreshing and remove our binding (Expires: 0). Returns True if the registrar
        confirmed the removal."""
        task, self._task = self._task, None
        if self.keepalive is not None:
            self.keepalive.stop()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.core.granted is None:
            self.core.state = UNREGISTERED
            return False
        try:
            async with asyncio.timeout(timeout):
                outcome = await self.register_once(0)
        except TimeoutError:
            outcome = Outcome(None, reason="timeout")
        ok = outcome.status is not None and 200 <= outcome.status < 300
        self.core.state = UNREGISTERED
        self.core.granted = None
        log.info(
            "unregistered %s",
            self.aor,
            extra={"event": "registration.stopped", "aor": self.aor, "confirmed": ok},
        )
        if self.on_state is not None:
            try:
                self.on_state(self, UNREGISTERED, "" if ok else outcome.reason)
            except Exception:
                log.exception("on_state callback failed", extra={"event": "sip.callback_error"})
        return ok


def _int_header(resp: Response, name: str) -> int | None:
    value = (resp.headers.get(name) or "").split(";")[0].split("(")[0].strip()
    return int(value) if value.isdigit() else None
