"""Call routing: which `[[routes]]` entry an inbound INVITE takes, and what that route means.

A route is matched on what the INVITE says about where it is going (request-URI user, the To
user, a header such as `X-Route` set by the PBX dialplan) and where it comes from (the source
address, or the registrar of one of our registrations). The first route whose conditions all hold
wins; a route with an empty `match` catches everything; when nothing matches the call takes the
global settings under the name `default`.

Routes are resolved once (`RouteTable.load`) into plain `Route` values: the per-route
`GatewayConfig` (global [realtime]/[calls] with the route's overrides, only its tools), the
instructions text (inline, or the file read now) and the recording choice. SIGHUP builds a new
table the same way and swaps it in only when it loads without error, so a typo in a reloaded file
never leaves the gateway without routes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.call_settings import instructions_for
from gateway.config import (
    ConfigError,
    GatewayConfig,
    RouteConfig,
    registration_name,
    route_config,
)
from sip.uri import UriError, parse_name_addr, parse_uri

DEFAULT_ROUTE = "default"


@dataclass(frozen=True)
class CallFacts:
    """What routing looks at, taken from the INVITE (kept apart so matching is pure)."""

    request_user: str
    to_user: str
    headers: Mapping[str, str]  # lower-case header name -> first value
    source_host: str


@dataclass(frozen=True)
class Route:
    name: str
    config: GatewayConfig  # global config with this route's overrides applied
    instructions: str
    recording: bool


class _Matcher:
    """One route's conditions, compiled once."""

    def __init__(self, route: RouteConfig, registrar_hosts: Mapping[str, str]) -> None:
        m = route.match
        self.request_user = m.request_user
        self.request_re = re.compile(m.request_user_regex) if m.request_user_regex else None
        self.to_user = m.to_user
        self.to_re = re.compile(m.to_user_regex) if m.to_user_regex else None
        self.header = m.header.lower()
        self.header_value = m.header_value
        self.header_re = re.compile(m.header_regex) if m.header_regex else None
        self.network = (
            ipaddress.ip_network(m.source_network, strict=False) if m.source_network else None
        )
        self.registrar_host = registrar_hosts.get(m.registration, "") if m.registration else None

    def matches(self, facts: CallFacts) -> bool:
        if self.request_user and facts.request_user != self.request_user:
            return False
        if self.request_re is not None and not self.request_re.fullmatch(facts.request_user):
            return False
        if self.to_user and facts.to_user != self.to_user:
            return False
        if self.to_re is not None and not self.to_re.fullmatch(facts.to_user):
            return False
        if self.header:
            value = facts.headers.get(self.header)
            if value is None:
                return False
            if self.header_value and value.strip() != self.header_value:
                return False
            if self.header_re is not None and not self.header_re.fullmatch(value.strip()):
                return False
        if self.network is not None and not _in_network(facts.source_host, self.network):
            return False
        if self.registrar_host is not None:
            # A call "from a registration" is one its registrar sends us: the PBX/trunk we
            # registered with relays calls for our AOR from its own address.
            if _host_key(facts.source_host) != _host_key(self.registrar_host):
                return False
        return True


class RouteTable:
    """Routes in order plus the default; `select(facts)` is the first match."""

    def __init__(self, routes: list[tuple[_Matcher, Route]], default: Route) -> None:
        self._routes = routes
        self.default = default

    @property
    def names(self) -> list[str]:
        return [route.name for _, route in self._routes]

    def route(self, name: str) -> Route | None:
        if name == DEFAULT_ROUTE:
            return self.default
        return next((route for _, route in self._routes if route.name == name), None)

    def select(self, facts: CallFacts) -> Route:
        for matcher, route in self._routes:
            if matcher.matches(facts):
                return route
        return self.default

    @classmethod
    def load(cls, config: GatewayConfig) -> RouteTable:
        """Resolve every route (overrides, tools, instructions files); ConfigError names the key."""
        registrar_hosts = {
            registration_name(reg): _registrar_host(reg.registrar) for reg in config.registrations
        }
        global_recording = config.records.recording
        default = Route(DEFAULT_ROUTE, config, instructions_for(config), global_recording)
        routes: list[tuple[_Matcher, Route]] = []
        for i, route in enumerate(config.routes):
            cfg = route_config(config, i)
            try:
                instructions = instructions_for(cfg)
            except ConfigError as exc:
                raise ConfigError(f"routes[{i}].{exc}") from None
            recording = {"on": True, "off": False}.get(route.recording, global_recording)
            routes.append(
                (_Matcher(route, registrar_hosts), Route(route.name, cfg, instructions, recording))
            )
        return cls(routes, default)


def facts_from_invite(
    request_uri: str, to_header: str, headers: Iterable[tuple[str, str]], source_host: str
) -> CallFacts:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    return CallFacts(
        request_user=_uri_user(request_uri),
        to_user=_name_addr_user(to_header),
        headers=first,
        source_host=source_host,
    )


def _uri_user(uri: str) -> str:
    try:
        return parse_uri(uri).user or ""
    except (UriError, ValueError):
        return ""


def _name_addr_user(value: str) -> str:
    try:
        return parse_name_addr(value).uri.user or ""
    except (UriError, ValueError):
        return ""


def _registrar_host(registrar: str) -> str:
    try:
        return parse_uri(registrar).host
    except (UriError, ValueError):
        return ""


def _host_key(host: str) -> str:
    return host.strip("[]").lower()


def _in_network(host: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) in network
    except ValueError:
        return False
