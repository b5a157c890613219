"""End-to-end fixtures: real callers (SIPp, baresip) -> `sip-realtime-gateway run` -> simulator.

The Realtime simulator runs in this test process, on its own event loop in a background thread
(the interop harness is synchronous), with the `SimulatorOptions` each test needs; the gateway
subprocess reaches it through `--realtime-url` with no API key in its environment. Everything
the simulator records is read through its own loop (`SimulatorThread.call`) so the test thread
never sees a list while the loop mutates it.

At teardown every client event the gateway sent, in every session of every simulator the test
started, must validate against the `openai` SDK's GA client-event models with unknown keys
rejected (issue 4, "every client event validates").

The interop harness's fixtures are re-exported from here; nothing in tests/interop is changed.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import itertools
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.realtime.simulator import Recorded, SimSession, Simulator, SimulatorOptions
from tests.interop.conftest import (  # noqa: F401  (fixtures and the log hook, re-exported)
    GATEWAY_START_TIMEOUT_S,
    LOOPBACK,
    REPO_ROOT,
    SIPP_DIR,
    GatewayProcess,
    InteropPorts,
    ManagedProcess,
    Sipp,
    _attach_log,
    _hermetic_env,
    _merge,
    _python,
    baresip,
    interop_processes,
    ports,
    pytest_runtest_makereport,
    to_toml,
    tshark,
)
from tests.realtime.validate import check_client_event
from tests.tools.control import TEST_CONTROL_TOKEN_ENV
from tests.tools.media import make_test_media
from tests.tools.pcap import UdpDatagram, write_udp_pcap
from tests.tools.rtp import PhoneStreamSpec, RtpHeader, build_g711_dtmf_packets, parse_rtp

E2E_DIR = Path(__file__).resolve().parent
E2E_SIPP_DIR = E2E_DIR / "sipp"
# The gateway's source tree (default: this checkout). Point it elsewhere (e.g. a `git archive`
# of a commit) to run the suite against another build of the product.
GATEWAY_ROOT = Path(os.environ.get("E2E_GATEWAY_ROOT") or REPO_ROOT)
SIM_START_TIMEOUT_S = 10.0
SIM_CALL_TIMEOUT_S = 10.0
ULAW_SILENCE = 0xFF
FRAME_BYTES = 160

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# The simulator, on its own loop in a thread


class SimulatorThread:
    """A `Simulator` served from a background thread; all access goes through its loop."""

    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.sim = Simulator("127.0.0.1", 0, options)  # port 0: the OS picks
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._stopped = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(SIM_START_TIMEOUT_S)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(SIM_START_TIMEOUT_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return self.sim.url

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the simulator's loop and return its result (a consistent snapshot)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(SIM_CALL_TIMEOUT_S)

    def sessions(self) -> list[SimSession]:
        return self.call(lambda: list(self.sim.sessions.values()))

    def client_events(self, session: int) -> list[Recorded]:
        """Client events of the `session`-th session (0-based), in arrival order."""
        return self.call(lambda: list(list(self.sim.sessions.values())[session].client_events))

    def server_events(self, session: int) -> list[Recorded]:
        return self.call(lambda: list(list(self.sim.sessions.values())[session].server_events))

    def all_client_events(self) -> list[Recorded]:
        return self.call(
            lambda: [r for s in self.sim.sessions.values() for r in list(s.client_events)]
        )

    def drop_session(self, session: int) -> str:
        """Cut the `session`-th session's TCP connection (no close frame); returns its id."""

        def drop() -> str:
            target = list(self.sim.sessions.values())[session]
            self.sim.drop_session(target.id)
            return target.id

        return self.call(drop)

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> float:
        """Poll `predicate` (run on the simulator loop) until true; returns time.time() then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call(predicate):
                return time.time()
            time.sleep(0.02)
        raise AssertionError(f"simulator: {what} did not happen within {timeout} s")

    def session_config(self, session: int) -> dict[str, Any]:
        """The session's configuration as the simulator applied it (after session.update)."""
        import copy

        return self.call(lambda: copy.deepcopy(list(self.sim.sessions.values())[session].config))

    def session_count(self) -> int:
        return self.call(lambda: len(self.sim.sessions))


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimulatorThread]]:
    """Factory: `sim = sim_factory(reply_audio=..., tool_calls=(...))` (SimulatorOptions).

    Teardown: every client event of every session validates against openai.types.realtime.
    """
    started: list[SimulatorThread] = []

    def factory(**options: Any) -> SimulatorThread:
        thread = SimulatorThread(SimulatorOptions(**options))
        thread.start()
        started.append(thread)
        return thread

    yield factory
    records: list[Recorded] = []
    for thread in started:
        records += thread.all_client_events()
        thread.stop()
    problems = invalid_client_events(records)
    assert not problems, (
        f"{len(problems)} of {len(records)} client events fail the GA schema:\n"
        + "\n".join(problems[:10])
    )


def invalid_client_events(records: list[Recorded]) -> list[str]:
    """Why each recorded client event fails openai.types.realtime (unknown keys rejected)."""
    problems: list[str] = []
    for record in records:
        try:
            check_client_event(record.event)
        except AssertionError as exc:
            problems.append(str(exc)[:500])
    return problems


# ---------------------------------------------------------------------------------------------
# The gateway, bridged to the simulator


@pytest.fixture
def realtime_gateway(
    sim_factory: Callable[..., SimulatorThread],  # first: torn down after the gateway stopped
    tmp_path: Path,
    ports: InteropPorts,  # noqa: F811 (the re-exported fixture)
    interop_processes: list[ManagedProcess],  # noqa: F811
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., GatewayProcess]]:
    """Factory: `gw = realtime_gateway(sim.url, {"calls": {...}})`: `run --realtime-url URL`,
    echo off, no API key, JSON logs; returns once `gateway.started` was logged.

    Teardown: no gateway logged an error-level line (a failed action, a crashed task) or an
    illegal state-machine event during the test; neither fails a call outright, so only this
    check catches them."""
    counter = itertools.count(1)
    started: list[GatewayProcess] = []

    def start(
        realtime_url: str, config: dict[str, Any] | None = None, *, sip_host: str = LOOPBACK
    ) -> GatewayProcess:
        """`sip_host`: bind SIP elsewhere than loopback (a veth address, tests/tools/netns.py)."""
        index = next(counter)
        rtp_min, rtp_max = ports.gateway_rtp
        base: dict[str, Any] = {
            "sip": {"host": sip_host, "port": ports.gateway_sip},
            "media": {"rtp_port_min": rtp_min, "rtp_port_max": rtp_max, "echo": False},
            "log": {"level": "INFO", "format": "json"},
            # The control API's token (issue 9): _hermetic_env sets the variable.
            "control": {"token_env": TEST_CONTROL_TOKEN_ENV},
        }
        merged = _merge(base, config or {})
        config_path = tmp_path / f"e2e_gateway{index}.toml"
        config_path.write_text(to_toml(merged))
        args = [
            _python(), "-m", "gateway", "run",
            "--config", str(config_path),
            "--sip-host", sip_host,
            "--sip-port", str(ports.gateway_sip),
            "--rtp-ports", f"{rtp_min}-{rtp_max}",
            "--realtime-url", realtime_url,
            "--log-format", "json",
        ]  # fmt: skip
        env = _hermetic_env()
        # The control API's fixed default port (8080) would collide between gateways of
        # parallel test runs; 0 = any free port. Builds without a control API ignore it.
        env["SRG_CONTROL_PORT"] = "0"
        process = ManagedProcess(
            f"gateway{index}",
            args,
            cwd=GATEWAY_ROOT,  # `python -m gateway` imports the package from its cwd first
            log_path=tmp_path / f"e2e_gateway{index}.stdout.log",
            env=env,
            capture_stderr=True,
        )
        interop_processes.append(process)
        gw = GatewayProcess(process, config_path, ports)
        _attach_log(request, f"gateway{index} log ({config_path.name})", gw.log_text)
        _attach_log(request, f"gateway{index} config", config_path.read_text)
        started.append(gw)
        gw.wait_event("gateway.started", timeout=GATEWAY_START_TIMEOUT_S)
        return gw

    yield start
    errors = [
        json.dumps(event)[:1500]
        for gw in started
        for event in list(gw.events)
        if str(event.get("level", "")).lower() in ("error", "critical")
        # An event the state machine has no row for: a protocol race nobody reviewed.
        or event.get("event") == "call.illegal_event"
    ]
    assert not errors, "the gateway logged errors:\n" + "\n".join(errors)


# ---------------------------------------------------------------------------------------------
# SIPp with the e2e scenarios (falling back to the interop ones)


class E2ESipp(Sipp):
    """`Sipp` that finds scenarios in tests/e2e/sipp/ first, then tests/interop/sipp/."""

    def _prepare(self, scenario: str, substitutions: dict[str, str]) -> Path:
        source = E2E_SIPP_DIR / scenario
        if not source.exists():
            source = SIPP_DIR / scenario
        text = source.read_text()
        for key, value in substitutions.items():
            text = text.replace(f"@{key}@", value)
        left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
        if left:
            raise ValueError(f"{scenario}: placeholders not filled: {', '.join(left)}")
        target = self.work_dir / f"{next(self._counter):02d}_{scenario}"
        target.write_text(text)
        return target


@pytest.fixture
def sipp(
    tmp_path: Path,
    ports: InteropPorts,  # noqa: F811 (the re-exported fixture)
    interop_processes: list[ManagedProcess],  # noqa: F811
    request: pytest.FixtureRequest,
) -> E2ESipp:
    from tests.conftest import require_peer

    require_peer("sipp")
    work = tmp_path / "sipp"
    work.mkdir()
    return E2ESipp(work, ports, interop_processes, request)


# ---------------------------------------------------------------------------------------------
# Caller audio: espeak-ng sentences laid out in time, as SIPp pcaps


@dataclass(frozen=True, slots=True)
class Utterances:
    """Short espeak-ng sentences as headerless u-law (8 kHz)."""

    hello: bytes  # "Hello can you hear me"
    question: bytes  # "What time is it now"
    hello_wav: Path  # "hello" + 8 s of silence, 8 kHz s16 (baresip's aufile hangs up at EOF)


@pytest.fixture(scope="session")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> Utterances:
    from tests.conftest import require_peer

    require_peer("espeak-ng", "sox")
    root = tmp_path_factory.mktemp("e2e_speech")
    # No commas: espeak pauses at punctuation, and a pause near the VAD's silence window could
    # split one sentence into two turns.
    hello = make_test_media(root / "hello", text="Hello can you hear me", digits="")
    question = make_test_media(root / "question", text="What time is it now", digits="")
    return Utterances(
        hello.speech_ulaw.read_bytes(), question.speech_ulaw.read_bytes(), hello.padded_wav
    )


SILENCE_BYTE = {"PCMU": ULAW_SILENCE, "PCMA": 0xD5}
PAYLOAD_TYPE = {"PCMU": 0, "PCMA": 8}


def silence_ms(ms: int, codec: str = "PCMU") -> bytes:
    return bytes([SILENCE_BYTE[codec]]) * (ms * 8)


def ulaw_to_alaw(ulaw: bytes) -> bytes:
    """Re-encode speech for an A-law caller (the test side may transcode; the gateway never)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    return audioop.lin2alaw(audioop.ulaw2lin(ulaw, 2), 2)


def sweep(ms: int, f0: float = 300.0, f1: float = 1200.0, level: float = 0.3) -> bytes:
    """u-law of a linear frequency sweep: unlike a steady tone, no two 20 ms frames are
    equal, so each frame on the wire tells where in the reply it came from."""
    import numpy as np

    from gateway.media.g711 import encode

    n = 8 * ms
    t = np.arange(n) / 8000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * ms / 1000.0))
    pcm = (np.sin(phase) * level * 32767).astype("<i2").tobytes()
    return encode("PCMU", pcm)


def write_caller_pcap(path: Path, audio: bytes, digits: str = "", codec: str = "PCMU") -> int:
    """A SIPp play_pcap_audio file: `audio` (G.711 of `codec`, 20 ms packets) then RFC 4733
    digits (PT 101, one SSRC). Returns the play time in ms."""
    spec = PhoneStreamSpec(payload_type=PAYLOAD_TYPE[codec])
    packets = build_g711_dtmf_packets(audio, digits, spec)
    write_udp_pcap(path, packets)
    return packets[-1][0] // 1000 + 20


# ---------------------------------------------------------------------------------------------
# Capture analysis helpers


@dataclass(frozen=True, slots=True)
class WirePacket:
    time: float  # capture time, epoch seconds (same clock as the gateway's log `ts`)
    rtp: RtpHeader


def gateway_rtp(
    datagrams: list[UdpDatagram], layout: InteropPorts, peer_port: int
) -> list[WirePacket]:
    """The gateway's outbound RTP to the caller's media port, in capture order (one SSRC)."""
    low, high = layout.gateway_rtp
    out: list[WirePacket] = []
    for d in datagrams:
        if low <= d.src[1] <= high and d.dst[1] == peer_port:
            rtp = parse_rtp(d.payload)
            if rtp is not None and rtp.payload_type in (0, 8):
                out.append(WirePacket(d.time, rtp))
    return out


def is_silent(payload: bytes, codec: str = "PCMU") -> bool:
    return payload == bytes([SILENCE_BYTE[codec]]) * len(payload)


def sip_messages(datagrams: list[UdpDatagram], method_or_status: str) -> list[UdpDatagram]:
    """SIP datagrams whose start line begins with `method_or_status` (e.g. "BYE", "SIP/2.0 202")."""
    prefix = method_or_status.encode()
    return [d for d in datagrams if d.payload.startswith(prefix)]


def reply_audio(server_events: list[Recorded]) -> dict[str, bytes]:
    """Bot audio the simulator sent, per item id (decoded response.output_audio.delta)."""
    audio: dict[str, bytearray] = {}
    for record in server_events:
        if record.type == "response.output_audio.delta":
            item = record.event["item_id"]
            audio.setdefault(item, bytearray()).extend(base64.b64decode(record.event["delta"]))
    return {k: bytes(v) for k, v in audio.items()}


def iso_to_epoch(ts: str) -> float:
    """The gateway log's `ts` (UTC ISO 8601 with ms, `Z`) as epoch seconds."""
    seconds, _, ms = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S")) + int(ms or 0) / 1000


@dataclass(frozen=True, slots=True)
class Located:
    """Where a run of bot audio sits in the gateway's outbound packets."""

    first: int  # index of the packet holding its first byte
    last: int  # index of the packet holding its last byte
    offset: int  # byte offset of its first byte inside packet `first`


def locate(audio: bytes, packets: list[WirePacket]) -> Located | None:
    """Find `audio` as one contiguous run in the concatenated payloads (no transcoding, so the
    bytes the simulator sent must appear verbatim); None when it is not there."""
    wire = b"".join(p.rtp.payload for p in packets)
    start = wire.find(audio)
    if start < 0 or not audio:
        return None
    ends = list(itertools.accumulate(len(p.rtp.payload) for p in packets))
    first = next(i for i, end in enumerate(ends) if end > start)
    last = next(i for i, end in enumerate(ends) if end >= start + len(audio))
    return Located(first, last, start - (ends[first] - len(packets[first].rtp.payload)))


def level_dbfs(g711: bytes, codec: str = "PCMU") -> float:
    """RMS level of G.711 audio in dBFS."""
    import numpy as np

    from gateway.media.g711 import decode

    pcm = np.frombuffer(decode(codec, g711), dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0
    return 20 * float(np.log10(rms / 32768.0 + 1e-12))
