"""`ssl.SSLContext`s for SIP over TLS (RFC 3261 section 26, RFC 5630): the listener's and the
client's, built from plain settings (the gateway's `[sip.tls]` section fills them in).

Server: certificate chain and key from PEM files, TLS 1.2 or later, forward-secret AEAD
ciphers only for TLS 1.2 (TLS 1.3 suites are all AEAD), optional client-certificate
verification against a CA file (mutual TLS, for trunks that use it). `ServerTls.reload()`
re-reads the certificate and key into the same context (SIGHUP): connections accepted later get
the new certificate, established ones keep theirs; a broken new pair leaves the old one in use.

Client: the system trust store or a CA bundle, SNI and hostname check on; verification is off
only when the settings say so explicitly (`check` warns about it: gateway/doctor/tls.py).

The contexts work with asyncio's and uvloop's `start_server`/`open_connection` alike (both
take an `ssl.SSLContext`). No sockets here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = [
    "MIN_VERSIONS",
    "TLS12_CIPHERS",
    "ServerTls",
    "TlsClientSettings",
    "TlsError",
    "TlsServerSettings",
    "client_context",
    "server_context",
]

MIN_VERSIONS: dict[str, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
# TLS 1.2: ECDHE/DHE key exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305 only,
# the ciphers of Mozilla's "intermediate" profile; no CBC, no RSA key exchange, no SHA-1 MACs.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


class TlsError(Exception):
    """A context could not be built (unreadable or mismatched files, a bad setting); the message
    names the file or setting."""


@dataclass(frozen=True, slots=True)
class TlsServerSettings:
    cert_file: str  # PEM: the certificate, then its intermediates
    key_file: str  # PEM private key (unencrypted)
    ca_file: str = ""  # PEM CAs trusted for client certificates (mutual TLS)
    verify_client: bool = False  # require a client certificate signed by ca_file
    min_version: str = "1.2"


@dataclass(frozen=True, slots=True)
class TlsClientSettings:
    ca_file: str = ""  # empty: the system trust store
    verify_server: bool = True  # False only when set explicitly; `check` warns
    min_version: str = "1.2"
    cert_file: str = ""  # our client certificate, for a trunk that asks for one
    key_file: str = ""


def _min_version(value: str) -> ssl.TLSVersion:
    try:
        return MIN_VERSIONS[value]
    except KeyError:
        raise TlsError(f"min_version {value!r} is not one of {', '.join(MIN_VERSIONS)}") from None


def _harden(context: ssl.SSLContext, min_version: str) -> None:
    context.minimum_version = _min_version(min_version)
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TlsError(f"cannot read {exc.filename or cert_file}: no such file") from None
    except PermissionError as exc:
        raise TlsError(f"cannot read {exc.filename or cert_file}: permission denied") from None
    except ssl.SSLError as exc:
        # OpenSSL says "KEY_VALUES_MISMATCH" for a key of another certificate, "PEM lib" for a
        # file that is not PEM.
        raise TlsError(
            f"cannot load certificate {cert_file} with key {key_file}: {exc.reason or exc}"
        ) from None


def _load_cas(context: ssl.SSLContext, ca_file: str) -> None:
    try:
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load CA file {ca_file}: {exc.strerror or exc}") from None


def server_context(settings: TlsServerSettings) -> ssl.SSLContext:
    """The listener's context. Raises `TlsError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, settings.min_version)
    _load_chain(context, settings.cert_file, settings.key_file)
    if settings.verify_client:
        if not settings.ca_file:
            raise TlsError("verify_client needs ca_file (the CAs that sign client certificates)")
        _load_cas(context, settings.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    elif settings.ca_file:
        _load_cas(context, settings.ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(settings: TlsClientSettings) -> ssl.SSLContext:
    """The context for outbound connections (registrations, trunks, REFER targets). Pass the
    target's host name as `server_hostname` when connecting: it is sent as SNI and checked
    against the certificate. Raises `TlsError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED on
    _harden(context, settings.min_version)
    if settings.ca_file:
        _load_cas(context, settings.ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if not settings.verify_server:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.cert_file or settings.key_file:
        if not (settings.cert_file and settings.key_file):
            raise TlsError("a client certificate needs both cert_file and key_file")
        _load_chain(context, settings.cert_file, settings.key_file)
    return context


class ServerTls:
    """The listener's context and its reload. Hand `context` to `start_server` once;
    `reload()` updates it in place."""

    def __init__(self, settings: TlsServerSettings) -> None:
        self.settings = settings
        self.context = server_context(settings)

    def reload(self, settings: TlsServerSettings | None = None) -> None:
        """Re-read the certificate and key (and the client CAs) from their files, and apply
        `verify_client` and `min_version`. Everything is tried on a scratch context first: on
        `TlsError` the running one is untouched. CAs are added to those already trusted, never
        removed (OpenSSL cannot drop one): removing a CA needs a restart."""
        settings = settings or self.settings
        scratch = server_context(settings)  # raises TlsError before anything live changes
        _load_chain(self.context, settings.cert_file, settings.key_file)
        if settings.ca_file:
            _load_cas(self.context, settings.ca_file)
        self.context.verify_mode = scratch.verify_mode
        self.context.minimum_version = scratch.minimum_version
        self.settings = settings
