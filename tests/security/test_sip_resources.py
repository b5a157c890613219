"""SIP resource exhaustion against `python -m gateway run` (issue 9, bounded resources).

Each test floods or starves the real product on loopback and checks the defence: out-of-dialog
OPTIONS leave no server transaction behind, a slowloris TCP connection is closed after
`sip.tcp_message_deadline_s` while a legitimate SIPp call over UDP completes, connections past
`sip.tcp_max_connections_per_source` are closed at once, and a huge header block or
Content-Length is refused without reading it all. The gateway runs under uvloop (gateway/cli.py),
so every TCP test here also covers issue 10 (TCP failed on every connection under uvloop).
Counts come from /metrics, read with the control API token set explicitly.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest

from tests.tools.gateway_process import LOOPBACK, GatewayProcess
from tests.tools.sipp import Sipp
from tests.tools.wait import wait_until

pytestmark = pytest.mark.interop

TOKEN_ENV = "SIPRES_TEST_CONTROL_TOKEN"


@pytest.fixture
def control_token(monkeypatch: pytest.MonkeyPatch) -> str:
    token = secrets.token_hex(16)
    # The gateway subprocess inherits the environment (minus SRG_*): token_env names it.
    monkeypatch.setenv(TOKEN_ENV, token)
    return token


def _config(**sip: object) -> dict[str, object]:
    return {"sip": dict(sip), "control": {"token_env": TOKEN_ENV}}


def _metrics(gw: GatewayProcess, token: str) -> dict[str, float]:
    url = gw.find("gateway.started")[0]["control"]
    request = urllib.request.Request(
        url.rstrip("/") + "/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(srg_sip_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def _metrics_when(
    gw: GatewayProcess, token: str, ready: Callable[[dict[str, float]], bool]
) -> dict[str, float]:
    """/metrics once `ready` holds (polled: the gateway may still be reading its socket); after
    10 s the last values, for the caller's assertion to show."""
    values: dict[str, float] = {}

    def scrape() -> bool:
        nonlocal values
        values = _metrics(gw, token)
        return ready(values)

    with contextlib.suppress(AssertionError):
        wait_until(scrape, 10, "metrics", interval=0.1)
    return values


def _options(call_id: str, port: int, proto: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:gateway@{LOOPBACK} SIP/2.0\r\n"
        f"Via: SIP/2.0/{proto} {LOOPBACK}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@{LOOPBACK}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:gateway@{LOOPBACK}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _closed_by_gateway(sock: socket.socket, timeout: float) -> bool:
    """True when the gateway closed the stream (EOF or reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _tcp(gw: GatewayProcess, source: str = LOOPBACK) -> socket.socket:
    sock = socket.create_connection(
        (LOOPBACK, gw.ports.gateway_sip), timeout=5, source_address=(source, 0)
    )
    return sock


def _options_over_tcp(sock: socket.socket) -> bytes:
    sock.sendall(_options(f"tcp-{secrets.token_hex(4)}", sock.getsockname()[1], "TCP"))
    sock.settimeout(5)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


def test_options_flood_leaves_no_server_transactions(gateway, control_token: str) -> None:
    gw = gateway(_config())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    answered = 0
    # 2000 distinct OPTIONS (a scanner or a misconfigured qualify), in bursts of 50 read back
    # before the next burst so the socket buffers do not decide the outcome.
    for burst in range(40):
        for n in range(50):
            sock.sendto(_options(f"flood-{burst}-{n}", port), (LOOPBACK, gw.ports.gateway_sip))
        sock.settimeout(5)
        for _ in range(50):
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                break
            if reply.startswith(b"SIP/2.0 200"):
                answered += 1
    sock.close()
    assert answered >= 1900, answered
    values = _metrics(gw, control_token)
    assert values["srg_sip_options_stateless_total"] >= answered
    # Stateless: nothing is held for 64*T1 after each answer.
    assert values["srg_sip_server_transactions"] == 0
    assert values['srg_sip_requests_dropped_total{reason="transaction_cap"}'] == 0


def test_slowloris_closed_after_deadline_while_a_call_completes(
    gateway, sipp: Sipp, control_token: str
) -> None:
    gw = gateway(_config(tcp_message_deadline_s=3.0))
    silent = _tcp(gw)  # connects and says nothing
    trickle = _tcp(gw)  # sends a header block one line at a time, never the blank line
    stop = threading.Event()

    def drip() -> None:
        trickle.sendall(b"INVITE sip:gateway@127.0.0.1 SIP/2.0\r\n")
        for n in range(200):  # the attack itself paces; bounded
            if stop.wait(0.25):
                return
            try:
                trickle.sendall(f"X-Slow-{n}: a\r\n".encode())
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    call = sipp.start("uac_call.xml", f"{LOOPBACK}:{gw.ports.gateway_sip}", hold_ms=1000)
    try:
        assert _closed_by_gateway(silent, timeout=20), "silent connection still open"
        assert _closed_by_gateway(trickle, timeout=20), "trickling connection still open"
    finally:
        stop.set()
        dripper.join(timeout=5)
        silent.close()
        trickle.close()
    result = call.wait()
    assert result.rc == 0, result.describe()
    assert gw.wait_event("call.ended")["cause"] == "remote_bye"
    gw.wait_event("sip.tcp_deadline")
    values = _metrics(gw, control_token)
    assert values['srg_sip_tcp_connections_closed_total{reason="deadline"}'] == 2


def test_connections_past_the_per_source_cap_are_closed(gateway, control_token: str) -> None:
    gw = gateway(_config(tcp_max_connections_per_source=3))
    kept = [_tcp(gw) for _ in range(3)]
    try:
        for sock in kept:  # the three within the cap work (and TCP works under uvloop)
            assert _options_over_tcp(sock).startswith(b"SIP/2.0 200"), "no answer over TCP"
        extra = [_tcp(gw) for _ in range(2)]
        for sock in extra:
            assert _closed_by_gateway(sock, timeout=5)
            sock.close()
        # Another source has its own share.
        other = _tcp(gw, source="127.0.0.2")
        assert _options_over_tcp(other).startswith(b"SIP/2.0 200")
        other.close()
        gw.wait_event("sip.tcp_source_cap")
        values = _metrics(gw, control_token)
        assert values['srg_sip_tcp_connections_refused_total{reason="source_cap"}'] == 2
        for sock in kept:  # still open and usable
            assert _options_over_tcp(sock).startswith(b"SIP/2.0 200")
    finally:
        for sock in kept:
            sock.close()


def test_huge_header_or_content_length_refused_unread(gateway, control_token: str) -> None:
    gw = gateway(_config(tcp_max_header_bytes=4096, tcp_max_body_bytes=8192))
    # 64 MB of header lines: far more than loopback socket buffers hold, so the send can only
    # complete if the gateway reads it all.
    endless = _tcp(gw)
    line = b"X-Pad: " + b"a" * 1017 + b"\r\n"
    sent = 0
    with pytest.raises(OSError):  # EPIPE / ECONNRESET once the gateway closed the stream
        endless.sendall(b"INVITE sip:gateway@127.0.0.1 SIP/2.0\r\n")
        endless.settimeout(20)
        for _ in range(64 * 1024):
            endless.sendall(line)
            sent += len(line)
    endless.close()
    assert sent < 16 * 1024 * 1024, sent
    # A Content-Length of 50 MB: refused as soon as the header block ends, body never sent.
    big = _tcp(gw)
    big.sendall(
        _options("big-body", big.getsockname()[1], "TCP").replace(
            b"Content-Length: 0", b"Content-Length: 50000000"
        )
    )
    assert _closed_by_gateway(big, timeout=5)
    big.close()
    gw.wait_event("sip.tcp_framing_error")
    values = _metrics(gw, control_token)
    assert values['srg_sip_tcp_connections_closed_total{reason="oversize"}'] == 2
    # The listener is still fine for well-behaved peers.
    ok = _tcp(gw)
    assert _options_over_tcp(ok).startswith(b"SIP/2.0 200")
    ok.close()


def test_flood_of_distinct_requests_is_capped(gateway, control_token: str) -> None:
    """Distinct out-of-dialog BYEs: each 481 keeps a server transaction for 64*T1 (Timer J
    on UDP), so the cap is what bounds them; past it they are dropped silently and counted.
    One source may hold only half the cap, so another source still gets answers."""
    gw = gateway(_config(max_server_transactions=200))
    flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood.bind(("127.0.0.3", 0))
    port = flood.getsockname()[1]
    for n in range(300):
        bye = (
            _options(f"bye-flood-{n}", port)
            .replace(b"OPTIONS sip:", b"BYE sip:")
            .replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 BYE")
        )
        flood.sendto(bye, (LOOPBACK, gw.ports.gateway_sip))
    gw.wait_event("sip.transaction_cap", timeout=15)
    flood.close()
    dropped = 'srg_sip_requests_dropped_total{reason="transaction_cap"}'
    # 300 datagrams at once overflow the socket buffer: some never reach the gateway.
    values = _metrics_when(gw, control_token, lambda v: v[dropped] >= 50)
    assert values["srg_sip_server_transactions"] == 100  # one source: half the cap, held
    assert values[dropped] >= 50
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.4", 0))
    other.sendto(
        _options("other", other.getsockname()[1])
        .replace(b"OPTIONS sip:", b"BYE sip:")
        .replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 BYE"),
        (LOOPBACK, gw.ports.gateway_sip),
    )
    other.settimeout(5)
    assert other.recv(65536).startswith(b"SIP/2.0 481")
    other.close()


def _open_many(gw: GatewayProcess, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            socks.append(_tcp(gw))
    return socks


def test_total_connection_cap_fits_the_descriptor_limit(gateway, control_token: str) -> None:
    """Started with `ulimit -n 300`, the gateway lowers sip.tcp_max_connections to 300 less
    3 descriptors per possible call and a reserve of 64, so 400 connections never make accept()
    fail: the excess is refused at the cap and a call over UDP still gets through."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))  # inherited by the gateway
    try:
        gw = gateway(_config(tcp_max_connections_per_source=1000))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    lowered = gw.wait_event("sip.tcp_cap_lowered")
    cap = int(re.search(r"to (\d+) to fit", lowered["message"]).group(1))
    low, high = gw.ports.gateway_rtp
    assert cap == 300 - 64 - 3 * ((high - low + 1) // 2)
    socks = _open_many(gw, 400)
    try:
        values = _metrics_when(
            gw,
            control_token,
            lambda v: (
                v["srg_sip_tcp_connections"] == cap
                and v['srg_sip_tcp_connections_refused_total{reason="total_cap"}'] > 0
            ),
        )
        assert values["srg_sip_tcp_connections"] == cap
        assert values["srg_sip_tcp_accept_errors_total"] == 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.sendto(_options("udp-ok", sock.getsockname()[1]), (LOOPBACK, gw.ports.gateway_sip))
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"SIP/2.0 200")
        sock.close()
    finally:
        for s in socks:
            s.close()


def test_accept_failing_with_emfile_pauses_and_logs_once(gateway, control_token: str) -> None:
    """The descriptor limit dropped under the gateway after it started (prlimit), so accept()
    really fails with EMFILE (under uvloop): counted, logged once per interval, accepting paused
    instead of spinning, and accepting again once descriptors are free."""
    gw = gateway(_config(tcp_max_connections_per_source=1000))
    pid = gw.process.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 20, hard))
    socks = _open_many(gw, 60)
    try:
        first = gw.wait_event("sip.tcp_accept_error", timeout=10)
        assert "EMFILE" in first["message"]
        # The window the next assertions are about: a spinning accept loop would fail
        # thousands of times in it, a paused one once per second.
        time.sleep(3.0)
    finally:
        for s in socks:
            s.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    values = _metrics_when(gw, control_token, lambda v: True)
    assert 1 <= values["srg_sip_tcp_accept_errors_total"] <= 10, values
    assert len(gw.find("sip.tcp_accept_error")) == 1  # one line per 5 s, not one per failure

    # Descriptors are free again: a new connection is served after the pause.
    def answered_over_tcp() -> bool:
        with contextlib.suppress(OSError):
            sock = _tcp(gw)
            reply = _options_over_tcp(sock)
            sock.close()
            return reply.startswith(b"SIP/2.0 200")
        return False

    wait_until(
        answered_over_tcp, 10, "TCP answering again after the descriptors were freed", interval=0.2
    )


def _bye(call_id: str, port: int) -> bytes:
    return (
        _options(call_id, port)
        .replace(b"OPTIONS sip:", b"BYE sip:")
        .replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 BYE")
    )


def test_flood_from_many_addresses_does_not_lock_out_a_caller(
    gateway, sipp: Sipp, control_token: str
) -> None:
    """400 distinct BYEs from 10 addresses (each 481 holds a transaction for 64*T1) against a
    total of 200: finished transactions are evicted for new requests, so a SIPp call placed
    right after still completes, and the table never grows past the cap."""
    gw = gateway(_config(max_server_transactions=200))
    answered = 0
    for n in range(10):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.0.{10 + n}", 0))
        port = sock.getsockname()[1]
        for i in range(40):
            sock.sendto(_bye(f"many-{n}-{i}", port), (LOOPBACK, gw.ports.gateway_sip))
        sock.settimeout(3)
        with contextlib.suppress(TimeoutError):
            for _ in range(40):
                if sock.recv(65536).startswith(b"SIP/2.0 481"):
                    answered += 1
        sock.close()
    assert answered >= 300, answered
    values = _metrics(gw, control_token)
    assert values["srg_sip_server_transactions"] <= 200
    assert values["srg_sip_transactions_evicted_total"] >= 100
    result = sipp.run("uac_call.xml", hold_ms=500)
    assert result.rc == 0, result.describe()
    assert gw.wait_event("call.ended")["cause"] == "remote_bye"
