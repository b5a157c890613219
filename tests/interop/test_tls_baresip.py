"""sip/tls.py's server context against a real TLS client (issue 13, first part): baresip dials
`;transport=tls` to a TLS listener built by this test from `server_context` (the transport does
not speak TLS yet). The INVITE arrives over TLS; with `verify_client` a baresip without a client
certificate is refused and one with a certificate from the CA is accepted (mutual TLS).
Under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
import uvloop

from sip.tls import TlsServerSettings, server_context
from tests.tools.baresip_secure import dial_command, write_config
from tests.tools.gateway_process import LOOPBACK
from tests.tools.media import MediaFiles
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log

pytestmark = pytest.mark.interop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


async def _first_request_or_refusal(
    settings: TlsServerSettings, port: int, start_caller: Callable[[], None]
) -> tuple[bytes, object, str]:
    """(request line, client certificate names, handshake error) of the first TLS connection."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[tuple[bytes, object, str]] = loop.create_future()
    context = server_context(settings)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The handshake is started here rather than by start_server(ssl=...), so that a
        # refused handshake raises where the test sees it (start_server drops it silently).
        try:
            await writer.start_tls(context)
            head = await reader.readuntil(b"\r\n\r\n")
            cert = writer.get_extra_info("peercert")
            if not outcome.done():
                outcome.set_result((head.split(b"\r\n", 1)[0], cert, ""))
        except (ssl.SSLError, asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            if not outcome.done():
                outcome.set_result((b"", None, repr(exc)))
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, LOOPBACK, port)
    try:
        start_caller()
        return await asyncio.wait_for(outcome, 20)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("case", ["tls", "mtls_no_cert", "mtls_with_cert"])
def test_baresip_over_tls(
    tmp_path: Path,
    ports: InteropPorts,
    media_dir: MediaFiles,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
    case: str,
    loop_name: str,
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

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        line, cert, error = runner.run(
            _first_request_or_refusal(settings, ports.gateway_sip, start_caller)
        )
    if case == "mtls_no_cert":
        assert line == b"", line
        assert error, "the handshake should have been refused"
        return
    assert line == f"INVITE {uri} SIP/2.0".encode(), (line, error)
    if case == "mtls_with_cert":
        assert cert["subjectAltName"] == (("DNS", "caller.example.test"),)
    else:
        assert cert is None
