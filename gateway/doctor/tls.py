"""The TLS checks (issue 13): the listener's certificate and key, the CA files, verification
turned off, and the TLS servers of registrations (`sips:` or `;transport=tls`).

Certificate problems, each with the key to fix: a file that cannot be read or is not PEM, a
certificate expired (or not yet valid) or expiring within 30 days, a key that is not the
certificate's, a certificate whose names do not cover `sip.advertised_host` (what peers put in
their request URIs and check against the certificate, RFC 5922). `verify_server = false` is a
warning: outbound TLS then trusts anyone on the path.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from gateway.config import GatewayConfig, RegistrationConfig
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status
from sip.tls import TlsError, client_context, server_context

NAME = "SIP TLS"
EXPIRY_WARNING = timedelta(days=30)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def _read(path: str, key: str) -> tuple[bytes | None, CheckResult | None]:
    try:
        return Path(path).read_bytes(), None
    except OSError as exc:
        return None, CheckResult(
            NAME,
            Status.FAIL,
            f"{key}: cannot read {path}: {exc.strerror or exc}",
            f"fix the path or the permissions of {key} (the gateway's user must read it)",
        )


def _load_certs(
    data: bytes, path: str, key: str
) -> tuple[list[x509.Certificate], CheckResult | None]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        return [], CheckResult(
            NAME,
            Status.FAIL,
            f"{key}: {path} holds no PEM certificate",
            f"point {key} at a PEM file",
        )
    return certs, None


def _validity(cert: x509.Certificate, path: str, now: datetime) -> CheckResult:
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    when = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if now < not_before:
        return CheckResult(
            NAME,
            Status.FAIL,
            f"sip.tls.cert_file: {path} is not valid before "
            f"{not_before.strftime('%Y-%m-%d %H:%M UTC')}",
            "check the host clock, or install a certificate valid now",
        )
    if now >= not_after:
        return CheckResult(
            NAME,
            Status.FAIL,
            f"sip.tls.cert_file: {path} expired on {when}",
            "renew the certificate, then send SIGHUP (the listener re-reads it)",
        )
    if not_after - now <= EXPIRY_WARNING:
        days = (not_after - now).days
        return CheckResult(
            NAME,
            Status.WARN,
            f"sip.tls.cert_file: {path} expires on {when} (in {days} day{'s' if days != 1 else ''})",
            "renew the certificate, then send SIGHUP (the listener re-reads it)",
        )
    return CheckResult(NAME, Status.OK, f"sip.tls.cert_file: {path} valid until {when}")


def _public_bytes(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_matches(cert: x509.Certificate, key_data: bytes, key_path: str) -> CheckResult:
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: the key is encrypted (the listener cannot ask for a passphrase).
        return CheckResult(
            NAME,
            Status.FAIL,
            f"sip.tls.key_file: {key_path} is not an unencrypted PEM private key ({exc})",
            "point sip.tls.key_file at the certificate's PEM key, without a passphrase",
        )
    if _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
        return CheckResult(
            NAME,
            Status.FAIL,
            f"sip.tls.key_file: {key_path} is not the key of the certificate in sip.tls.cert_file",
            "install the key that was issued with this certificate (or the certificate of this key)",
        )
    return CheckResult(NAME, Status.OK, f"sip.tls.key_file: {key_path} matches the certificate")


def certificate_names(cert: x509.Certificate) -> tuple[list[str], list[ipaddress._BaseAddress]]:
    """(DNS names, IP addresses) the certificate is for: its subjectAltName, or the common
    name when it has none (RFC 5922 7.1 allows the CN only without SANs)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(cn.value) for cn in cns], []
    ips = list(san.get_values_for_type(x509.IPAddress))
    return list(san.get_values_for_type(x509.DNSName)), ips  # type: ignore[arg-type]


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):  # one label only (RFC 6125 6.4.3)
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def covers(cert: x509.Certificate, host: str) -> bool:
    dns, ips = certificate_names(cert)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return any(_dns_match(name, host) for name in dns)
    return address in ips


def _hostname(cert: x509.Certificate, config: GatewayConfig) -> CheckResult:
    host = config.sip.advertised_host or config.sip.host
    if host in _WILDCARD_HOSTS:
        return CheckResult(
            NAME,
            Status.WARN,
            "sip.advertised_host is not set: cannot tell which name peers check the "
            "certificate against",
            "set sip.advertised_host to the name in the certificate",
        )
    if covers(cert, host):
        return CheckResult(NAME, Status.OK, f"the certificate covers {host}")
    dns, ips = certificate_names(cert)
    names = ", ".join([*dns, *map(str, ips)]) or "no names"
    return CheckResult(
        NAME,
        Status.FAIL,
        f"the certificate in sip.tls.cert_file is for {names}, not for {host} "
        "(sip.advertised_host): peers that verify it will refuse the connection",
        "issue a certificate for that name, or set sip.advertised_host to a name it covers",
    )


def _ca_file(path: str, key: str) -> CheckResult | None:
    data, problem = _read(path, key)
    if problem is not None:
        return problem
    assert data is not None
    _, problem = _load_certs(data, path, key)
    return problem


def check_tls_files(config: GatewayConfig, now: datetime | None = None) -> list[CheckResult]:
    """The listener's certificate, key and CA files, and verification turned off."""
    tls = config.sip.tls
    now = now or datetime.now(UTC)
    results: list[CheckResult] = []
    if not tls.verify_server:
        results.append(
            CheckResult(
                NAME,
                Status.WARN,
                "sip.tls.verify_server = false: outbound TLS (registrations, trunks) accepts any "
                "certificate, so anyone on the path can read and change the calls' signalling "
                "and SRTP keys",
                "set sip.tls.verify_server = true and sip.tls.ca_file to the trunk's CA if it is "
                "not in the system store",
            )
        )
    if not tls.enabled:
        for i, reg in enumerate(config.registrations):
            if tls_target(reg.registrar) is not None:
                results.append(
                    CheckResult(
                        NAME,
                        Status.WARN,
                        f"registrations[{i}] ({reg.registrar}) registers over TLS but "
                        "sip.tls.enabled = false: our Contact names a TLS port nothing listens "
                        "on, so calls from that registrar cannot reach the gateway",
                        "set sip.tls.enabled = true with cert_file and key_file",
                    )
                )
    for key, path in (
        ("sip.tls.ca_file", tls.ca_file),
        ("sip.tls.client_ca_file", tls.client_ca_file),
    ):
        if path:
            problem = _ca_file(path, key)
            results.append(problem or CheckResult(NAME, Status.OK, f"{key}: {path} readable"))
    if not (tls.enabled or tls.cert_file or tls.key_file):
        return results  # no TLS configured: nothing to say (the report stays as it was)
    if not tls.cert_file or not tls.key_file:
        missing = "sip.tls.cert_file" if not tls.cert_file else "sip.tls.key_file"
        results.append(CheckResult(NAME, Status.FAIL, f"{missing}: not set", f"set {missing}"))
        return results
    cert_data, problem = _read(tls.cert_file, "sip.tls.cert_file")
    key_data, key_problem = _read(tls.key_file, "sip.tls.key_file")
    results += [p for p in (problem, key_problem) if p is not None]
    if cert_data is None:
        return results
    certs, problem = _load_certs(cert_data, tls.cert_file, "sip.tls.cert_file")
    if problem is not None:
        return [*results, problem]
    leaf = certs[0]
    results.append(_validity(leaf, tls.cert_file, now))
    if key_data is not None:
        results.append(_key_matches(leaf, key_data, tls.key_file))
    results.append(_hostname(leaf, config))
    if all(r.status is not Status.FAIL for r in results):
        # What OpenSSL itself says (chain order, key type) when the listener loads the pair.
        try:
            server_context(tls.server_settings())
        except TlsError as exc:
            results.append(CheckResult(NAME, Status.FAIL, f"sip.tls: {exc}", "fix the files named"))
    return results


def tls_target(registrar: str) -> tuple[str, int] | None:
    """(host, port) when a registrar URI asks for TLS (`sips:` or `;transport=tls`)."""
    from sip.uri import UriError, parse_uri

    try:
        uri = parse_uri(registrar)
    except UriError:
        return None
    transport = (uri.params.get("transport") or "").lower()
    if uri.scheme.lower() != "sips" and transport != "tls":
        return None
    return uri.host.strip("[]"), uri.port or 5061


async def _handshake(
    reg: RegistrationConfig,
    host: str,
    port: int,
    context: ssl.SSLContext,
    timeout: float,  # noqa: ASYNC109 (bounded by design)
) -> CheckResult:
    name = f"registration {reg.username}@{reg.registrar} (TLS)"
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        return CheckResult(
            name,
            Status.FAIL,
            f"{host}:{port} certificate does not verify: {exc.verify_message or exc}",
            "set sip.tls.ca_file to the CA that signs the registrar's certificate, or fix "
            "the registrar host name",
        )
    except (ssl.SSLError, OSError, TimeoutError) as exc:
        return CheckResult(
            name,
            Status.FAIL,
            f"no TLS handshake with {host}:{port}: {exc or 'timed out'}",
            "check the registrar host/port and that it speaks TLS 1.2+",
        )
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    return CheckResult(name, Status.OK, f"{host}:{port} verified ({version})")


async def check_registration_tls(
    config: GatewayConfig,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> list[CheckResult]:
    """A TLS handshake, with the gateway's client settings, to every registrar that asks for
    TLS; a certificate that does not verify fails (the registration would too)."""
    targets = [(reg, tls_target(reg.registrar)) for reg in config.registrations]
    targets = [(reg, t) for reg, t in targets if t is not None]
    if not targets:
        return []
    tls = config.sip.tls
    try:
        context = client_context(tls.client_settings())
    except TlsError as exc:
        return [CheckResult(NAME, Status.FAIL, f"sip.tls: {exc}", "fix sip.tls.ca_file")]
    return [await _handshake(reg, host, port, context, timeout) for reg, (host, port) in targets]
