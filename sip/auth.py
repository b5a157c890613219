"""HTTP digest authentication for SIP (RFC 3261 section 22, RFC 2617, RFC 7616).

Pure code, no I/O. The client side answers `WWW-Authenticate` / `Proxy-Authenticate` challenges
(REGISTER, outbound INVITE); the server side challenges inbound INVITEs when the operator sets
`[sip] inbound_auth`.

Client use::

    creds = DigestCredentials("gateway", "secret")
    challenge = choose_challenge(response.headers.get_all("WWW-Authenticate"))
    value = creds.authorize(challenge, "REGISTER", "sip:pbx.example.org")
    if value is None:          # wrong password, or the server keeps refusing: give up
        log(creds.failure_reason)
    ...
    creds.accepted()           # on the 2xx, so the next refresh may be challenged again

Server use::

    server = DigestServer(realm="gateway", username="alice", password="pw")
    header = server.challenge(now=time.time())             # -> 401 WWW-Authenticate
    result = server.verify("INVITE", authorization, now=time.time())
    if not result.ok: reply 401 with server.challenge(now, stale=result.stale)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALGORITHMS",
    "REPLAYED",
    "AuthError",
    "DigestChallenge",
    "DigestCredentials",
    "DigestResponse",
    "DigestServer",
    "VerifyResult",
    "build_authorization",
    "choose_challenge",
    "compute_response",
    "parse_challenges",
]


class AuthError(ValueError):
    """A challenge or Authorization header we cannot use; the message names the problem."""


# Canonical spelling of each algorithm (RFC 7616 section 6.1) -> hash constructor.
# SHA-512-256 is registered by RFC 7616 too, but no SIP peer we meet sends it.
_HASHES: dict[str, Callable[..., Any]] = {
    "MD5": hashlib.md5,
    "MD5-sess": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-sess": hashlib.sha256,
}
ALGORITHMS: tuple[str, ...] = tuple(_HASHES)
_BY_UPPER = {name.upper(): name for name in _HASHES}
# choose_challenge preference (RFC 7616 section 3.7: the client uses the strongest it supports).
_STRENGTH = {"SHA-256": 4, "SHA-256-sess": 3, "MD5": 2, "MD5-sess": 1}


def canonical_algorithm(name: str | None) -> str:
    """Map an `algorithm=` value to its canonical name; absent means MD5 (RFC 2617 3.2.1)."""
    if name is None or name == "":
        return "MD5"
    canonical = _BY_UPPER.get(name.upper())
    if canonical is None:
        raise AuthError(f"unsupported digest algorithm {name!r}")
    return canonical


# --- auth-param list parsing (RFC 7235 section 2.1, RFC 3261 25.1) ----------------------------

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)
_WS = " \t\r\n"


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        # Caller saw the opening quote. Backslash escapes any character (RFC 3261 25.1
        # quoted-pair); an unterminated string is an error rather than a silent truncation.
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == '"':
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise AuthError("unterminated quoted string in auth header")

    def value(self) -> str:
        if self.peek() == '"':
            return self.quoted()
        # Tolerate sloppy peers that send unquoted values with '/' or '=' (e.g. base64 nonces).
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", \t\r\n":
            self.pos += 1
        return self.text[start : self.pos]


def _parse_auth_headers(value: str) -> list[tuple[str, dict[str, str]]]:
    """Split a header value into (scheme, params) pairs; several challenges may share one value."""
    scanner = _Scanner(value)
    result: list[tuple[str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    for _ in range(len(value) + 1):  # every iteration consumes input; bound anyway
        scanner.skip_ws()
        while scanner.peek() == ",":
            scanner.pos += 1
            scanner.skip_ws()
        if scanner.peek() == "":
            break
        name = scanner.token()
        if not name:
            raise AuthError(f"unexpected character {scanner.peek()!r} in auth header")
        mark = scanner.pos
        scanner.skip_ws()
        if scanner.peek() == "=" and current is not None:
            scanner.pos += 1
            scanner.skip_ws()
            key = name.lower()
            if key in current:
                raise AuthError(f"duplicate auth parameter {key!r}")
            current[key] = scanner.value()
            continue
        if scanner.peek() == "=":
            raise AuthError("auth header does not start with a scheme")
        # A bare token starts a new challenge (its scheme).
        scanner.pos = mark
        current = {}
        result.append((name, current))
    else:  # pragma: no cover - the loop always consumes input
        raise AuthError("auth header parser made no progress")
    if not result:
        raise AuthError("empty auth header")
    return result


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- challenge -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestChallenge:
    """One Digest challenge from WWW-Authenticate (401) or Proxy-Authenticate (407)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()  # empty: RFC 2069 compatibility (no cnonce/nc)
    opaque: str | None = None
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    params: tuple[tuple[str, str], ...] = ()  # every parameter as received, for diagnostics

    @classmethod
    def parse(cls, header_value: str) -> DigestChallenge:
        """Parse the first Digest challenge in a header value; AuthError names the problem."""
        challenges = parse_challenges(header_value)
        if not challenges:
            schemes = ", ".join(scheme for scheme, _ in _parse_auth_headers(header_value))
            raise AuthError(f"not a Digest challenge (scheme {schemes})")
        return challenges[0]

    @classmethod
    def from_params(cls, params: dict[str, str]) -> DigestChallenge:
        if "realm" not in params:
            raise AuthError("digest challenge has no realm")
        if not params.get("nonce"):
            raise AuthError("digest challenge has no nonce")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=canonical_algorithm(params.get("algorithm")),
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").strip().lower() == "true",
            domain=tuple(params.get("domain", "").split()),
            userhash=params.get("userhash", "").strip().lower() == "true",
            params=tuple(params.items()),
        )

    def chosen_qop(self) -> str | None:
        """The qop we answer with: auth preferred, auth-int if that is all, None for RFC 2069."""
        if not self.qop:
            return None
        if "auth" in self.qop:
            return "auth"
        if "auth-int" in self.qop:
            return "auth-int"
        raise AuthError(f"digest challenge offers no supported qop ({','.join(self.qop)})")

    def to_header(self) -> str:
        """Serialise as a WWW-Authenticate/Proxy-Authenticate value (used by DigestServer)."""
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.domain:
            parts.append(f"domain={_quote(' '.join(self.domain))}")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)


def parse_challenges(header_value: str) -> list[DigestChallenge]:
    """Every Digest challenge in one header value (other schemes such as Basic are skipped)."""
    return [
        DigestChallenge.from_params(params)
        for scheme, params in _parse_auth_headers(header_value)
        if scheme.lower() == "digest"
    ]


def choose_challenge(
    header_values: Iterable[str | DigestChallenge],
) -> DigestChallenge | None:
    """Pick the strongest usable challenge (SHA-256 over MD5, RFC 7616 3.7), None if none is.

    Challenges we cannot use (unknown algorithm, only unknown qop, another scheme) are skipped
    rather than failing the whole response: a server may offer several (RFC 7616 section 3.7).
    """
    best: DigestChallenge | None = None
    for item in header_values:
        try:
            candidates = [item] if isinstance(item, DigestChallenge) else parse_challenges(item)
        except AuthError:
            continue
        for challenge in candidates:
            try:
                challenge.chosen_qop()
            except AuthError:
                continue
            if best is None or _STRENGTH[challenge.algorithm] > _STRENGTH[best.algorithm]:
                best = challenge
    return best


# --- response computation (RFC 7616 section 3.4.1-3.4.3) --------------------------------------


def _h(algorithm: str, text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return _HASHES[algorithm](data).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password): what a server may store instead of the password."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def compute_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    cnonce: str = "",
    nc: str = "",
    body: bytes = b"",
) -> str:
    """The `response=` value from a precomputed H(user:realm:password)."""
    algorithm = canonical_algorithm(algorithm)
    if algorithm.endswith("-sess"):
        # RFC 7616 3.4.2: session variants fold nonce and cnonce into A1.
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        a2 = f"{method}:{uri}:{_h(algorithm, body)}"
    else:
        a2 = f"{method}:{uri}"
    ha2 = _h(algorithm, a2)
    if qop is None:
        # RFC 2069 compatibility (RFC 2617 3.2.2.1): no cnonce/nc.
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def new_cnonce() -> str:
    return secrets.token_hex(16)


def build_authorization(
    challenge: DigestChallenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """Authorization / Proxy-Authorization value answering `challenge` (RFC 3261 22.2, 22.3).

    `uri` must be the Request-URI of the request being sent (RFC 3261 22.4 item 5).
    """
    if not 1 <= nc <= 0xFFFFFFFF:
        raise AuthError(f"nonce count out of range: {nc}")
    qop = challenge.chosen_qop()
    algorithm = challenge.algorithm
    cnonce_value = (cnonce or new_cnonce()) if qop is not None else ""
    nc_value = f"{nc:08x}" if qop is not None else ""
    ha1 = compute_ha1(algorithm, username, challenge.realm, password)
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        cnonce=cnonce_value,
        nc=nc_value,
        body=body,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        # RFC 3261 25.1: algorithm, qop and nc are tokens, not quoted strings.
        f"algorithm={algorithm}",
    ]
    if qop is not None:
        parts.append(f"cnonce={_quote(cnonce_value)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_value}")
    return "Digest " + ", ".join(parts)


# --- client state --------------------------------------------------------------------------


@dataclass
class _RealmState:
    challenge: DigestChallenge
    nc: int = 0
    answered: bool = False  # we sent credentials for this challenge and have not been accepted
    rejections: int = 0  # challenges received after answering, since the last acceptance


@dataclass
class DigestCredentials:
    """Username/password plus per-realm nonce state: nc counting and the retry decision.

    `authorize()` returns the header value to send, or None when retrying is pointless:
    - the server re-challenges with the nonce we just answered and without stale=true: the
      password is wrong (RFC 7616 3.4 / RFC 3261 22.2);
    - the server keeps re-challenging with fresh nonces and no stale=true more than
      `max_rejections` times (Asterisk and Kamailio issue a new nonce on every 401).
    stale=true always allows a retry with the new nonce (the old one only expired), bounded by
    `max_stale` so a broken server cannot loop us.
    """

    username: str
    password: str
    max_rejections: int = 1
    max_stale: int = 3
    cnonce_factory: Callable[[], str] = new_cnonce
    failure_reason: str | None = field(default=None, init=False)  # why authorize() gave up
    _realms: dict[str, _RealmState] = field(default_factory=dict, repr=False)
    _stale_count: int = field(default=0, repr=False)

    def authorize(
        self, challenge: DigestChallenge, method: str, uri: str, body: bytes = b""
    ) -> str | None:
        state = self._realms.get(challenge.realm)
        if state is not None and state.answered:
            if challenge.stale:
                self._stale_count += 1
                if self._stale_count > self.max_stale:
                    return self._give_up(f"realm {challenge.realm!r}: too many stale nonces")
            elif challenge.nonce == state.challenge.nonce:
                return self._give_up(
                    f"realm {challenge.realm!r}: credentials rejected (same nonce challenged again)"
                )
            else:
                state.rejections += 1
                if state.rejections > self.max_rejections:
                    return self._give_up(
                        f"realm {challenge.realm!r}: credentials rejected {state.rejections} times"
                    )
        if state is None:
            state = _RealmState(challenge)
            self._realms[challenge.realm] = state
        elif state.challenge.nonce != challenge.nonce:
            # RFC 7616 3.4: nc restarts at 1 for every new nonce.
            state.challenge = challenge
            state.nc = 0
        else:
            state.challenge = challenge
        try:
            value = self._answer(state, method, uri, body)
        except AuthError as exc:
            return self._give_up(f"realm {challenge.realm!r}: {exc}")
        state.answered = True
        self.failure_reason = None
        return value

    def preemptive(self, method: str, uri: str, body: bytes = b"") -> list[str]:
        """Authorization values for every known realm with the next nc (refreshes, RFC 7616 3.4)."""
        values = []
        for state in self._realms.values():
            try:
                values.append(self._answer(state, method, uri, body))
            except AuthError:
                continue
            state.answered = True
        return values

    def accepted(self) -> None:
        """The request went through: the next challenge is a fresh start, not a rejection."""
        for state in self._realms.values():
            state.answered = False
            state.rejections = 0
        self._stale_count = 0
        self.failure_reason = None

    def _answer(self, state: _RealmState, method: str, uri: str, body: bytes) -> str:
        state.nc += 1
        return build_authorization(
            state.challenge,
            self.username,
            self.password,
            method,
            uri,
            body=body,
            cnonce=self.cnonce_factory(),
            nc=state.nc,
        )

    def _give_up(self, reason: str) -> None:
        self.failure_reason = reason
        return None


# --- Authorization header (server side) -----------------------------------------------------


@dataclass(frozen=True)
class DigestResponse:
    """A parsed Authorization / Proxy-Authorization Digest value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None

    @classmethod
    def parse(cls, header_value: str) -> DigestResponse:
        parsed = _parse_auth_headers(header_value)
        scheme, params = parsed[0]
        if scheme.lower() != "digest":
            raise AuthError(f"not a Digest authorization (scheme {scheme})")
        for required in ("username", "realm", "nonce", "uri", "response"):
            if required not in params:
                raise AuthError(f"digest authorization has no {required}")
        qop = params.get("qop")
        if qop is not None:
            qop = qop.lower()
            if "cnonce" not in params or "nc" not in params:
                raise AuthError("digest authorization with qop lacks cnonce or nc")
        return cls(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"].lower(),
            algorithm=canonical_algorithm(params.get("algorithm")),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
            qop=qop,
            nc=params.get("nc"),
        )


# --- server side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str = ""
    stale: bool = False  # re-challenge with stale=true: the client only needs a fresh nonce
    username: str | None = None

    def __bool__(self) -> bool:
        return self.ok


_NONCE_MAC_BYTES = 16
REPLAYED = "replayed nonce count"  # VerifyResult.reason of a replayed Authorization
_NONCE_RANDOM_BYTES = 8
_NC = re.compile(r"[0-9a-fA-F]{8}")  # RFC 7616 3.4: nc is exactly 8 hex digits


class DigestServer:
    """Digest challenger/verifier for inbound requests, with bounded replay tracking.

    The nonce is base64(timestamp || random || HMAC(secret, timestamp || random || realm)), so
    any nonce we issued can be checked without remembering it (issuing costs no memory, whoever
    asks), and its age tells expiry apart from forgery: an expired nonce whose MAC verifies and
    whose response is right is answered with stale=true (RFC 7616 3.3, RFC 2617 3.2.1), so the
    client retries with the new nonce instead of prompting for a password.

    Replay (RFC 7616 3.3, 5.12): once a nonce has been used successfully it is tracked with the
    highest nc seen; with qop the next use must carry a higher nc, without qop (RFC 2069 style,
    no nc) a nonce is single-use. A replayed Authorization fails (not stale: the client must
    compute a new response for the fresh nonce of the challenge). Tracked nonces are bounded in
    lifetime (`nonce_ttl`, after which the nonce is stale anyway) and in number
    (`max_tracked_nonces`): when the table is full the oldest entry is dropped and every nonce
    issued up to that one's timestamp counts as stale from then on, so eviction can never
    re-open a replay, it only makes an honest client fetch a fresh nonce.
    """

    def __init__(
        self,
        realm: str,
        username: str,
        password: str | None = None,
        *,
        ha1: str | None = None,
        algorithm: str = "MD5",
        nonce_ttl: float = 300.0,
        secret: bytes | None = None,
        max_tracked_nonces: int = 4096,
    ) -> None:
        self.realm = realm
        self.username = username
        self.algorithm = canonical_algorithm(algorithm)
        if (password is None) == (ha1 is None):
            raise ValueError("DigestServer needs exactly one of password or ha1")
        self._ha1 = (
            ha1.lower()
            if ha1 is not None
            else compute_ha1(self.algorithm, username, realm, password or "")
        )
        self.nonce_ttl = nonce_ttl
        self._secret = secret if secret is not None else os.urandom(32)
        self.max_tracked_nonces = max_tracked_nonces
        # nonce -> (issue time in ms, highest nc accepted; 0 for a qop-less use)
        self._used: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._stale_before_ms = -1  # untracked nonces issued at or before this are stale
        self.replays = 0  # Authorization headers refused as replays

    def _mac(self, stamp: bytes) -> bytes:
        return hmac.new(self._secret, stamp + self.realm.encode("utf-8"), hashlib.sha256).digest()[
            :_NONCE_MAC_BYTES
        ]

    def make_nonce(self, now: float) -> str:
        # The random part keeps two challenges of the same millisecond apart: with replay
        # tracking, two clients sharing a nonce would refuse each other's nc=1.
        stamp = struct.pack(">Q", max(0, int(now * 1000))) + os.urandom(_NONCE_RANDOM_BYTES)
        return base64.b64encode(stamp + self._mac(stamp)).decode("ascii")

    def _nonce_stamp(self, nonce: str) -> int | None:
        """Issue time (ms) of a nonce we issued, None if we did not issue it."""
        try:
            raw = base64.b64decode(nonce.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return None
        head = 8 + _NONCE_RANDOM_BYTES
        if len(raw) != head + _NONCE_MAC_BYTES:
            return None
        stamp, mac = raw[:head], raw[head:]
        if not hmac.compare_digest(mac, self._mac(stamp)):
            return None
        return int(struct.unpack(">Q", stamp[:8])[0])

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Age in seconds of a nonce we issued, None if we did not issue it."""
        stamp = self._nonce_stamp(nonce)
        return None if stamp is None else now - stamp / 1000.0

    @property
    def tracked_nonces(self) -> int:
        return len(self._used)

    def _check_use(self, nonce: str, nc_text: str | None, qop: str | None, now: float) -> str:
        """Record one successful use: "" (fresh use), "replay" or "stale" (evicted earlier)."""
        self._forget_expired(now)
        stamp = self._nonce_stamp(nonce)
        assert stamp is not None  # verify() checked the MAC first
        nc = 0
        if qop is not None:
            nc = int(nc_text or "0", 16)
        seen = self._used.get(nonce)
        if seen is not None:
            if qop is None or nc <= seen[1]:
                self.replays += 1
                return "replay"
            self._used[nonce] = (stamp, nc)
            return ""
        if stamp <= self._stale_before_ms:
            return "stale"
        self._used[nonce] = (stamp, nc)
        while len(self._used) > self.max_tracked_nonces:
            _, (evicted_stamp, _) = self._used.popitem(last=False)
            self._stale_before_ms = max(self._stale_before_ms, evicted_stamp)
        return ""

    def _forget_expired(self, now: float) -> None:
        """Tracked nonces past their lifetime are stale anyway: drop them (oldest use first)."""
        limit_ms = (now - self.nonce_ttl) * 1000.0
        while self._used:
            nonce, (stamp, _) = next(iter(self._used.items()))
            if stamp >= limit_ms:
                break
            del self._used[nonce]

    def challenge(self, now: float | None = None, stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value with a fresh nonce."""
        now = time.time() if now is None else now
        return DigestChallenge(
            realm=self.realm,
            nonce=self.make_nonce(now),
            algorithm=self.algorithm,
            qop=("auth",),
            stale=stale,
        ).to_header()

    def verify(
        self,
        method: str,
        authorization: str,
        now: float | None = None,
        body: bytes = b"",
    ) -> VerifyResult:
        now = time.time() if now is None else now
        try:
            auth = DigestResponse.parse(authorization)
        except AuthError as exc:
            return VerifyResult(False, f"malformed authorization: {exc}")
        if auth.realm != self.realm:
            return VerifyResult(False, f"wrong realm {auth.realm!r}")
        if auth.algorithm != self.algorithm:
            return VerifyResult(False, f"unexpected algorithm {auth.algorithm}")
        if auth.qop not in (None, "auth", "auth-int"):
            return VerifyResult(False, f"unsupported qop {auth.qop!r}")
        age = self._nonce_age(auth.nonce, now)
        if age is None:
            return VerifyResult(False, "nonce not issued by us")
        if age < -5.0:  # small tolerance: the clock passed in may be a little behind
            return VerifyResult(False, "nonce from the future")
        expected = compute_response(
            algorithm=self.algorithm,
            ha1=self._ha1,
            nonce=auth.nonce,
            method=method,
            uri=auth.uri,
            qop=auth.qop,
            cnonce=auth.cnonce or "",
            nc=auth.nc or "",
            body=body,
        )
        # Compare username and response together in constant time so timing reveals neither.
        user_ok = hmac.compare_digest(auth.username.encode("utf-8"), self.username.encode("utf-8"))
        response_ok = hmac.compare_digest(
            auth.response.encode("ascii", "replace"), expected.encode("ascii")
        )
        if not (user_ok and response_ok):
            return VerifyResult(False, "wrong username or password", username=auth.username)
        if age > self.nonce_ttl:
            return VerifyResult(False, "nonce expired", stale=True, username=auth.username)
        if auth.qop is not None and not _NC.fullmatch(auth.nc or ""):
            return VerifyResult(False, f"malformed nonce count {auth.nc!r}")
        use = self._check_use(auth.nonce, auth.nc, auth.qop, now)
        if use == "replay":
            return VerifyResult(False, REPLAYED, username=auth.username)
        if use == "stale":
            return VerifyResult(False, "nonce expired", stale=True, username=auth.username)
        return VerifyResult(True, username=auth.username)
