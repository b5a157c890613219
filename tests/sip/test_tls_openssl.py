"""A real TLS peer against the UA (issue 13): `openssl s_client` sends an OPTIONS over TLS and
reads the 200; a TLS 1.1-only client and, with mutual TLS, a client without a certificate are
refused. (The installed SIPp has no TLS: `sipp -t l1` says it was built without OpenSSL.)"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from sip.transport import Transport
from sip.useragent import UserAgent
from tests.sip.conftest import Pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")


def _options(port: int) -> bytes:
    return (
        f"OPTIONS sip:gateway@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-openssl-1\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:gateway@127.0.0.1>\r\n"
        "Call-ID: openssl-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def _s_client(port: int, ca: Path, *extra: str, stdin: bytes) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        str(ca),
        "-verify_return_error",
        "-quiet",
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    await proc.stdin.drain()
    out = b""
    try:
        async with asyncio.timeout(10):
            while b"SIP/2.0 " not in out or b"\r\n\r\n" not in out.split(b"SIP/2.0 ", 1)[1]:
                chunk = await proc.stdout.read(4096)
                if not chunk:
                    break
                out += chunk
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return proc.returncode or 0, out


async def _ua(pki: Pki, require_client_cert: bool = False) -> UserAgent:
    transport = Transport(
        "127.0.0.1", 0, tls_context=pki.server(require_client_cert=require_client_cert), tls_port=0
    )
    ua = UserAgent(transport)
    await ua.start()
    return ua


async def test_openssl_s_client_gets_200_for_options(pki: Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    ua = await _ua(pki)
    try:
        port = ua.transport.tls_port  # type: ignore[attr-defined]
        _, out = await _s_client(port, ca, stdin=_options(port))
        assert b"SIP/2.0 200 OK" in out, out
        assert b";transport=tls>" in out and f":{port}".encode() in out
    finally:
        await ua.close()


async def test_openssl_tls_1_1_client_is_refused(pki: Pki, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    ua = await _ua(pki)
    try:
        port = ua.transport.tls_port  # type: ignore[attr-defined]
        _, out = await _s_client(port, ca, "-tls1_1", stdin=_options(port))
        assert b"SIP/2.0" not in out
    finally:
        await ua.close()


async def test_openssl_client_without_certificate_refused_by_mutual_tls(
    pki: Pki, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    ua = await _ua(pki, require_client_cert=True)
    try:
        port = ua.transport.tls_port  # type: ignore[attr-defined]
        _, out = await _s_client(port, ca, stdin=_options(port))
        assert b"SIP/2.0" not in out
        counters = ua.transport.counters  # type: ignore[attr-defined]
        async with asyncio.timeout(5):
            while counters.tls_handshake_failures != 1:  # noqa: ASYNC110 - a plain counter
                await asyncio.sleep(0.01)
        # With the CA-issued client certificate it gets in.
        key = tmp_path / "client.pem"
        pki.client_cert.private_key_and_cert_chain_pem.write_to_path(str(key))
        _, out = await _s_client(port, ca, "-cert", str(key), stdin=_options(port))
        assert b"SIP/2.0 200 OK" in out, out
    finally:
        await ua.close()
