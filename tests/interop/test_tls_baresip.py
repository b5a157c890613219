"""sip/tls.py's server context against a real TLS client (issue 13, first part): baresip dials
`;transport=tls` to a TLS listener built by this test from `server_context` (the context alone;
the gateway's own listener is tested through `run` in tests/e2e/test_tls_srtp.py). The INVITE arrives over TLS; with `verify_client` a baresip without a client
certificate is refused and one with a certificate from the CA is accepted (mutual TLS)."""

from __future__ import annotations

import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from sip.tls import TlsServerSettings, server_context
from tests.tools.baresip_secure import dial_command, write_config
from tests.tools.gateway_process import LOOPBACK
from tests.tools.media import MediaFiles
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log

pytestmark = pytest.mark.interop


def _first_request_or_refusal(
    settings: TlsServerSettings, port: int, start_caller: Callable[[], None]
) -> tuple[bytes, object, str]:
    """(request line, client certificate, handshake error) of the first TLS connection.

    Blocking sockets on purpose: accepting in clear and upgrading with asyncio's start_tls
    hung now and then under uvloop (start_tls never finished; not diagnosed, possibly the
    ClientHello read into the stream before the upgrade), and
    start_server(ssl=...) drops a refused handshake without telling the test. The event loops
    are covered by tests/sip/test_tls.py."""
    context = server_context(settings)
    with socket.create_server((LOOPBACK, port)) as listener:
        listener.settimeout(20)
        start_caller()
        conn, _ = listener.accept()
        conn.settimeout(20)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return head, None, "closed before a whole request"
                    head += chunk
                return head.split(b"\r\n", 1)[0], tls.getpeercert(), ""
        except (ssl.SSLError, ConnectionError) as exc:
            return b"", None, repr(exc)


@pytest.mark.parametrize("case", ["tls", "mtls_no_cert", "mtls_with_cert"])
def test_baresip_over_tls(
    tmp_path: Path,
    ports: InteropPorts,
    media_dir: MediaFiles,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
    case: str,
) -> None:
    require_peer("baresip")
    ca = trustme.CA()
    leaf = ca.issue_cert(LOOPBACK)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "gw.crt", tmp_path / "gw.key"
    ca_file.write_bytes(ca.cert_pem.bytes())
    cert_file.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    client_pem = None
    if case == "mtls_with_cert":
        caller = ca.issue_cert("caller.example.test")
        client_pem = tmp_path / "caller.pem"
        client_pem.write_bytes(
            caller.private_key_pem.bytes() + b"".join(p.bytes() for p in caller.cert_chain_pems)
        )
    mutual = case != "tls"
    settings = TlsServerSettings(
        str(cert_file), str(key_file), str(ca_file) if mutual else "", mutual
    )
    config_dir = write_config(
        tmp_path, ports, media_dir.padded_wav, ca_file=ca_file, certificate=client_pem
    )
    uri = f"sip:gw@{LOOPBACK}:{ports.gateway_sip};transport=tls"

    def start_caller() -> None:
        process = ManagedProcess(
            "baresip",
            dial_command(config_dir, uri, 3),
            cwd=tmp_path,
            log_path=tmp_path / "baresip.log",
            # Its INVITE is never answered; on SIGTERM baresip waits out the transaction
            # (about 12 s). Nothing of it is checked after the request arrived.
            stop_signal=signal.SIGKILL,
        )
        interop_processes.append(process)
        attach_log(request, "baresip output", process.output)

    line, cert, error = _first_request_or_refusal(settings, ports.gateway_sip, start_caller)
    if case == "mtls_no_cert":
        assert line == b"", line
        assert error, "the handshake should have been refused"
        return
    assert line == f"INVITE {uri} SIP/2.0".encode(), (line, error)
    if case == "mtls_with_cert":
        assert cert["subjectAltName"] == (("DNS", "caller.example.test"),)
    else:
        assert cert is None
