"""SDES keying for SRTP: RFC 4568 `a=crypto` lines, parsed, written and answered, and the
decision an SDP offer's transport and crypto lines lead to under our SRTP policy.

    a=crypto:<tag> <crypto-suite> <key-params> [<session-param>] ...
    key-params = "inline:" base64(master key || master salt) ["|" lifetime] ["|" MKI ":" length]

What we accept (every refusal is an `SdesError` whose `reason` says why, so an answer can pick
the next line or a 488 can carry it in a Warning):
- suites: AES_CM_128_HMAC_SHA1_80 and _32 (RFC 4568 6.2), AEAD_AES_128_GCM and
  AEAD_AES_256_GCM (RFC 7714 section 12); all four are libsrtp profiles in pylibsrtp 1.0;
- exactly one key param (several keys need MKIs to pick between them, RFC 4568 6.1);
- no MKI: we never rekey, and an MKI adds bytes to every packet for nothing; a line with one is
  refused and the next line tried;
- lifetime: absent, a decimal or a `2^n` form, at most the suite's maximum (2^48 packets for
  SRTP, RFC 3711 9.2 and RFC 7714 14.2). We never rekey, so a smaller lifetime is a promise we
  could break on a very long call: it is accepted when at least 2^31 packets (over 3 years of
  50 packet/s audio), refused below;
- session params: only WSH (window size hint, RFC 4568 6.3.7; at least 64). KDR (libsrtp has
  no key derivation rate), UNENCRYPTED_SRTP/SRTCP, UNAUTHENTICATED_SRTP (we do not downgrade),
  FEC_ORDER/FEC_KEY and anything unknown are refused (RFC 4568 6.3: an unknown session param
  makes the line unusable).
- tag: 1 to 9 decimal digits (RFC 4568 9.1).

Keys live in `SrtpKey`, whose repr and str never show the bytes. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "SUITES",
    "CryptoAttribute",
    "CryptoChoice",
    "SdesError",
    "SdesTerms",
    "SrtpAction",
    "SrtpDecision",
    "SrtpKey",
    "SrtpPolicy",
    "SrtpSuite",
    "accept_answer_crypto",
    "answer_crypto",
    "choose_crypto",
    "decide_srtp",
    "format_crypto",
    "offer_crypto",
    "parse_crypto",
]


class SdesError(ValueError):
    """An `a=crypto` line we cannot use; `reason` is a short sentence for logs and Warning."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SrtpSuite:
    name: str
    key_len: int  # master key, bytes
    salt_len: int  # master salt, bytes
    max_lifetime: int = 2**48  # packets (RFC 3711 9.2, RFC 7714 14.2)

    @property
    def key_salt_len(self) -> int:
        return self.key_len + self.salt_len


SUITES: dict[str, SrtpSuite] = {
    s.name: s
    for s in (
        SrtpSuite("AES_CM_128_HMAC_SHA1_80", 16, 14),
        SrtpSuite("AES_CM_128_HMAC_SHA1_32", 16, 14),
        # RFC 7714 section 12: 96-bit master salt for the AEAD suites.
        SrtpSuite("AEAD_AES_128_GCM", 16, 12),
        SrtpSuite("AEAD_AES_256_GCM", 32, 12),
    )
}
# Our preference when nothing else is configured: the 80-bit tag first (RFC 4568's
# mandatory-to-implement suite; every SDES peer has it), then the stronger AEAD suites.
DEFAULT_SUITES: tuple[str, ...] = (
    "AES_CM_128_HMAC_SHA1_80",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_CM_128_HMAC_SHA1_32",
)
MIN_LIFETIME = 2**31  # see the module docstring
MIN_WSH = 64  # RFC 4568 6.3.7: a window smaller than 64 is not allowed


class SrtpKey:
    """A master key and salt. The bytes never appear in repr, str or a log line."""

    __slots__ = ("_key_salt",)

    def __init__(self, key_salt: bytes) -> None:
        if not isinstance(key_salt, bytes):
            raise TypeError("SrtpKey takes bytes")
        self._key_salt = key_salt

    @classmethod
    def generate(cls, suite: SrtpSuite) -> SrtpKey:
        return cls(secrets.token_bytes(suite.key_salt_len))

    @property
    def key_salt(self) -> bytes:
        """master key || master salt, as libsrtp takes it."""
        return self._key_salt

    def inline(self) -> str:
        return base64.b64encode(self._key_salt).decode("ascii")

    def __len__(self) -> int:
        return len(self._key_salt)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SrtpKey):
            return NotImplemented
        return secrets.compare_digest(self._key_salt, other._key_salt)

    def __hash__(self) -> int:
        return hash(self._key_salt)

    def __repr__(self) -> str:
        return f"SrtpKey(<redacted, {len(self._key_salt)} bytes>)"

    __str__ = __repr__

    def __reduce__(self) -> object:  # no pickling a key into a log or a cache by accident
        raise TypeError("SrtpKey is not picklable")


@dataclass(frozen=True, slots=True)
class CryptoAttribute:
    """One usable `a=crypto` line (what parse_crypto accepts; the refusals never get here)."""

    tag: int
    suite: str
    key: SrtpKey
    lifetime: int | None = None  # packets, when the line said
    window_size_hint: int | None = None  # WSH session param

    def __post_init__(self) -> None:
        suite = SUITES.get(self.suite)
        if suite is None:
            raise SdesError(f"unknown crypto suite {self.suite[:40]!r}")
        if not 0 <= self.tag <= 999_999_999:
            raise SdesError(f"crypto tag {self.tag} out of range (1 to 9 digits)")
        if len(self.key) != suite.key_salt_len:
            raise SdesError(
                f"{self.suite} needs a {suite.key_salt_len}-byte key and salt, got {len(self.key)}"
            )


_TAG = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,20}")
_POWER = re.compile(r"2\^([0-9]{1,3})")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def _lifetime(text: str, suite: SrtpSuite) -> int:
    power = _POWER.fullmatch(text)
    if power:
        value = 2 ** int(power.group(1))
    elif _DECIMAL.fullmatch(text):
        value = int(text)
    else:
        raise SdesError(f"bad key lifetime {text[:30]!r}")
    if value > suite.max_lifetime:
        raise SdesError(f"key lifetime {text[:30]} over the {suite.name} maximum of 2^48")
    if value < MIN_LIFETIME:
        raise SdesError(f"key lifetime {text[:30]} below 2^31 (we do not rekey)")
    return value


def _key_param(text: str, suite: SrtpSuite) -> tuple[SrtpKey, int | None]:
    method, sep, info = text.partition(":")
    if not sep or method.lower() != "inline":
        raise SdesError(f"key method {method[:20]!r} is not inline")
    parts = info.split("|")
    if len(parts) > 3:
        raise SdesError("too many fields in the key param")
    encoded, lifetime_text = parts[0], None
    for extra in parts[1:]:
        if ":" in extra:
            raise SdesError("MKI in the key param is not supported")
        if lifetime_text is not None:
            raise SdesError("two lifetimes in the key param")
        lifetime_text = extra
    if not _B64.fullmatch(encoded) or len(encoded) % 4:
        raise SdesError("key is not valid base64")
    try:
        key_salt = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SdesError("key is not valid base64") from exc
    if len(key_salt) != suite.key_salt_len:
        raise SdesError(
            f"{suite.name} needs a {suite.key_salt_len}-byte key and salt, got {len(key_salt)}"
        )
    lifetime = _lifetime(lifetime_text, suite) if lifetime_text is not None else None
    return SrtpKey(key_salt), lifetime


def _window_size_hint(params: Iterable[str]) -> int | None:
    wsh = None
    for param in params:
        name, sep, value = param.partition("=")
        if name == "WSH" and sep and _DECIMAL.fullmatch(value):
            if wsh is not None:
                raise SdesError("WSH given twice")
            wsh = int(value)
            if wsh < MIN_WSH:
                raise SdesError(f"WSH={wsh} below {MIN_WSH} (RFC 4568 6.3.7)")
            continue
        raise SdesError(f"session param {param[:30]!r} is not supported")
    return wsh


def parse_crypto(line: str) -> CryptoAttribute:
    """One `a=crypto` value (`1 AES_CM_128_HMAC_SHA1_80 inline:...`; an `a=crypto:` or
    `crypto:` prefix is allowed). Raises only `SdesError`."""
    if not isinstance(line, str):
        raise SdesError("crypto line is not text")
    text = line.strip()
    for prefix in ("a=crypto:", "crypto:"):
        if text[: len(prefix)].lower() == prefix:
            text = text[len(prefix) :]
            break
    fields = text.split()
    if len(fields) < 3:
        raise SdesError("crypto line needs a tag, a suite and a key param")
    tag_text, suite_name, key_params, *session_params = fields
    if not _TAG.fullmatch(tag_text):
        raise SdesError(f"crypto tag {tag_text[:20]!r} is not 1 to 9 digits")
    suite = SUITES.get(suite_name)
    if suite is None:
        raise SdesError(f"unknown crypto suite {suite_name[:40]!r}")
    if ";" in key_params:
        raise SdesError("several key params are not supported")
    key, lifetime = _key_param(key_params, suite)
    wsh = _window_size_hint(session_params)
    return CryptoAttribute(int(tag_text), suite_name, key, lifetime, wsh)


def format_crypto(attr: CryptoAttribute) -> str:
    """The `a=crypto` value (without `a=crypto:`). It holds the key: write it only into SDP."""
    key = f"inline:{attr.key.inline()}"
    if attr.lifetime is not None:
        key += f"|{attr.lifetime}"
    text = f"{attr.tag} {attr.suite} {key}"
    if attr.window_size_hint is not None:
        text += f" WSH={attr.window_size_hint}"
    return text


@dataclass(frozen=True, slots=True)
class CryptoChoice:
    """The offered line we took (its key decrypts what the peer sends) and our answer line
    (same tag and suite, our fresh key: it encrypts what we send)."""

    remote: CryptoAttribute
    local: CryptoAttribute


def answer_crypto(remote: CryptoAttribute) -> CryptoAttribute:
    """Our answer to an accepted line: the same tag and suite, a fresh key of the suite's
    length (RFC 4568 7.1.2: each direction has its own key)."""
    return CryptoAttribute(remote.tag, remote.suite, SrtpKey.generate(SUITES[remote.suite]))


def choose_crypto(
    offered_lines: Sequence[str],
    preference: Sequence[str] = DEFAULT_SUITES,
    current: CryptoChoice | None = None,
) -> CryptoChoice:
    """The usable offered line whose suite comes first in our `preference` (offer order breaks
    ties), and our answer to it. Raises `SdesError` naming why each line was refused.

    `current`: the keys in use on this call (a re-offer). A re-offer that repeats the line in
    use keeps it and our answer line, so the SRTP contexts (rollover counter, replay window)
    carry on (RFC 4568 7.1.4: a re-offer need not rekey)."""
    usable: list[CryptoAttribute] = []
    refusals: list[str] = []
    for line in offered_lines:
        try:
            attr = parse_crypto(line)
        except SdesError as exc:
            refusals.append(exc.reason)
            continue
        if attr.suite not in preference:
            refusals.append(f"suite {attr.suite} not enabled")
            continue
        usable.append(attr)
    if not usable:
        if not refusals:
            raise SdesError("no a=crypto line in the offer")
        raise SdesError("no usable a=crypto line: " + "; ".join(dict.fromkeys(refusals))[:300])
    if current is not None and current.remote in usable:
        return current
    best = min(usable, key=lambda a: preference.index(a.suite))
    return CryptoChoice(best, answer_crypto(best))


def accept_answer_crypto(
    offered: Sequence[CryptoAttribute], answer_lines: Sequence[str]
) -> CryptoChoice:
    """The answerer's `a=crypto` line for one of our offered lines (RFC 4568 7.1.2: exactly one,
    with the tag and suite of the line it accepts, and its own key). `remote` is the answer's
    line (it decrypts what the callee sends), `local` our offered line of that tag. Raises
    `SdesError` when the answer has none, several, or one that matches no offered line."""
    if len(answer_lines) != 1:
        raise SdesError(f"the SRTP answer has {len(answer_lines)} a=crypto lines, not one")
    remote = parse_crypto(answer_lines[0])
    local = next((line for line in offered if line.tag == remote.tag), None)
    if local is None:
        raise SdesError(f"the answer's crypto tag {remote.tag} was not offered")
    if local.suite != remote.suite:
        raise SdesError(f"the answer's crypto tag {remote.tag} changed suite to {remote.suite}")
    return CryptoChoice(remote, local)


def offer_crypto(preference: Sequence[str] = DEFAULT_SUITES) -> list[CryptoAttribute]:
    """Lines for an SRTP offer of ours: one per enabled suite, tags 1.., fresh keys."""
    return [
        CryptoAttribute(tag, name, SrtpKey.generate(SUITES[name]))
        for tag, name in enumerate(preference, start=1)
    ]


class SrtpPolicy(enum.StrEnum):
    OFF = "off"  # RTP only; an RTP/SAVP offer gets 488 (the behaviour before SRTP existed)
    OPTIONAL = "optional"  # SRTP when offered, plain RTP otherwise
    REQUIRED = "required"  # SRTP only; a plain offer gets 488


class SrtpAction(enum.Enum):
    PLAIN = "plain"  # answer RTP/AVP without crypto
    CRYPTO = "crypto"  # answer RTP/SAVP with `choice.local`
    REFUSE = "refuse"  # 488 Not Acceptable Here, `reason` in a Warning


@dataclass(frozen=True, slots=True)
class SrtpDecision:
    action: SrtpAction
    reason: str = ""
    choice: CryptoChoice | None = None
    status: int = 0  # the SIP status for REFUSE

    @classmethod
    def refuse(cls, reason: str) -> SrtpDecision:
        return cls(SrtpAction.REFUSE, reason, None, 488)


_PLAIN_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})
_SDES_PROFILES = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_DTLS_PROFILES = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})


def decide_srtp(
    transport: str,
    crypto_lines: Sequence[str],
    policy: SrtpPolicy,
    *,
    signalling_secure: bool,
    allow_sdes_over_plain: bool = False,
    preference: Sequence[str] = DEFAULT_SUITES,
    current: CryptoChoice | None = None,
) -> SrtpDecision:
    """What to answer an audio offer with proto `transport` (the m= line's) and these
    `a=crypto` values, under `policy`. `signalling_secure`: the offer came over TLS; SDES keys
    travel in the SDP, so over plain UDP/TCP anyone on the path reads them (RFC 4568 8.3) and
    they are used only when `allow_sdes_over_plain` says so."""
    proto = transport.strip().upper()
    if proto in _PLAIN_PROFILES:
        # a=crypto under RTP/AVP ("best effort SRTP", not in any RFC) is ignored: the peer
        # asked for RTP and will accept it.
        if policy is SrtpPolicy.REQUIRED:
            return SrtpDecision.refuse("SRTP required: the offer is RTP/AVP")
        return SrtpDecision(SrtpAction.PLAIN)
    if proto in _DTLS_PROFILES:
        return SrtpDecision.refuse("DTLS-SRTP is not supported (SDES only)")
    if proto not in _SDES_PROFILES:
        return SrtpDecision.refuse(f"media transport {transport[:30]!r} is not supported")
    if policy is SrtpPolicy.OFF:
        return SrtpDecision.refuse("SRTP is off (media.srtp)")
    if not signalling_secure and not allow_sdes_over_plain:
        return SrtpDecision.refuse("SDES keys over plain signalling are not allowed (use TLS)")
    try:
        choice = choose_crypto(crypto_lines, preference, current)
    except SdesError as exc:
        return SrtpDecision.refuse(exc.reason)
    return SrtpDecision(SrtpAction.CRYPTO, choice=choice)


@dataclass(frozen=True, slots=True)
class SdesTerms:
    """Everything `decide_srtp` needs besides the offer: a call's SRTP policy, whether its
    signalling is TLS, and the keys in use (a re-offer). sip/sdp_offer_answer.py takes it."""

    policy: SrtpPolicy
    signalling_secure: bool
    allow_sdes_over_plain: bool = False
    preference: tuple[str, ...] = DEFAULT_SUITES
    current: CryptoChoice | None = None

    @property
    def sdes_allowed(self) -> bool:
        """SDES keys may be written into (or read from) this dialog's SDP."""
        return self.policy is not SrtpPolicy.OFF and (
            self.signalling_secure or self.allow_sdes_over_plain
        )

    def decide(self, transport: str, crypto_lines: Sequence[str]) -> SrtpDecision:
        return decide_srtp(
            transport,
            crypto_lines,
            self.policy,
            signalling_secure=self.signalling_secure,
            allow_sdes_over_plain=self.allow_sdes_over_plain,
            preference=self.preference,
            current=self.current,
        )
