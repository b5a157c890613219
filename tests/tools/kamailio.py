"""The one Kamailio launcher: every test that needs Kamailio (the digest registrar of
tests/interop/kamailio/, the shipped dispatcher of deploy/kamailio/) starts it through here.

The configuration files are templated with -A defines (`#!ifndef NAME` in each .cfg), never
edited: listen address, db_text directory, dispatcher list, control socket. Kamailio runs in
the foreground (-DD -E: the PID held is the main process, its log goes to the output file), is
ready once an OPTIONS to the proxy itself is answered (both configs answer it locally), and
is stopped by PID.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tools.gateway_process import LOOPBACK, REPO_ROOT
from tests.tools.peers import which_peer
from tests.tools.process import ManagedProcess, attach_log, tail
from tests.tools.wait import wait_until

REGISTRAR_CFG = REPO_ROOT / "tests" / "interop" / "kamailio" / "kamailio.cfg"
REGISTRAR_DBTEXT = REPO_ROOT / "tests" / "interop" / "kamailio" / "dbtext"
DISPATCHER_CFG = REPO_ROOT / "deploy" / "kamailio" / "kamailio.cfg"

KAMAILIO_USER = "gateway"
KAMAILIO_PASSWORD = "secret"
READY_TIMEOUT_S = 15.0


def subscriber_row(user: str, domain: str, password: str) -> str:
    # auth_db compares against ha1 = MD5(user:realm:password) (RFC 2617 3.2.2.2) and
    # ha1b = MD5(user@domain:realm:password); the realm is the From domain ($fd).
    ha1 = hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()
    ha1b = hashlib.md5(f"{user}@{domain}:{domain}:{password}".encode()).hexdigest()
    return f"1:{user}:{domain}:{password}:{ha1}:{ha1b}\n"


def check_config(config: Path, defines: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`kamailio -c`: parse the configuration (with its defines) and exit."""
    args = [which_peer("kamailio"), "-c", "-f", str(config)]
    for define in defines:
        args += ["-A", define]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@dataclass(frozen=True)
class KamailioTls:
    """Kamailio's TLS listener: its certificate and key, and the CAs it trusts as a client
    (relaying to a TLS contact) and for client certificates (not required)."""

    port: int
    cert_file: Path
    key_file: Path
    ca_file: Path

    def defines(self, work_dir: Path) -> tuple[str, ...]:
        config = work_dir / "tls.cfg"
        work_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "[server:default]\n"
            "method = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            f"private_key = {self.key_file}\ncertificate = {self.cert_file}\n"
            f"ca_list = {self.ca_file}\n\n"
            "[client:default]\n"
            "method = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n"
            f"ca_list = {self.ca_file}\n"
        )
        return ("WITH_TLS", f"TLS_LISTEN=tls:{LOOPBACK}:{self.port}", f'TLS_CFG="{config}"')


class Kamailio:
    """One Kamailio instance on LOOPBACK:`port`; `restart()` starts a new run (usrloc is in
    memory only, so a restart drops every binding). Build it with `registrar()` or
    `dispatcher()`."""

    def __init__(
        self,
        work_dir: Path,
        port: int,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest | None = None,
        *,
        config: Path,
        defines: Sequence[str] = (),
        children: int = 2,
        shm_mb: int = 64,
        pkg_mb: int = 8,
        name: str = "kamailio",
    ) -> None:
        self.work_dir = work_dir
        self.port = port
        self.processes = processes
        self.request = request
        self.config = config
        self.defines = tuple(defines)
        self.children = children
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.name = name
        self.db_dir: Path | None = None  # the registrar's db_text tables
        self.process: ManagedProcess | None = None
        self._starts = 0
        self.run_dir = work_dir / "run"
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def registrar(
        cls,
        work_dir: Path,
        port: int,
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest | None = None,
        *,
        tls: KamailioTls | None = None,
    ) -> Kamailio:
        """tests/interop/kamailio/kamailio.cfg: a digest registrar (auth_db over db_text) and
        record-routing proxy with one subscriber, KAMAILIO_USER / KAMAILIO_PASSWORD; with
        `tls`, also a TLS listener (its tls module)."""
        db_dir = work_dir / "dbtext"
        db_dir.mkdir(parents=True)
        # db_text wants the table files in one directory; the subscriber row is computed so
        # its digests always match the password the test gives the gateway.
        shutil.copy(REGISTRAR_DBTEXT / "version", db_dir / "version")
        header = (REGISTRAR_DBTEXT / "subscriber").read_text().splitlines()[0]
        (db_dir / "subscriber").write_text(
            header + "\n" + subscriber_row(KAMAILIO_USER, LOOPBACK, KAMAILIO_PASSWORD)
        )
        proxy = cls(
            work_dir,
            port,
            processes,
            request,
            config=REGISTRAR_CFG,
            defines=(f'DBURL="text://{db_dir}"', *(tls.defines(work_dir) if tls else ())),
        )
        proxy.db_dir = db_dir
        return proxy

    @classmethod
    def dispatcher(
        cls,
        work_dir: Path,
        port: int,
        destinations: Sequence[str],
        processes: list[ManagedProcess],
        request: pytest.FixtureRequest | None = None,
        defines: Sequence[str] = (),
    ) -> Kamailio:
        """deploy/kamailio/kamailio.cfg as shipped, in front of `destinations` ("host:port",
        set 1, in order); `defines` override more of its #!ifndef values (DS_ALG,
        FR_INV_TIMER)."""
        ds_list = work_dir / "dispatcher.list"
        work_dir.mkdir(parents=True, exist_ok=True)
        ds_list.write_text(
            "".join(f"1 sip:{d} 0 0 duid=gw{i}\n" for i, d in enumerate(destinations, 1))
        )
        run_dir = work_dir / "run"
        return cls(
            work_dir,
            port,
            processes,
            request,
            config=DISPATCHER_CFG,
            defines=(
                f'DISPATCHER_LIST="{ds_list}"',
                f'CTL_SOCKET="unix:{run_dir / "ctl"}"',
                *defines,
            ),
            children=1,
            shm_mb=32,
            name="kamailio dispatcher",
        )

    @property
    def uri(self) -> str:
        return f"sip:{LOOPBACK}:{self.port}"

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        self._starts += 1
        args = [
            which_peer("kamailio"),
            "-f", str(self.config),
            "-DD", "-E",  # foreground, log to stderr: the PID we hold is the main process
            "-n", str(self.children), "-m", str(self.shm_mb), "-M", str(self.pkg_mb),
            "-Y", str(self.run_dir),
            "-A", f"SIP_LISTEN=udp:{LOOPBACK}:{self.port}",
        ]  # fmt: skip
        for define in self.defines:
            args += ["-A", define]
        self.process = ManagedProcess(
            f"{self.name}#{self._starts}",
            args,
            cwd=self.work_dir,
            log_path=self.work_dir / f"kamailio{self._starts}.log",
        )
        self.processes.append(self.process)
        if self.request is not None:
            attach_log(self.request, f"{self.name} run {self._starts}", self.process.output)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Ready when an OPTIONS keepalive to the proxy itself is answered."""
        deadline = time.monotonic() + timeout
        attempt = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK, 0))
            probe.settimeout(0.3)
            local_port = probe.getsockname()[1]
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"kamailio exited with rc {self.process.returncode}:\n"
                        + tail(self.process.output(), 40)
                    )
                attempt += 1
                probe.sendto(_options_probe(self.port, local_port, attempt), (LOOPBACK, self.port))
                with contextlib.suppress(TimeoutError):
                    data = probe.recv(4096)
                    if data.startswith(b"SIP/2.0 200"):
                        return
        raise RuntimeError(f"kamailio not answering OPTIONS on {LOOPBACK}:{self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        """Output of the current run only (each start writes a new log)."""
        return self.process.output() if self.process is not None else ""

    def wait_log(self, text: str, timeout: float) -> float:
        """Wait until the current run logged `text`; returns the seconds waited."""
        started = time.monotonic()
        wait_until(
            lambda: text in self.log_text(),
            timeout,
            lambda: f"kamailio logging {text!r}:\n" + tail(self.log_text(), 40),
            interval=0.1,
        )
        return time.monotonic() - started


def _options_probe(port: int, local_port: int, attempt: int) -> bytes:
    return (
        f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bK-probe-{attempt}\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag=probe{attempt}\r\n"
        f"To: <sip:{LOOPBACK}:{port}>\r\n"
        f"Call-ID: probe-{attempt}@{LOOPBACK}\r\n"
        f"CSeq: {attempt} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
