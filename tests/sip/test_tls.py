"""sip/tls.py contexts: loopback handshakes with trustme certificates, under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
import uvloop
from cryptography import x509

from sip.tls import (
    ServerTls,
    TlsClientSettings,
    TlsError,
    TlsServerSettings,
    client_context,
    server_context,
)

HOST = "sip.example.test"
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.cert_file, self.key_file = self.issue("server", HOST)

    def _write(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return str(path)

    def issue(self, name: str, *hosts: str, ca: trustme.CA | None = None) -> tuple[str, str]:
        leaf = (ca or self.ca).issue_cert(*hosts)
        cert = self._write(f"{name}.crt", b"".join(p.bytes() for p in leaf.cert_chain_pems))
        key = self._write(f"{name}.key", leaf.private_key_pem.bytes())
        return cert, key

    def server(self, **kw) -> TlsServerSettings:
        return TlsServerSettings(self.cert_file, self.key_file, **kw)

    def client(self, **kw) -> TlsClientSettings:
        return TlsClientSettings(ca_file=self.ca_file, **kw)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def _exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str | None = HOST
) -> tuple[bytes, list]:
    """Connect, send one line, read the echo. Returns (echo, peer certs the server saw)."""
    seen: list = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            seen.append(writer.get_extra_info("peercert"))
            writer.write(line)
            await writer.drain()
        except (ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname
            ),
            10,
        )
        try:
            writer.write(b"OPTIONS\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.readline(), 10)
        finally:
            writer.close()
        return data, seen
    finally:
        server.close()
        await server.wait_closed()


def run(loop_name: str, coro):
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        return runner.run(coro)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_handshake_and_echo(pki: Pki, loop_name: str) -> None:
    data, seen = run(
        loop_name, _exchange(server_context(pki.server()), client_context(pki.client()))
    )
    assert data == b"OPTIONS\r\n"
    assert seen == [None]  # no client certificate asked for


@pytest.mark.parametrize("loop_name", LOOPS)
def test_mutual_tls_accepts_a_client_certificate(pki: Pki, loop_name: str) -> None:
    cert, key = pki.issue("client", "trunk.example.test")
    data, seen = run(
        loop_name,
        _exchange(
            server_context(pki.server(ca_file=pki.ca_file, verify_client=True)),
            client_context(pki.client(cert_file=cert, key_file=key)),
        ),
    )
    assert data == b"OPTIONS\r\n"
    assert seen[0]["subjectAltName"] == (("DNS", "trunk.example.test"),)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("client_cert", ["none", "other_ca"])
def test_mutual_tls_refuses_a_client_without_a_valid_certificate(
    pki: Pki, loop_name: str, client_cert: str
) -> None:
    kw = {}
    if client_cert == "other_ca":
        cert, key = pki.issue("rogue", "trunk.example.test", ca=trustme.CA())
        kw = {"cert_file": cert, "key_file": key}
    server_ctx = server_context(pki.server(ca_file=pki.ca_file, verify_client=True))
    # TLS 1.3 clients finish their side before the server checks the certificate: the refusal
    # is an alert on the first read (or EOF), never the echo.
    try:
        data, seen = run(loop_name, _exchange(server_ctx, client_context(pki.client(**kw))))
    except (ssl.SSLError, ConnectionError):
        return
    assert data == b""
    assert seen == []


@pytest.mark.parametrize("loop_name", LOOPS)
def test_wrong_hostname_fails(pki: Pki, loop_name: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        run(
            loop_name,
            _exchange(
                server_context(pki.server()),
                client_context(pki.client()),
                server_hostname="other.example.test",
            ),
        )


@pytest.mark.parametrize("loop_name", LOOPS)
def test_unknown_ca_fails_unless_verification_is_off(pki: Pki, loop_name: str) -> None:
    (pki.root / "other").mkdir()
    other = Pki(pki.root / "other")
    strict = client_context(TlsClientSettings(ca_file=other.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        run(loop_name, _exchange(server_context(pki.server()), strict))
    lax = client_context(TlsClientSettings(ca_file=other.ca_file, verify_server=False))
    data, _ = run(loop_name, _exchange(server_context(pki.server()), lax, "whatever"))
    assert data == b"OPTIONS\r\n"


def _tls11_contexts(pki: Pki) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A client offering TLS 1.1 at most, and a permissive server that accepts it (the control:
    it proves the client really speaks TLS 1.1 on this OpenSSL)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(pki.ca_file)
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            lax = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            lax.load_cert_chain(pki.cert_file, pki.key_file)
            lax.set_ciphers("DEFAULT:@SECLEVEL=0")
            lax.minimum_version = ssl.TLSVersion.TLSv1
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot build TLS 1.1 contexts")
    return old, lax


@pytest.mark.parametrize("loop_name", LOOPS)
def test_tls_1_1_client_is_refused(pki: Pki, loop_name: str) -> None:
    old, lax = _tls11_contexts(pki)
    try:
        data, _ = run(loop_name, _exchange(lax, old))
    except (ssl.SSLError, ConnectionError):
        pytest.skip("this OpenSSL does not speak TLS 1.1 at all")
    assert data == b"OPTIONS\r\n"  # the control: TLS 1.1 works against a lax server
    with pytest.raises((ssl.SSLError, ConnectionError)):
        run(loop_name, _exchange(server_context(pki.server()), old))


def test_contexts_are_tls12_plus_with_modern_ciphers(pki: Pki) -> None:
    for ctx in (server_context(pki.server()), client_context(pki.client())):
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
        names = [c["name"] for c in ctx.get_ciphers()]
        assert names
        assert not [n for n in names if "CBC" in n or "SHA1" in n or n.endswith("-SHA")]
        assert all("GCM" in n or "CHACHA20" in n for n in names)
    assert server_context(pki.server(min_version="1.3")).minimum_version is (ssl.TLSVersion.TLSv1_3)
    client = client_context(pki.client())
    assert client.check_hostname is True
    assert client.verify_mode is ssl.CERT_REQUIRED
    assert client_context(TlsClientSettings()).cert_store_stats()["x509_ca"] >= 0


def test_bad_files_raise_tls_error_naming_them(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsError, match=r"missing\.pem"):
        server_context(TlsServerSettings(str(tmp_path / "missing.pem"), pki.key_file))
    _, other_key = pki.issue("other", "x.example.test")
    with pytest.raises(TlsError, match="cannot load certificate"):
        server_context(TlsServerSettings(pki.cert_file, other_key))
    with pytest.raises(TlsError, match="verify_client needs ca_file"):
        server_context(pki.server(verify_client=True))
    with pytest.raises(TlsError, match="min_version"):
        server_context(pki.server(min_version="1.1"))
    with pytest.raises(TlsError, match="CA file"):
        client_context(TlsClientSettings(ca_file=str(tmp_path / "nope.pem")))
    with pytest.raises(TlsError, match="both cert_file and key_file"):
        client_context(pki.client(cert_file=pki.cert_file))


def test_reload_serves_the_new_certificate_and_keeps_the_old_on_error(
    pki: Pki, tmp_path: Path
) -> None:
    tls = ServerTls(pki.server())
    old_cert = Path(pki.cert_file).read_bytes()

    async def serial() -> int:
        """The serial number of the certificate a new connection is shown."""
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=tls.context)
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(pki.client()), server_hostname=HOST
            )
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            return x509.load_der_x509_certificate(der).serial_number
        finally:
            server.close()
            await server.wait_closed()

    first = asyncio.run(serial())
    pki.issue("server", HOST)  # renewed: same paths, new certificate
    assert Path(pki.cert_file).read_bytes() != old_cert
    tls.reload()
    second = asyncio.run(serial())
    assert second != first
    # A broken renewal (key of another certificate) is refused; the running pair stays.
    _, wrong_key = pki.issue("unrelated", HOST)
    with pytest.raises(TlsError):
        tls.reload(TlsServerSettings(pki.cert_file, wrong_key))
    assert asyncio.run(serial()) == second
    # verify_client is applied on reload.
    tls.reload(pki.server(ca_file=pki.ca_file, verify_client=True))
    assert tls.context.verify_mode is ssl.CERT_REQUIRED


@pytest.mark.parametrize("key_type", [trustme.KeyType.ECDSA, trustme.KeyType.RSA])
def test_tls_1_2_client_gets_a_forward_secret_aead_cipher(tmp_path: Path, key_type) -> None:
    """Peers still on TLS 1.2 (older PBXs and SBCs) connect with either key type and get one of
    TLS12_CIPHERS."""
    ca = trustme.CA(key_type=key_type)
    leaf = ca.issue_cert(HOST, key_type=key_type)
    cert, key, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    ca_file.write_bytes(ca.cert_pem.bytes())
    client = client_context(TlsClientSettings(ca_file=str(ca_file)))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    server = server_context(TlsServerSettings(str(cert), str(key)))

    async def cipher() -> tuple[str, str]:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server)
        port = srv.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname=HOST
            )
            name, version, _ = writer.get_extra_info("cipher")
            writer.close()
            return name, version
        finally:
            srv.close()
            await srv.wait_closed()

    name, version = asyncio.run(cipher())
    assert version == "TLSv1.2"
    assert name.startswith(("ECDHE-", "DHE-"))
    assert "GCM" in name or "CHACHA20" in name
