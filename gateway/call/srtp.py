"""A call's SRTP (issue 13): which policy applies to it, the SDES terms its SDP offer/answer
is made under, and the SrtpSession its media leg gets from the negotiated keys.

The policy is `media.srtp` unless the call's route (`[[routes]] srtp`) or, for a call from or
through a registration's trunk, that registration (`[[registrations]] srtp`) says otherwise;
the route wins over the registration. SDES keys travel in the SDP, so they are offered or
accepted only when the call's signalling is TLS, unless `sip.tls.allow_sdes_over_plain`
(RFC 4568 8.3). gateway/call_settings.py fills `SrtpSettings` from the configuration; this
module reads no configuration. Keys are never logged: `SrtpKey` hides them (sip/sdp_crypto.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.media.srtp import SrtpSession
from sip.sdp_crypto import DEFAULT_SUITES, CryptoAttribute, CryptoChoice, SdesTerms, SrtpPolicy
from sip.sdp_crypto import offer_crypto as _offer_crypto


@dataclass(frozen=True)
class SrtpSettings:
    """The SRTP configuration calls are placed and answered under (plain values)."""

    policy: SrtpPolicy = SrtpPolicy.OFF  # media.srtp
    suites: tuple[str, ...] = DEFAULT_SUITES  # media.srtp_suites, our preference order
    allow_sdes_over_plain: bool = False  # sip.tls.allow_sdes_over_plain
    by_route: Mapping[str, SrtpPolicy] = field(default_factory=dict)  # route name -> policy
    # registration name -> policy, and registrar host -> registration name (an inbound call
    # "from a registration" comes from its registrar's host, as in gateway/routes.py)
    by_registration: Mapping[str, SrtpPolicy] = field(default_factory=dict)
    registrar_hosts: Mapping[str, str] = field(default_factory=dict)
    agent_host: str = ""  # our host, the agent of a Warning header

    def warning(self, reason: str) -> str:
        return srtp_warning(self.agent_host, reason)

    def policy_for(
        self, route: str, source_host: str | None = None, registration: str | None = None
    ) -> SrtpPolicy:
        """The call's policy: its route's, else its registration's (named, or the one whose
        registrar sent the INVITE), else `media.srtp`."""
        if route in self.by_route:
            return self.by_route[route]
        if registration is None and source_host:
            registration = self.registrar_hosts.get(source_host.strip("[]").lower())
        if registration is not None and registration in self.by_registration:
            return self.by_registration[registration]
        return self.policy

    def terms(
        self, policy: SrtpPolicy, signalling_secure: bool, current: CryptoChoice | None = None
    ) -> SdesTerms:
        return SdesTerms(
            policy,
            signalling_secure,
            self.allow_sdes_over_plain,
            self.suites,
            current,
        )


NO_SRTP = SrtpSettings()  # plain RTP only (what a CallServices built without SRTP gets)


def offer_crypto(terms: SdesTerms) -> list[CryptoAttribute]:
    """The `a=crypto` lines of an offer of ours (outbound call, late offer): SRTP is offered
    (`RTP/SAVP`) only when the policy requires it and SDES may travel in this dialog; under
    `optional` we offer plain RTP (an SRTP offer to a peer without SRTP would fail the call;
    without RFC 5939 capability negotiation there is no offering both)."""
    if terms.policy is SrtpPolicy.REQUIRED and terms.sdes_allowed:
        return _offer_crypto(terms.preference)
    return []


def offer_refusal(terms: SdesTerms) -> str | None:
    """Why we cannot make an offer at all under `terms`: SRTP required where SDES keys may not
    travel (plain signalling without allow_sdes_over_plain). None when we can."""
    if terms.policy is SrtpPolicy.REQUIRED and not terms.sdes_allowed:
        return (
            "SRTP required but the signalling is not TLS (SDES keys over plain signalling "
            "are not allowed: sip.tls.allow_sdes_over_plain)"
        )
    return None


class CallSrtp:
    """One call's SRTP: its policy, whether its signalling is TLS, the keys in use (`crypto`)
    and the lines of our own offer (`offered`: late offer, outbound call)."""

    def __init__(self, settings: SrtpSettings, policy: SrtpPolicy, secure: bool) -> None:
        self.settings = settings
        self.policy = policy
        self.signalling_secure = secure
        self.crypto: CryptoChoice | None = None
        self.offered: list[CryptoAttribute] = []

    def terms(self) -> SdesTerms:
        """The SDES terms of this call's offers and answers: once SRTP is up, a re-offer must
        keep it (no downgrade to plain RTP mid-call)."""
        policy = SrtpPolicy.REQUIRED if self.crypto is not None else self.policy
        return self.settings.terms(policy, self.signalling_secure, self.crypto)

    def offer_lines(self) -> list[CryptoAttribute]:
        """The a=crypto lines of a new offer of ours (none: a plain RTP/AVP offer)."""
        self.offered = offer_crypto(self.terms())
        return self.offered

    def key(self, stream: Any, crypto: CryptoChoice | None) -> None:
        """Negotiated keys into the call's RtpStream (see key_stream)."""
        key_stream(stream, self.crypto, crypto)
        self.crypto = crypto


def srtp_session(keys: CryptoChoice | None) -> SrtpSession | None:
    """The media leg's SRTP contexts for negotiated keys: the peer's key unprotects what
    arrives, ours protects what we send (RFC 4568 7.1.2: one key per direction)."""
    if keys is None:
        return None
    return SrtpSession(keys.remote.key, keys.local.key, keys.remote.suite)


def key_stream(stream: Any, current: CryptoChoice | None, new: CryptoChoice | None) -> None:
    """Key an RtpStream (gateway/media/stream.py) for newly negotiated keys; the same keys
    keep its contexts (rollover counter, replay window) across a re-offer."""
    if new != current or (new is None) != (stream.srtp is None):
        stream.srtp = srtp_session(new)


def srtp_warning(agent_host: str, reason: str) -> str:
    """`Warning: 399 <agent> "<reason>"` (RFC 3261 20.43, miscellaneous) for the 488 of an
    offer refused for SRTP reasons: the caller's logs then say which (policy, crypto line,
    plain signalling)."""
    agent = (
        f"[{agent_host}]" if ":" in agent_host and not agent_host.startswith("[") else agent_host
    )
    text = reason.replace("\\", "").replace('"', "'")[:200]
    return f'399 {agent} "{text}"'


__all__ = [
    "NO_SRTP",
    "CallSrtp",
    "SrtpSettings",
    "key_stream",
    "offer_crypto",
    "offer_refusal",
    "srtp_session",
    "srtp_warning",
]
