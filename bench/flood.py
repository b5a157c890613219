"""Benchmark: the whole product under SIP floods, and whether a real call still gets through.

For each flood (distinct INVITEs, OPTIONS, garbage UDP, idle TCP connections, slowloris TCP)
a fresh `sip-realtime-gateway run` (echo media: the caller's audio comes back) is started on
loopback, flooded for `--seconds` from a separate process (`flood.py --worker KIND`, sending
from `--flood-source`, 127.0.0.2 by default, so per-source limits can tell it from the
legitimate caller on 127.0.0.1; `--flood-sources N` spreads it over N addresses from there, to
reach the total caps instead), and in the middle of the flood a legitimate call is placed
from 127.0.0.1: INVITE with a G.711 offer (retransmitted on T1 as RFC 3261 17.1.1.2 says),
ACK, 3 s of 20 ms PCMU packets, BYE. The call counts as completed when it was answered, its
BYE got 200 and at least half of its RTP came back from the gateway with its audio. With
`--caller sipp` SIPp places it instead (bench/sipp/uac_load.xml playing a speech pcap), and the
RTP counts come from the gateway's `call.ended` line, SIPp keeping its media port to itself.

Printed per flood: what the flooder sent, the gateway's CPU % over the flood (/proc), its peak
RSS (VmHWM), whether the legitimate call completed and how much RTP came back, open
descriptors (/proc/PID/fd) before the flood and after it ended (polled until back to the
baseline or `--settle` seconds), and the gateway's own drop counters from /metrics. Targets:
the call completes every time, peak RSS under 200 MB, descriptors back to the baseline.

The gateway is configured as a deployment on a phone network should be: `sip.allow_networks`
lists the legitimate caller only, so flood INVITEs are refused (with `sip.admit_local = false`:
the flooder's 127.0.0.2 is this host too, which is otherwise trusted). Loopback only; every loop is
bounded by `--seconds` and `--rate`; every process started is stopped at the end.

    .venv/bin/python bench/flood.py                       # 30 s per flood
    .venv/bin/python bench/flood.py --seconds 2 --floods options slowloris
    .venv/bin/python bench/flood.py --flood-sources 50       # past the per-source limits
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import random
import secrets
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._procstat import cpu_times, proc_cpu_s, steal_pct  # noqa: E402
from bench.sipp_load import _stop, _wait_port, parse_metrics, total  # noqa: E402
from sip.message import Response, SipParseError, parse_message  # noqa: E402
from tests.tools.ports import free_port_block  # noqa: E402

HOST = "127.0.0.1"
FLOODS = ("invite", "options", "garbage", "idle_tcp", "slowloris")
TOKEN_ENV = "FLOOD_BENCH_CONTROL_TOKEN"
RSS_TARGET_MB = 200
CALL_AUDIO_S = 3.0
RTP_PORTS = 22  # the gateway's RTP range
# gateway SIP, control API, the gateway's RTP range, then SIPp's SIP port and media ports
PORTS = 2 + RTP_PORTS + 2 + 8


# --- the flooder (runs as its own process: flood.py --worker KIND) ---------------------------


def _sip_request(method: str, target: tuple[str, int], source: tuple[str, int], n: int) -> bytes:
    body = b""
    extra = ""
    if method == "INVITE":
        body = (
            f"v=0\r\no=flood {n} 1 IN IP4 {source[0]}\r\ns=-\r\nc=IN IP4 {source[0]}\r\n"
            f"t=0 0\r\nm=audio {40000 + n % 2000 * 2} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
        extra = f"Contact: <sip:flood@{source[0]}:{source[1]}>\r\nContent-Type: application/sdp\r\n"
    tag = secrets.token_hex(4)
    return (
        f"{method} sip:gateway@{target[0]}:{target[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bK{tag}{n};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:flood@{source[0]}>;tag={tag}\r\n"
        f"To: <sip:gateway@{target[0]}>\r\nCall-ID: flood-{tag}-{n}\r\nCSeq: 1 {method}\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _paced(seconds: float, rate: float) -> Any:
    """Yield the number of items due now, `rate` per second for `seconds` (10 ms batches)."""
    start = time.monotonic()
    done = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - done
        if due > 0:
            yield due
            done += due
        time.sleep(0.01)


def _sources(first: str, count: int) -> list[str]:
    """`count` consecutive loopback addresses from `first` (per-source limits see each apart)."""
    start = ipaddress.IPv4Address(first)
    return [str(start + i) for i in range(count)]


def _udp_flood(
    kind: str, target: tuple[str, int], sources: list[str], seconds: float, rate: float
) -> dict[str, int]:
    socks = []
    for source in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
        sock.setblocking(False)
        socks.append(sock)
    rng = random.Random(9)
    sent = errors = n = 0
    for due in _paced(seconds, rate):
        for _ in range(due):
            n += 1
            sock = socks[n % len(socks)]
            if kind == "garbage":
                payload = rng.randbytes(rng.randrange(20, 1400))
            else:
                payload = _sip_request(kind.upper(), target, sock.getsockname(), n)
            try:
                sock.sendto(payload, target)
                sent += 1
            except OSError:
                errors += 1
        for sock in socks:
            with contextlib.suppress(OSError):  # drop the replies (403s, 200s) unread
                while sock.recv(65536):
                    pass
    for sock in socks:
        sock.close()
    return {"sent": sent, "send_errors": errors}


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _tcp_flood(kind: str, target: tuple[str, int], sources: list[str], seconds: float,
               rate: float, max_open: int) -> dict[str, int]:  # fmt: skip
    """Open connections at `rate`/s up to `max_open` held at once; idle ones say nothing,
    slowloris ones send a header line per connection each second and never the blank line."""
    held: list[socket.socket] = []
    opened = refused = closed_by_gateway = lines = 0
    last_drip = time.monotonic()
    for due in _paced(seconds, rate):
        for _ in range(due):
            if len(held) >= max_open:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                sock.bind((sources[(opened + refused) % len(sources)], 0))
                sock.settimeout(1.0)
                sock.connect(target)
                sock.setblocking(False)
                if kind == "slowloris":
                    sock.send(b"INVITE sip:gateway@127.0.0.1 SIP/2.0\r\n")
            except OSError:
                refused += 1
                sock.close()
                continue
            opened += 1
            held.append(sock)
        now = time.monotonic()
        if now - last_drip >= 1.0:
            last_drip = now
            alive = []
            for sock in held:
                if _closed(sock):
                    closed_by_gateway += 1
                    sock.close()
                    continue
                if kind == "slowloris":
                    with contextlib.suppress(OSError):
                        sock.send(f"X-Slow-{lines % 1000}: a\r\n".encode())
                        lines += 1
                alive.append(sock)
            held = alive
    still_open = sum(not _closed(s) for s in held)
    closed_by_gateway += len(held) - still_open
    for sock in held:
        sock.close()
    return {
        "opened": opened,
        "refused": refused,
        "closed_by_gateway": closed_by_gateway,
        "open_at_end": still_open,
    }


def worker(args: argparse.Namespace) -> None:
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    sources = _sources(args.flood_source, args.flood_sources)
    if args.worker in ("invite", "options", "garbage"):
        result = _udp_flood(args.worker, target, sources, args.seconds, args.rate)
    else:
        result = _tcp_flood(args.worker, target, sources, args.seconds, args.tcp_rate, args.tcp_max)
    print(json.dumps(result), flush=True)


# --- the legitimate call ------------------------------------------------------------------------


@dataclass
class CallResult:
    answered: bool = False
    bye_ok: bool = False
    rtp_sent: int = 0
    rtp_back: int = 0  # RTP from the gateway carrying our audio (not its silence fill)
    rtp_silence: int = 0
    setup_s: float | None = None
    problem: str = ""

    @property
    def completed(self) -> bool:
        return self.answered and self.bye_ok and self.rtp_back >= self.rtp_sent // 2 > 0


class LegitCaller:
    """A minimal RFC 3261 UAC over UDP on 127.0.0.1 with one G.711 stream."""

    def __init__(self, gateway: tuple[str, int]) -> None:
        self.gateway = gateway
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((HOST, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.call_id = f"legit-{secrets.token_hex(6)}"
        self.tag = secrets.token_hex(4)

    def _request(self, method: str, cseq: int, to_tag: str = "", body: bytes = b"") -> bytes:
        local = self.sip.getsockname()
        extra = ""
        if body:
            extra = "Content-Type: application/sdp\r\n"
        return (
            f"{method} sip:gateway@{self.gateway[0]}:{self.gateway[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:caller@{local[0]}>;tag={self.tag}\r\n"
            f"To: <sip:gateway@{self.gateway[0]}>{';tag=' + to_tag if to_tag else ''}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:caller@{local[0]}:{local[1]}>\r\nUser-Agent: flood-bench-caller\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def _transact(self, data: bytes, method: str, timeout: float = 32.0) -> Response | None:
        """Send and retransmit (T1 = 0.5 s doubling, capped at 4 s) until a final response."""
        deadline = time.monotonic() + timeout
        interval = 0.5
        self.sip.sendto(data, self.gateway)
        next_send = time.monotonic() + interval
        got_provisional = False
        while (now := time.monotonic()) < deadline:
            ready, _, _ = select.select(
                [self.sip], [], [], max(0.0, min(next_send, deadline) - now)
            )
            if ready:
                raw = self.sip.recv(65536)
                try:
                    msg = parse_message(raw)
                except SipParseError:
                    continue
                if not isinstance(msg, Response) or msg.call_id != self.call_id:
                    continue
                if msg.cseq[1] != method:
                    continue
                if msg.status >= 200:
                    return msg
                got_provisional = True
            elif time.monotonic() >= next_send:
                if not (got_provisional and method == "INVITE"):  # 17.1.1.2: stop after 1xx
                    self.sip.sendto(data, self.gateway)
                interval = min(interval * 2, 4.0)
                next_send = time.monotonic() + interval
        return None

    def run(self) -> CallResult:
        result = CallResult()
        rtp_port = self.rtp.getsockname()[1]
        sdp = (
            f"v=0\r\no=caller 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
            "a=sendrecv\r\n"
        ).encode()
        start = time.monotonic()
        try:
            ok = self._transact(self._request("INVITE", 1, body=sdp), "INVITE")
            if ok is None or ok.status != 200:
                result.problem = f"INVITE: {ok.status if ok else 'no final response'}"
                return result
            result.answered = True
            result.setup_s = round(time.monotonic() - start, 3)
            to_tag = ok.to_tag or ""
            self.sip.sendto(self._request("ACK", 1, to_tag), self.gateway)
            remote = _sdp_audio(ok.body)
            if remote is None:
                result.problem = "no audio in the 200 OK's SDP"
                return result
            self._media(remote, result)
            bye = self._transact(self._request("BYE", 2, to_tag), "BYE")
            result.bye_ok = bye is not None and bye.status == 200
            if not result.bye_ok:
                result.problem = f"BYE: {bye.status if bye else 'no final response'}"
        finally:
            self.sip.close()
            self.rtp.close()
        return result

    def _media(self, remote: tuple[str, int], result: CallResult) -> None:
        """3 s of PCMU (a 400 Hz-ish square wave, not silence) at 20 ms; count what returns."""
        payload = bytes(0x20 if (i // 10) % 2 else 0xA0 for i in range(160))
        ssrc = random.getrandbits(32)
        start = time.monotonic()
        packets = int(CALL_AUDIO_S * 50)
        self.rtp.setblocking(False)
        for seq in range(packets + 50):  # 1 s more of listening for the echo's tail
            if seq < packets:
                header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc)
                with contextlib.suppress(OSError):
                    self.rtp.sendto(header + payload, remote)
                    result.rtp_sent += 1
            with contextlib.suppress(OSError):
                while True:
                    data = self.rtp.recv(2048)
                    if len(data) < 12 or data[0] >> 6 != 2:
                        continue
                    if set(data[12:]) <= _SILENCE:
                        result.rtp_silence += 1
                    else:
                        result.rtp_back += 1
            delay = start + (seq + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


# G.711 silence and near-silence code words (u-law 0xFF/0x7F, A-law 0xD5/0x55, +-1 step).
_SILENCE = frozenset(b"\xff\x7f\xfe\x7e\xd5\x55\xd4\x54")


def _sdp_audio(body: bytes) -> tuple[str, int] | None:
    host, port = None, None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (host, port) if host and port else None


def sipp_call(gateway_port: int, work: Path, sipp_base: int, gateway_log: Path) -> CallResult:
    """The legitimate call as SIPp places it (bench/sipp/uac_load.xml: a G.711 pcap of speech
    played with play_pcap_audio, root or CAP_NET_RAW). SIPp binds its media port itself, so
    what came back is read from the gateway's `call.ended` line (RTP in from SIPp, out to it)."""
    from bench.sipp_load import make_pcap

    result = CallResult()
    pcap = make_pcap(work, CALL_AUDIO_S + 1)
    scenario = work / "uac_legit.xml"
    scenario.write_text(
        (ROOT / "bench" / "sipp" / "uac_load.xml")
        .read_text()
        .replace("@PCAP@", pcap.name)
        .replace("@HOLD_MS@", str(int(CALL_AUDIO_S * 1000)))
    )
    proc = subprocess.run(
        [
            "sipp", f"{HOST}:{gateway_port}", "-sf", str(scenario), "-s", "100",
            "-i", HOST, "-p", str(sipp_base), "-mi", HOST, "-mp", str(sipp_base + 2),
            "-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error",
        ],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90,
    )  # fmt: skip
    result.answered = result.bye_ok = proc.returncode == 0
    if proc.returncode != 0:
        result.problem = f"sipp exited {proc.returncode}"
        return result
    for _ in range(50):  # call.ended is written as the BYE is answered: poll the log briefly
        for line in gateway_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "call.ended" and event.get("answered"):
                    result.rtp_sent = int(event.get("rtp_packets_in") or 0)
                    result.rtp_back = int(event.get("rtp_packets_out") or 0)
                    return result
        time.sleep(0.1)
    result.problem = "no call.ended for the answered call in the gateway log"
    return result


# --- one flood ---------------------------------------------------------------------------------


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return -1.0


def fetch_metrics(port: int, token: str) -> dict[tuple[str, str], float]:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return parse_metrics(reply.read().decode())


@dataclass
class FloodResult:
    flood: str
    seconds: float
    flooder: dict[str, int]
    gateway_cpu_pct: float
    steal_pct: float
    peak_rss_mb: float
    call: CallResult
    fds_baseline: int
    fds_after: int
    drops: dict[str, float] = field(default_factory=dict)
    problem: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.call.completed
            and 0 < self.peak_rss_mb < RSS_TARGET_MB
            and self.fds_after <= self.fds_baseline
            and not self.problem
        )


def _gateway_config(work: Path, control: int, rtp: tuple[int, int]) -> Path:
    config = work / "gateway.toml"
    config.write_text(
        "[sip]\n"
        f'allow_networks = ["{HOST}/32"]\nadmit_local = false\n'
        "[media]\necho = true\n"
        f"rtp_port_min = {rtp[0]}\nrtp_port_max = {rtp[1]}\n"
        f'[control]\nhost = "{HOST}"\nport = {control}\ntoken_env = "{TOKEN_ENV}"\n'
        '[log]\nlevel = "INFO"\nformat = "json"\n'
    )
    return config


def _drops(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict:
    out: dict[str, float] = {}
    for (name, labels), value in after.items():
        if not name.startswith("srg_sip_") or not name.endswith("_total"):
            continue
        delta = value - before.get((name, labels), 0.0)
        if delta and name not in ("srg_sip_requests_total", "srg_sip_responses_total"):
            out[name.removeprefix("srg_sip_").removesuffix("_total") + labels] = delta
    return out


def run_flood(kind: str, args: argparse.Namespace, work: Path) -> FloodResult:
    base = free_port_block(PORTS)
    sip_port, control = base, base + 1
    config = _gateway_config(work, control, (base + 2, base + 2 + RTP_PORTS - 1))
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SRG_"))}
    env[TOKEN_ENV] = token
    python = sys.executable
    gateway = flooder = None
    log = (work / f"gateway-{kind}.log").open("wb")
    try:
        gateway = subprocess.Popen(
            [
                python, "-m", "gateway", "run", "--config", str(config),
                "--sip-host", HOST, "--sip-port", str(sip_port), "--log-format", "json",
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        _wait_port(control, 20)
        _wait_port(sip_port, 20)
        before = fetch_metrics(control, token)
        fds_baseline = fd_count(gateway.pid)
        flooder = subprocess.Popen(
            [
                python, str(Path(__file__).resolve()), "--worker", kind,
                "--target", f"{HOST}:{sip_port}", "--flood-source", args.flood_source,
                "--flood-sources", str(args.flood_sources),
                "--seconds", str(args.seconds), "--rate", str(args.rate),
                "--tcp-rate", str(args.tcp_rate), "--tcp-max", str(args.tcp_max),
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        cpu0, machine0, wall0 = proc_cpu_s(gateway.pid), cpu_times(), time.monotonic()
        # The call starts a third of the way into the flood (at most 5 s in).
        time.sleep(min(5.0, args.seconds / 3))
        call_box: list[CallResult] = []
        if args.caller == "sipp":
            sipp_base = base + 2 + RTP_PORTS
            place = lambda: call_box.append(  # noqa: E731
                sipp_call(sip_port, work, sipp_base, work / f"gateway-{kind}.log")
            )
        else:
            place = lambda: call_box.append(LegitCaller((HOST, sip_port)).run())  # noqa: E731
        caller = threading.Thread(target=place, daemon=True)
        caller.start()
        out, err = flooder.communicate(timeout=args.seconds + 60)
        wall = time.monotonic() - wall0
        cpu_pct = round(100 * (proc_cpu_s(gateway.pid) - cpu0) / wall, 1)
        steal = steal_pct(machine0, cpu_times())
        caller.join(timeout=60)
        call = call_box[0] if call_box else CallResult(problem="the caller did not finish")
        try:
            flood_summary = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            flood_summary = {"error": 1}
            err = err[-500:]
        # Descriptors: polled back to the baseline (TCP closes, the call's RTP sockets).
        fds_after = fd_count(gateway.pid)
        deadline = time.monotonic() + args.settle
        while fds_after > fds_baseline and time.monotonic() < deadline:
            time.sleep(0.2)
            fds_after = fd_count(gateway.pid)
        after = fetch_metrics(control, token)
        problem = "" if gateway.poll() is None else f"gateway exited {gateway.returncode}"
        if "error" in flood_summary:
            problem = f"flooder failed: {err.strip()[-200:]}"
        drops = _drops(before, after)
        drops["server_transactions_now"] = total(after, "srg_sip_server_transactions")
        return FloodResult(
            flood=kind,
            seconds=round(wall, 1),
            flooder=flood_summary,
            gateway_cpu_pct=cpu_pct,
            steal_pct=steal,
            peak_rss_mb=peak_rss_mb(gateway.pid),
            call=call,
            fds_baseline=fds_baseline,
            fds_after=fds_after,
            drops=drops,
            problem=problem,
        )
    finally:
        _stop(flooder)
        _stop(gateway, grace=20)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--floods", nargs="+", choices=FLOODS, default=list(FLOODS))
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each flood")
    parser.add_argument("--rate", type=float, default=2000.0, help="UDP floods: packets/s")
    parser.add_argument("--tcp-rate", type=float, default=200.0, help="TCP: connections/s")
    parser.add_argument("--tcp-max", type=int, default=2000, help="TCP: held at once")
    parser.add_argument("--flood-source", default="127.0.0.2", help="flood from this address")
    parser.add_argument(
        "--flood-sources", type=int, default=1, help="flood from this many addresses from there"
    )
    parser.add_argument(
        "--caller",
        choices=("python", "sipp"),
        default="python",
        help="the legitimate call: a built-in UAC counting the echoed audio it receives, or "
        "SIPp playing a pcap (needs sipp, espeak-ng, sox and a raw socket)",
    )
    parser.add_argument("--settle", type=float, default=20.0, help="wait for fds (s)")
    parser.add_argument("--json", action="store_true", help="one JSON line per flood")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--worker", choices=FLOODS, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.seconds <= 0 or args.rate <= 0 or args.tcp_rate <= 0 or args.tcp_max < 1:
        sys.exit("flood: --seconds, --rate, --tcp-rate and --tcp-max must be positive")
    try:
        sources = _sources(args.flood_source, args.flood_sources)
    except ValueError:
        sys.exit("flood: --flood-source must be an IPv4 address")
    loopback = ipaddress.ip_network("127.0.0.0/8")
    if args.flood_sources < 1 or not all(
        ipaddress.ip_address(a) in loopback and a != HOST for a in sources
    ):
        sys.exit("flood: the flood sources must be loopback addresses other than 127.0.0.1")
    load = os.getloadavg()
    print(
        f"seconds={args.seconds} rate={args.rate}/s tcp_rate={args.tcp_rate}/s "
        f"tcp_max={args.tcp_max} flood_sources={args.flood_source} x{args.flood_sources} "
        f"cpus={os.cpu_count()} "
        f"load={load[0]:.2f} python={sys.version.split()[0]}",
        flush=True,
    )
    results: list[FloodResult] = []
    for kind in args.floods:
        work = Path(tempfile.mkdtemp(prefix=f"flood-{kind}-"))
        try:
            result = run_flood(kind, args, work)
        except Exception as exc:  # one flood failing must not hide the others
            print(f"{kind}: failed: {exc!r} (work dir {work})", flush=True)
            continue
        finally:
            if not args.keep:
                import shutil

                shutil.rmtree(work, ignore_errors=True)
        results.append(result)
        if args.json:
            row = asdict(result) | {"ok": result.ok, "call_completed": result.call.completed}
            print(json.dumps(row), flush=True)
    print()
    print(
        "| flood | flooder sent | gateway CPU % | peak RSS MB | legit call | RTP back / sent "
        "| fds baseline / after | gateway drops | steal % | ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        call = "completed" if r.call.completed else f"FAILED {r.call.problem}"
        if r.call.setup_s is not None:
            call += f" (setup {r.call.setup_s} s)"
        sent = ", ".join(f"{k} {v}" for k, v in r.flooder.items())
        drops = ", ".join(f"{k} {v:g}" for k, v in r.drops.items()) or "-"
        print(
            f"| {r.flood} | {sent} | {r.gateway_cpu_pct} | {r.peak_rss_mb} | {call} | "
            f"{r.call.rtp_back} / {r.call.rtp_sent} | {r.fds_baseline} / {r.fds_after} | "
            f"{drops} | {r.steal_pct} | {'yes' if r.ok else 'NO ' + r.problem} |"
        )


if __name__ == "__main__":
    main()
