"""The gateway behind Kamailio over TLS (issue 13): it registers over TLS (digest auth, its
`[sip.tls] ca_file` verifying Kamailio's certificate), and baresip calls it through Kamailio
over TLS with SRTP required. Kamailio runs its tls module with trustme certificates written
by the test (tests/tools/kamailio.py KamailioTls); media goes straight between baresip and
the gateway (echo mode), encrypted both ways. A registrar whose certificate does not verify
is refused and reported."""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.tools.baresip_secure import dial_command, require_baresip_srtp, write_config
from tests.tools.gateway_process import (
    LOOPBACK,
    REPO_ROOT,
    GatewayProcess,
    hermetic_env,
    python_executable,
)
from tests.tools.kamailio import KAMAILIO_PASSWORD, KAMAILIO_USER, Kamailio, KamailioTls
from tests.tools.media import MediaFiles
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess, attach_log

pytestmark = pytest.mark.interop

TLS_MODULE = "/usr/lib/*/kamailio/modules/tls.so"
CALL_S = 5


def require_kamailio_tls() -> None:
    require_peer("kamailio")
    if not glob.glob(TLS_MODULE):
        require_peer(f"kamailio tls module ({TLS_MODULE}: kamailio-tls-modules)")


def _pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) for 127.0.0.1: Kamailio and the gateway present the same one."""
    ca = trustme.CA()
    leaf = ca.issue_cert(LOOPBACK)
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "host.crt", tmp_path / "host.key"
    ca_file.write_bytes(ca.cert_pem.bytes())
    cert_file.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key_file.write_bytes(leaf.private_key_pem.bytes())
    return ca_file, cert_file, key_file


def _kamailio(
    tmp_path: Path,
    ports: InteropPorts,
    processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
    pki: tuple[Path, Path, Path],
) -> Kamailio:
    ca_file, cert_file, key_file = pki
    proxy = Kamailio.registrar(
        tmp_path / "kamailio",
        ports.kamailio_sip,
        processes,
        request,
        tls=KamailioTls(ports.kamailio_tls, cert_file, key_file, ca_file),
    )
    proxy.start()
    return proxy


def _registration(ports: InteropPorts) -> dict[str, object]:
    return {
        "registrar": f"sip:{LOOPBACK}:{ports.kamailio_tls};transport=tls",
        "username": KAMAILIO_USER,
        "password": KAMAILIO_PASSWORD,
        "expires": 60,
    }


def test_registers_over_tls_and_a_tls_srtp_call_through_kamailio_reaches_it(
    gateway,
    ports: InteropPorts,
    media_dir: MediaFiles,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    require_kamailio_tls()
    require_baresip_srtp()
    pki = _pki(tmp_path)
    ca_file, cert_file, key_file = pki
    kamailio = _kamailio(tmp_path, ports, interop_processes, request, pki)
    gw: GatewayProcess = gateway(
        {
            "sip": {
                "tls": {
                    "enabled": True,
                    "port": ports.gateway_tls,
                    "cert_file": str(cert_file),
                    "key_file": str(key_file),
                    "ca_file": str(ca_file),
                }
            },
            "media": {"srtp": "required"},
            "registrations": [_registration(ports)],
        }
    )
    gw.wait_event("registration.ok", timeout=15)
    assert not gw.find("registration.failed"), gw.log_tail()
    kamailio.wait_log("REGISTER ok", timeout=5)
    binding = re.search(r"REGISTER ok: \S+ -> (\S+)", kamailio.log_text())
    assert binding and ";transport=tls" in binding.group(1), kamailio.log_text()[-2000:]

    work = tmp_path / "baresip"
    config_dir = write_config(work, ports, media_dir.padded_wav, srtp=True, ca_file=ca_file)
    uri = f"sip:{KAMAILIO_USER}@{LOOPBACK}:{ports.kamailio_tls};transport=tls"
    process = ManagedProcess(
        "baresip", dial_command(config_dir, uri, CALL_S), cwd=work, log_path=work / "baresip.log"
    )
    interop_processes.append(process)
    attach_log(request, "baresip output", process.output)
    rc = process.wait(timeout=CALL_S + 25)
    log = process.output()
    assert rc == 0, log[-3000:] + "\n--- kamailio ---\n" + kamailio.log_text()[-3000:]
    assert "Call established" in log, log[-3000:]

    offered = gw.wait_event("call.offered")
    assert (offered["transport"], offered["srtp"]) == ("tls", "required"), offered
    assert offered["source"].startswith(f"{LOOPBACK}:"), offered
    ended = gw.wait_event("call.ended", call_id=offered["call_id"], timeout=15)
    assert ended["cause"] == "remote_bye", ended
    rtp = ended["rtp"]
    assert rtp["packets_received"] >= 50, rtp
    assert (rtp["srtp_auth_failed"], rtp["srtp_replayed"]) == (0, 0), rtp
    # The INVITE went through Kamailio, relayed to the gateway's TLS contact.
    assert re.search(r"lookup ok: INVITE relayed to \S+;transport=tls", kamailio.log_text())
    # baresip decrypted the echo without errors.
    packets = re.search(r"packets:\s+(\d+)\s+(\d+)", log)
    errors = re.search(r"errors:\s+(\d+)\s+(\d+)", log)
    assert packets and errors, log[-3000:]
    assert int(packets.group(2)) >= 50, log[-3000:]
    assert errors.groups() == ("0", "0"), log[-3000:]


def test_a_registrar_whose_certificate_does_not_verify_is_refused_and_reported(
    gateway,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The gateway trusts another CA than the one that signed Kamailio's certificate: no
    REGISTER goes out in clear, the registration fails naming the certificate problem."""
    require_kamailio_tls()
    _kamailio(tmp_path, ports, interop_processes, request, _pki(tmp_path))
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(trustme.CA().cert_pem.bytes())
    gw: GatewayProcess = gateway(
        {
            "sip": {"tls": {"ca_file": str(other_ca)}},
            "registrations": [_registration(ports)],
        }
    )
    failed = gw.wait_event("registration.failed", timeout=20)
    assert failed["reason"].startswith(
        "cannot reach registrar over TLS: certificate verification failed"
    ), failed
    assert gw.find("sip.tls_connect_failed"), gw.log_tail()
    # `check` reports it too, before anyone has to read the gateway's log.
    done = subprocess.run(
        [python_executable(), "-m", "gateway", "check", "--config", str(gw.config_path),
         "--skip-realtime"],
        cwd=REPO_ROOT, env=hermetic_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(
        (line for line in done.stdout.splitlines() if "(TLS)" in line and "registration" in line),
        "",
    )
    assert "certificate does not verify" in line, done.stdout
