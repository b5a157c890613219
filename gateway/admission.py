"""The gateway's side of inbound admission: the [sip] settings -> sip.admission policy, the
registrars' addresses, the admission metrics.

sip/admission.py holds the rule and the per-source state; this module only translates the
settings (sip.* keys, documented on gateway/config/schema.py `SipConfig`, passed down by the
process as values typed by the protocols below) and reads the counters. Which keys SIGHUP may
change is configuration knowledge: gateway/config/reload.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.observe.logs import log_event
from gateway.secret import Secret
from sip.admission import AdmissionPolicy, is_open_network, local_addresses, parse_address
from sip.uri import UriError, parse_uri
from sip.useragent import InboundAuth, UserAgent

log = logging.getLogger("gateway")


class InboundAuthSettings(Protocol):
    """[sip.inbound_auth] (gateway.config InboundAuthConfig)."""

    @property
    def realm(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> Secret: ...
    @property
    def nonce_ttl_s(self) -> float: ...


class AdmissionSettings(Protocol):
    """The admission keys of [sip] (gateway.config SipConfig)."""

    @property
    def allow_networks(self) -> tuple[str, ...]: ...
    @property
    def invite_rate_per_source(self) -> float: ...
    @property
    def invite_burst_per_source(self) -> int: ...
    @property
    def max_calls(self) -> int: ...
    @property
    def max_calls_per_source(self) -> int: ...
    @property
    def max_tracked_sources(self) -> int: ...
    @property
    def inbound_auth(self) -> InboundAuthSettings: ...


class LocalAdmissionSettings(AdmissionSettings, Protocol):
    """[sip] as configure_admission reads it: the admission keys, whether the host itself is
    trusted, and the address the gateway binds."""

    @property
    def admit_local(self) -> bool: ...
    @property
    def host(self) -> str: ...


class RegistrarSettings(Protocol):
    """Where a [[registrations]] entry registers (gateway.config RegistrationConfig)."""

    @property
    def registrar(self) -> str: ...


def admission_policy(sip: AdmissionSettings) -> AdmissionPolicy:
    return AdmissionPolicy(
        allow_networks=tuple(sip.allow_networks),
        invite_rate=sip.invite_rate_per_source,
        invite_burst=sip.invite_burst_per_source,
        max_calls_per_source=sip.max_calls_per_source,
        max_sources=sip.max_tracked_sources,
    )


def inbound_auth(sip: AdmissionSettings) -> InboundAuth | None:
    auth = sip.inbound_auth
    if not auth.username:
        return None
    return InboundAuth(
        auth.realm, auth.username, auth.password.reveal(), nonce_ttl=auth.nonce_ttl_s
    )


def open_networks(sip: AdmissionSettings) -> list[str]:
    """The /0 entries of allow_networks: admission is open to every source of that family."""
    return [n for n in sip.allow_networks if is_open_network(ipaddress.ip_network(n, strict=False))]


def registrar_hosts(reg: RegistrarSettings) -> list[str]:
    """Where a registration's requests go: the registrar URI's host, and its maddr (which
    sip.useragent `resolve` sends to instead) when it has one."""
    try:
        uri = parse_uri(reg.registrar)
    except (UriError, ValueError):
        return []
    hosts = [uri.host_no_brackets]
    maddr = uri.params.get("maddr")
    if maddr:
        hosts.append(maddr.strip("[]"))
    return [h for h in hosts if h]


async def resolve_registrars(registrations: Iterable[RegistrarSettings]) -> list[str]:
    """The addresses of every registration's registrar: INVITEs from them are admitted.
    A name that does not resolve is logged and skipped (its calls get 403 until it does)."""
    loop = asyncio.get_running_loop()
    addresses: set[str] = set()
    for host in (h for reg in registrations for h in registrar_hosts(reg)):
        if parse_address(host) is not None:
            addresses.add(host)
            continue
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning(
                "registrar %s does not resolve (%s): its INVITEs are not admitted",
                host,
                exc,
                extra={"event": "admission.registrar_unresolved", "registrar": host},
            )
            continue
        addresses.update(str(info[4][0]) for info in infos)
    return sorted(addresses)


def apply_to_ua(ua: UserAgent, sip: AdmissionSettings) -> None:
    """Push the admission-related sip.* keys into a running UA (start and SIGHUP)."""
    ua.max_calls = sip.max_calls
    ua.admission.configure(admission_policy(sip))
    ua.configure_inbound_auth(inbound_auth(sip))


class AdmissionCollector:
    """`srg_sip_invites_rejected_total{reason}` and `srg_sip_admission_sources`, read from the
    UA's counters at scrape time (no work per INVITE beyond an integer increment)."""

    REJECTED = "srg_sip_invites_rejected"
    REJECTED_DOC = (
        "Inbound INVITEs refused before a call existed, by reason: rate_limited (dropped "
        "without an answer), not_admitted (403), max_calls / max_calls_per_source (503), "
        "digest_replay (401 for a replayed Authorization)."
    )
    SOURCES = "srg_sip_admission_sources"
    SOURCES_DOC = "Source addresses with per-source admission state (bounded LRU)."

    def __init__(self, ua: Callable[[], UserAgent | None]) -> None:
        self._ua = ua

    def describe(self) -> Iterator[Any]:
        yield CounterMetricFamily(self.REJECTED, self.REJECTED_DOC, labels=["reason"])
        yield GaugeMetricFamily(self.SOURCES, self.SOURCES_DOC)

    def collect(self) -> Iterator[Any]:
        ua = self._ua()
        rejected = CounterMetricFamily(self.REJECTED, self.REJECTED_DOC, labels=["reason"])
        sources = GaugeMetricFamily(self.SOURCES, self.SOURCES_DOC)
        counts = {
            "rate_limited": ua.admission.counters.rate_limited if ua else 0,
            "not_admitted": ua.counters.rejected_allowlist if ua else 0,
            "max_calls": ua.counters.rejected_max_calls if ua else 0,
            "max_calls_per_source": ua.counters.rejected_max_calls_per_source if ua else 0,
            "digest_replay": ua.counters.auth_replays if ua else 0,
        }
        for reason, value in counts.items():
            rejected.add_metric([reason], value)
        sources.add_metric([], ua.admission.tracked_sources if ua else 0)
        yield rejected
        yield sources


async def configure_admission(
    ua: UserAgent, sip: LocalAdmissionSettings, registrations: Sequence[RegistrarSettings]
) -> None:
    """Who may call: the host's own addresses and the registrars (sip/admission.py)."""
    trust_local(ua, sip)
    registrars = await resolve_registrars(registrations)
    ua.admission.set_registrars(registrars)
    opened = open_networks(sip)
    if opened:
        log_event(
            log,
            "admission.open",
            f"sip.allow_networks contains {', '.join(opened)}: any source may call (and "
            "spend Realtime minutes)"
            + ("" if sip.inbound_auth.username else " without credentials"),
            level=logging.WARNING,
            networks=opened,
        )
    log_event(
        log,
        "admission.configured",
        "INVITEs admitted from: the host itself"
        + (f", {', '.join(sip.allow_networks)}" if sip.allow_networks else "")
        + (f", registrars {', '.join(registrars)}" if registrars else "")
        + ("; digest required" if sip.inbound_auth.username else ""),
        allow_networks=list(sip.allow_networks),
        registrars=registrars,
        digest=bool(sip.inbound_auth.username),
        invite_rate_per_source=sip.invite_rate_per_source,
        max_calls_per_source=min(sip.max_calls_per_source, sip.max_calls),
    )


def trust_local(ua: UserAgent, sip: LocalAdmissionSettings) -> None:
    """The host itself is a trusted source unless `sip.admit_local = false`."""
    if sip.admit_local:
        ua.admission.set_local_addresses([*local_addresses(), sip.host])
    else:
        ua.admission.local_networks = ()
