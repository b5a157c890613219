"""SRTP and SRTCP (RFC 3711; AEAD suites RFC 7714) for one call's media, over libsrtp through
pylibsrtp (the binding aiortc uses): no cipher code of ours.

`SrtpSession(inbound_key, outbound_key, suite)` holds two libsrtp sessions: one keyed with the
peer's key (from its `a=crypto` line) that unprotects what arrives, one keyed with ours (our
answer's line) that protects what we send. Any SSRC is accepted on each side (libsrtp's
ssrc_any_inbound / ssrc_any_outbound templates), as a peer may change SSRC mid-call.

A packet that fails (replayed, forged or damaged, too short, too long) raises a subclass of
`SrtpError` and is counted in `stats`; the caller drops it and carries on. Nothing here logs:
this runs per packet.
"""

from __future__ import annotations

from dataclasses import dataclass

import pylibsrtp

from sip.sdp_crypto import SUITES, SrtpKey

__all__ = [
    "PROFILES",
    "SrtpAuthError",
    "SrtpError",
    "SrtpPacketError",
    "SrtpReplayError",
    "SrtpSession",
    "SrtpStats",
]

# RFC 4568 / RFC 7714 suite name -> libsrtp profile.
PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
# libsrtp's default is 128 packets; 2.5 s of 20 ms audio is plenty for reordering on the path.
DEFAULT_REPLAY_WINDOW = 128


class SrtpError(Exception):
    """A packet SRTP could not process; drop it (the stream counts it)."""


class SrtpReplayError(SrtpError):
    """The packet's index was seen already or is older than the replay window (RFC 3711 3.3.2)."""


class SrtpAuthError(SrtpError):
    """The authentication tag did not verify: forged, damaged or keyed differently."""


class SrtpPacketError(SrtpError):
    """Anything else: too short to be (S)RTP, too long for the buffer, a libsrtp refusal."""


_REPLAY = frozenset({"replay check failed (bad index)", "replay check failed (index too old)"})
_AUTH = frozenset({"authentication failure", "cipher failure"})


@dataclass(slots=True)
class SrtpStats:
    protected: int = 0
    unprotected: int = 0
    replayed: int = 0
    auth_failed: int = 0
    bad_packets: int = 0


def _policy(key: SrtpKey, suite: str, ssrc_type: int, window: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(key=key.key_salt, ssrc_type=ssrc_type, srtp_profile=PROFILES[suite])
    policy.window_size = window
    return policy


class SrtpSession:
    """One call's SRTP state: protect what we send, unprotect what we receive."""

    __slots__ = ("_rx", "_tx", "stats", "suite")

    def __init__(
        self,
        inbound_key: SrtpKey,
        outbound_key: SrtpKey,
        suite: str,
        *,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        if suite not in PROFILES:
            raise ValueError(f"unknown SRTP suite {suite!r}")
        expected = SUITES[suite].key_salt_len
        for name, key in (("inbound", inbound_key), ("outbound", outbound_key)):
            if not isinstance(key, SrtpKey) or len(key) != expected:
                raise ValueError(f"{name} key for {suite} must be an SrtpKey of {expected} bytes")
        if not 64 <= replay_window <= 0x7FFF:  # libsrtp's bounds
            raise ValueError("replay_window must be 64 to 32767")
        self.suite = suite
        self.stats = SrtpStats()
        self._tx = pylibsrtp.Session(
            _policy(outbound_key, suite, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, replay_window)
        )
        self._rx = pylibsrtp.Session(
            _policy(inbound_key, suite, pylibsrtp.Policy.SSRC_ANY_INBOUND, replay_window)
        )

    def __repr__(self) -> str:
        return f"SrtpSession({self.suite}, {self.stats})"

    def protect_rtp(self, packet: bytes) -> bytes:
        try:
            out = self._tx.protect(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise self._failed(exc) from None
        self.stats.protected += 1
        return out

    def protect_rtcp(self, packet: bytes) -> bytes:
        try:
            out = self._tx.protect_rtcp(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise self._failed(exc) from None
        self.stats.protected += 1
        return out

    def unprotect_rtp(self, packet: bytes) -> bytes:
        try:
            out = self._rx.unprotect(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise self._failed(exc) from None
        self.stats.unprotected += 1
        return out

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        try:
            out = self._rx.unprotect_rtcp(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise self._failed(exc) from None
        self.stats.unprotected += 1
        return out

    def _failed(self, exc: Exception) -> SrtpError:
        reason = str(exc)
        if reason in _REPLAY:
            self.stats.replayed += 1
            return SrtpReplayError(reason)
        if reason in _AUTH:
            self.stats.auth_failed += 1
            return SrtpAuthError(reason)
        self.stats.bad_packets += 1
        return SrtpPacketError(reason)
