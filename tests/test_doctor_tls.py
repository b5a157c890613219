"""gateway/doctor/tls.py: certificate problems and verification, with trustme-made certificates."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from gateway.config import GatewayConfig, RegistrationConfig, TlsConfig
from gateway.doctor.results import Status
from gateway.doctor.run import run_checks
from gateway.doctor.tls import check_registration_tls, check_tls_files, tls_target
from sip.tls import TlsServerSettings, server_context

HOST = "gw.example.test"
NOW = datetime(2026, 12, 6, tzinfo=UTC)


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.ca_file = self.write("ca.pem", self.ca.cert_pem.bytes())

    def write(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return str(path)

    def leaf(self, name: str, *hosts: str, **kw) -> tuple[str, str]:
        leaf = self.ca.issue_cert(*hosts, **kw)
        cert = self.write(f"{name}.crt", b"".join(p.bytes() for p in leaf.cert_chain_pems))
        key = self.write(f"{name}.key", leaf.private_key_pem.bytes())
        return cert, key


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def config_with(advertised_host: str = HOST, **tls) -> GatewayConfig:
    base = GatewayConfig()
    return replace(
        base, sip=replace(base.sip, advertised_host=advertised_host, tls=TlsConfig(**tls))
    )


def statuses(results) -> list[tuple[Status, str]]:
    return [(r.status, r.message) for r in results]


def failures(results) -> list[str]:
    return [r.message for r in results if r.status is Status.FAIL]


def test_nothing_configured_says_nothing() -> None:
    assert check_tls_files(GatewayConfig()) == []


def test_good_certificate_is_ok(files: Files) -> None:
    cert, key = files.leaf("gw", HOST, not_after=datetime(2027, 12, 1, tzinfo=UTC))
    results = check_tls_files(config_with(cert_file=cert, key_file=key), now=NOW)
    assert [r.status for r in results] == [Status.OK] * 3, statuses(results)
    assert "valid until 2027-12-01" in results[0].message
    assert "matches the certificate" in results[1].message
    assert f"covers {HOST}" in results[2].message


def test_expired_certificate_fails(files: Files) -> None:
    cert, key = files.leaf(
        "old",
        HOST,
        not_before=datetime(2025, 1, 1, tzinfo=UTC),
        not_after=datetime(2026, 1, 1, tzinfo=UTC),
    )
    results = check_tls_files(config_with(cert_file=cert, key_file=key), now=NOW)
    assert [m for m in failures(results) if "expired on 2026-01-01" in m]
    assert "renew" in results[0].fix


def test_not_yet_valid_certificate_fails(files: Files) -> None:
    cert, key = files.leaf(
        "future",
        HOST,
        not_before=NOW + timedelta(days=2),
        not_after=NOW + timedelta(days=400),
    )
    results = check_tls_files(config_with(cert_file=cert, key_file=key), now=NOW)
    assert [m for m in failures(results) if "is not valid before" in m]


def test_certificate_expiring_within_30_days_warns(files: Files) -> None:
    cert, key = files.leaf("soon", HOST, not_after=NOW + timedelta(days=12, hours=1))
    results = check_tls_files(config_with(cert_file=cert, key_file=key), now=NOW)
    assert results[0].status is Status.WARN
    assert "(in 12 days)" in results[0].message
    assert not failures(results)


def test_key_of_another_certificate_fails(files: Files) -> None:
    cert, _ = files.leaf("gw", HOST)
    _, other_key = files.leaf("other", HOST)
    results = check_tls_files(config_with(cert_file=cert, key_file=other_key))
    assert any("is not the key of the certificate" in m for m in failures(results))


def test_key_file_that_is_not_a_key_fails(files: Files) -> None:
    cert, _ = files.leaf("gw", HOST)
    results = check_tls_files(config_with(cert_file=cert, key_file=cert))
    assert any("is not an unencrypted PEM private key" in m for m in failures(results))


def test_unreadable_and_non_pem_files_fail(files: Files, tmp_path: Path) -> None:
    results = check_tls_files(
        config_with(cert_file=str(tmp_path / "none.crt"), key_file=str(tmp_path / "none.key"))
    )
    messages = failures(results)
    assert any(m.startswith("sip.tls.cert_file: cannot read") for m in messages)
    assert any(m.startswith("sip.tls.key_file: cannot read") for m in messages)
    garbage = files.write("garbage.crt", b"not a certificate\n")
    _, key = files.leaf("gw", HOST)
    results = check_tls_files(config_with(cert_file=garbage, key_file=key))
    assert any("holds no PEM certificate" in m for m in failures(results))


@pytest.mark.parametrize(
    ("names", "advertised", "ok"),
    [
        ((HOST,), HOST, True),
        ((HOST,), "GW.Example.Test.", True),
        (("*.example.test",), HOST, True),
        (("*.example.test",), "a.b.example.test", False),
        (("other.example.test",), HOST, False),
        (("192.0.2.10",), "192.0.2.10", True),
        ((HOST,), "192.0.2.10", False),
        (("2001:db8::1",), "[2001:db8::1]", True),
    ],
)
def test_certificate_must_cover_the_advertised_host(
    files: Files, names: tuple[str, ...], advertised: str, ok: bool
) -> None:
    cert, key = files.leaf("gw", *names)
    results = check_tls_files(config_with(advertised, cert_file=cert, key_file=key))
    host_result = results[2]
    assert (host_result.status is Status.OK) is ok, statuses(results)
    if not ok:
        assert "(sip.advertised_host)" in host_result.message
        assert names[0] in host_result.message


def test_no_advertised_host_is_a_warning(files: Files) -> None:
    cert, key = files.leaf("gw", HOST)
    results = check_tls_files(config_with("", cert_file=cert, key_file=key))
    assert results[2].status is Status.WARN
    assert "sip.advertised_host is not set" in results[2].message


def test_verification_off_is_a_warning_and_ca_files_are_read(files: Files, tmp_path: Path) -> None:
    results = check_tls_files(config_with(verify_server=False, ca_file=files.ca_file))
    assert results[0].status is Status.WARN
    assert "sip.tls.verify_server = false" in results[0].message
    assert results[1].status is Status.OK
    results = check_tls_files(config_with(client_ca_file=str(tmp_path / "missing-ca.pem")))
    assert failures(results) and "sip.tls.client_ca_file: cannot read" in failures(results)[0]


@pytest.mark.parametrize(
    ("registrar", "target"),
    [
        ("sips:pbx.example.test", ("pbx.example.test", 5061)),
        ("sip:pbx.example.test:5071;transport=tls", ("pbx.example.test", 5071)),
        ("sip:pbx.example.test;transport=TLS", ("pbx.example.test", 5061)),
        ("sips:[2001:db8::5]:5062", ("2001:db8::5", 5062)),
        ("sip:pbx.example.test", None),
        ("sip:pbx.example.test;transport=tcp", None),
    ],
)
def test_tls_target(registrar: str, target) -> None:
    assert tls_target(registrar) == target


async def _registrar_tls_server(files: Files):
    cert, key = files.leaf("registrar", "127.0.0.1")
    ctx = server_context(TlsServerSettings(cert, key))

    async def close(reader, writer) -> None:
        writer.close()

    return await asyncio.start_server(close, "127.0.0.1", 0, ssl=ctx)


def _with_registration(config: GatewayConfig, port: int) -> GatewayConfig:
    reg = RegistrationConfig(registrar=f"sips:127.0.0.1:{port}", username="gw")
    return replace(config, registrations=(reg,))


async def test_registration_tls_server_verified_or_not(files: Files) -> None:
    server = await _registrar_tls_server(files)
    port = server.sockets[0].getsockname()[1]
    try:
        good = _with_registration(config_with(ca_file=files.ca_file), port)
        [result] = await check_registration_tls(good, timeout=5)
        assert result.status is Status.OK, result
        assert "verified (TLSv1.3)" in result.message or "verified (TLSv1.2)" in result.message

        (files.root / "stranger").mkdir()
        stranger = Files(files.root / "stranger")  # a CA that did not sign the registrar
        bad = _with_registration(config_with(ca_file=stranger.ca_file), port)
        [result] = await check_registration_tls(bad, timeout=5)
        assert result.status is Status.FAIL
        assert "certificate does not verify" in result.message
        assert "sip.tls.ca_file" in result.fix
    finally:
        server.close()
        await server.wait_closed()


async def test_run_checks_appends_the_tls_checks_at_the_end(files: Files) -> None:
    cert, key = files.leaf("gw", "other.example.test")
    config = config_with(cert_file=cert, key_file=key)
    results = await run_checks(config, realtime=False, registrations=False, timeout=2)
    tls_results = [r for r in results if r.name == "SIP TLS"]
    assert tls_results == results[-len(tls_results) :]
    assert any("not for gw.example.test" in r.message for r in tls_results)


def test_a_tls_registration_without_the_listener_is_a_warning() -> None:
    config = replace(
        GatewayConfig(),
        registrations=(
            RegistrationConfig("sips:pbx.example.com", "100"),
            RegistrationConfig("sip:plain.example.com", "200"),
        ),
    )
    results = check_tls_files(config)
    warned = [r.message for r in results if r.status is Status.WARN]
    assert len(warned) == 1 and warned[0].startswith("registrations[0] (sips:pbx.example.com)")
    assert "sip.tls.enabled = false" in warned[0]
