"""`sip-realtime-gateway call`: the test softphone against an in-process Gateway + Simulator.

Whole calls run in this test's event loop: Gateway (gateway.app) on port_block ports, its
Realtime URL pointing at an in-process Simulator (which answers every turn with the caller's own
utterance), and the softphone through `place_call`. The speech played is espeak-ng output
resampled by sox to 8 kHz. One test runs both as real subprocesses (the README flow).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.app import Gateway
from gateway.config import GatewayConfig, load_config
from gateway.media.jitter import Frame
from gateway.realtime.simulator import Simulator, SimulatorOptions, ToolCallRule
from gateway.softphone import (
    CallOptions,
    CallSummary,
    Recorder,
    UsageError,
    default_duration,
    main,
    place_call,
    read_wav,
    voiced_seconds,
    write_wav,
)
from tests.conftest import require_peer

TIMEOUT = 30.0  # any single call in these tests is far shorter
REPO = Path(__file__).resolve().parent.parent


# -- fixtures ---------------------------------------------------------------------------------
def _espeak_wav(directory: Path, name: str, text: str) -> Path:
    require_peer("espeak-ng", "sox")
    raw, out = directory / f"{name}-raw.wav", directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, timeout=30)
    # -D: no dither, so silence stays digital silence and levels are deterministic.
    subprocess.run(
        [
            "sox",
            "-D",
            str(raw),
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(out),
        ],
        check=True,
        timeout=30,
    )
    return out


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _espeak_wav(tmp_path_factory.mktemp("speech"), "hello", "Hello, one two three.")


def gateway_config(port_block: int, realtime_url: str, **overrides: Any) -> GatewayConfig:
    values: dict[str, Any] = {
        "sip.host": "127.0.0.1",
        "sip.port": port_block,
        "media.rtp_port_min": port_block + 10,
        "media.rtp_port_max": port_block + 29,
        "realtime.url": realtime_url,
        "realtime.simulator": "never",
        **overrides,
    }
    if "control" in GatewayConfig.__dataclass_fields__:
        values.setdefault("control.enabled", False)  # no fixed HTTP port in tests
    return load_config(None, {}, values)


class Lab:
    def __init__(self, port_block: int, gateway: Gateway, simulator: Simulator) -> None:
        self.port_block = port_block
        self.gateway = gateway
        self.simulator = simulator
        self.target = f"sip:100@127.0.0.1:{port_block}"

    def options(self, **values: Any) -> CallOptions:
        base: dict[str, Any] = {
            "target": self.target,
            "local_host": "127.0.0.1",
            "rtp_ports": f"{self.port_block + 30}-{self.port_block + 39}",
        }
        return CallOptions(**{**base, **values})

    async def call(self, **values: Any) -> tuple[CallSummary, str]:
        out = io.StringIO()
        summary = await asyncio.wait_for(place_call(self.options(**values), out), TIMEOUT)
        return summary, out.getvalue()

    def texts_sent(self) -> list[str]:
        """The text items the gateway created in the Realtime session (DTMF arrives so)."""
        texts = []
        for recorded in self.simulator.client_events:
            if recorded.type != "conversation.item.create":
                continue
            for part in recorded.event.get("item", {}).get("content", []):
                if part.get("type") == "input_text":
                    texts.append(part.get("text", ""))
        return texts


async def start_lab(
    port_block: int, simulator_options: SimulatorOptions | None = None, **overrides: Any
) -> tuple[Gateway, Simulator]:
    simulator = Simulator("127.0.0.1", 0, simulator_options)
    await simulator.start()
    gateway = Gateway(gateway_config(port_block, simulator.url, **overrides))
    try:
        await asyncio.wait_for(gateway.start(), TIMEOUT)
    except BaseException:
        await simulator.stop()
        raise
    return gateway, simulator


@pytest.fixture
async def lab(port_block: int, request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    gateway, simulator = await start_lab(port_block, **getattr(request, "param", {}))
    try:
        yield Lab(port_block, gateway, simulator)
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=2.0), TIMEOUT)
        await simulator.stop()


def read_pcm(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def best_correlation(reference: np.ndarray, recording: np.ndarray) -> tuple[float, int]:
    """Normalised cross-correlation of `reference` at its best lag inside `recording`."""
    size = 1 << int(np.ceil(np.log2(len(reference) + len(recording))))
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size))
    raw = np.fft.irfft(spectrum, size)[: max(len(recording) - len(reference), 0) + 1]
    lag = int(np.argmax(raw))
    segment = recording[lag : lag + len(reference)]
    denominator = np.linalg.norm(reference[: len(segment)]) * np.linalg.norm(segment)
    return (float(raw[lag] / denominator) if denominator else 0.0), lag


def chunk_similarity(reference: np.ndarray, recording: np.ndarray, lag: int) -> float:
    """Median over the reference's loud 200 ms chunks of their best normalised correlation
    near `lag` in the recording. A whole-signal correlation collapses when the media clock
    skips a frame under load (the audio then continues 20 ms later, RFC-correct); per chunk,
    each piece finds itself again."""
    chunk, slack = 1600, 800
    scores = []
    for start in range(0, len(reference) - chunk + 1, chunk):
        piece = reference[start : start + chunk]
        if np.sqrt(np.mean(piece * piece)) < 300:  # skip pauses: nothing to recognise
            continue
        low = max(lag + start - slack, 0)
        window = recording[low : lag + start + chunk + slack]
        best = 0.0
        for offset in range(0, len(window) - chunk + 1, 8):
            candidate = window[offset : offset + chunk]
            norm = np.linalg.norm(candidate) * np.linalg.norm(piece)
            if norm:
                best = max(best, float(candidate @ piece / norm))
        scores.append(best)
    assert scores, "reference has no loud chunk"
    return float(np.median(scores))


# -- whole calls against gateway + simulator ------------------------------------------------------
async def test_call_plays_speech_and_records_the_bots_reply(
    lab: Lab, speech_wav: Path, tmp_path: Path
) -> None:
    record = tmp_path / "reply.wav"
    summary, out = await lab.call(play=str(speech_wav), record=str(record), duration=7.0)

    assert summary.exit_code == 0, out
    assert summary.answered and summary.status == 200 and summary.ended_by == "local"
    assert summary.bye_status == 200
    assert [line.split()[0] for line in summary.progress] == ["100", "180", "200"]
    assert "audio came back: yes" in out and "RTP received:" in out and "RTP sent:" in out

    # The gateway heard the speech: the simulator got it as input audio and answered.
    session = await lab.simulator.wait_session(1, timeout=5)
    assert any(r.type == "input_audio_buffer.append" for r in session.client_events)
    played = read_pcm(speech_wav)
    recorded = read_pcm(record)
    assert summary.rtp.received_audio_s == pytest.approx(len(recorded) / 8000, abs=0.02)
    assert summary.rtp.packets_received > 200  # 7 s of 20 ms frames, the bot's and silence
    # What came back is the bot's turn: the simulator plays the caller's utterance back, so
    # it is speech, it starts only after the caller finished, and it is the same utterance.
    play_end = len(played)
    assert voiced_seconds(recorded[:play_end].astype("<i2").tobytes()) == 0.0
    assert summary.rtp.received_voiced_s >= 0.5 * voiced_seconds(played.astype("<i2").tobytes())
    _, lag = best_correlation(played, recorded)
    assert lag >= play_end, lag
    assert chunk_similarity(played, recorded, lag) > 0.9


@pytest.mark.parametrize("mode", ["rfc4733", "info"])
async def test_dtmf_reaches_the_model_as_text(lab: Lab, mode: str) -> None:
    summary, out = await lab.call(dtmf="12#", dtmf_mode=mode, dtmf_at=0.3, duration=2.5)

    assert summary.exit_code == 0, out
    assert summary.dtmf_sent == "12#" and summary.dtmf_mode == mode
    if mode == "rfc4733":
        assert summary.rtp.dtmf_packets_sent >= 3 * 4  # 100 ms events plus 3 end packets
    else:
        assert summary.rtp.dtmf_packets_sent == 0
    # The gateway collects digits up to '#' and tells the model what was pressed.
    assert any("1 2 #" in text for text in lab.texts_sent()), lab.texts_sent()


@pytest.mark.parametrize(
    "lab",
    [
        {
            "simulator_options": SimulatorOptions(
                tool_calls=(ToolCallRule("send_dtmf", {"digits": "42"}, when_text_contains="5"),)
            )
        }
    ],
    indirect=True,
)
async def test_prints_dtmf_the_far_end_sends(lab: Lab) -> None:
    # The model answers the caller's "5#" with the send_dtmf tool: RFC 4733 back to us.
    summary, out = await lab.call(dtmf="5#", dtmf_at=0.3, duration=4.0)
    assert summary.exit_code == 0, out
    assert summary.dtmf_received == "42", out
    assert "received DTMF 4" in out and "received DTMF 2" in out


@pytest.mark.parametrize(
    "lab", [{"media.echo": True, "realtime.simulator": "never"}], indirect=True
)
async def test_echo_gateway_returns_the_played_audio(
    lab: Lab, speech_wav: Path, tmp_path: Path
) -> None:
    record = tmp_path / "echo.wav"
    summary, out = await lab.call(
        play=str(speech_wav), record=str(record), duration=3.5, codec="pcma"
    )
    assert summary.exit_code == 0, out
    assert summary.rtp.codec == "PCMA"
    played, recorded = read_pcm(speech_wav), read_pcm(record)
    _, lag = best_correlation(played, recorded)
    assert lag < 8000  # back within a second (jitter buffers + one frame each way)
    # Two G.711 passes cost some SNR, nothing more: the echo is the same signal.
    assert chunk_similarity(played, recorded, lag) > 0.95
    assert not lab.simulator.sessions  # echo mode opens no Realtime session


@pytest.mark.parametrize("lab", [{"calls.max_duration_s": 1.0}], indirect=True)
async def test_far_end_bye_ends_the_call_with_exit_0(lab: Lab) -> None:
    summary, out = await lab.call(duration=20.0)
    assert summary.exit_code == 0, out
    assert summary.ended_by == "remote"
    assert summary.duration_s < 20.0
    assert "far end hung up (BYE)" in out


async def test_interrupt_hangs_up_with_bye(lab: Lab) -> None:
    interrupted = asyncio.Event()
    out = io.StringIO()
    task = asyncio.ensure_future(
        place_call(lab.options(duration=20.0), out, interrupted=interrupted)
    )

    async def answered() -> None:
        while "200 OK" not in out.getvalue():  # noqa: ASYNC110 - polling a StringIO
            await asyncio.sleep(0.02)

    await asyncio.wait_for(answered(), TIMEOUT)
    interrupted.set()
    summary = await asyncio.wait_for(task, TIMEOUT)
    assert summary.exit_code == 0
    assert summary.ended_by == "interrupted" and summary.bye_status == 200
    await asyncio.wait_for(_until(lambda: lab.gateway.active_calls == 0), TIMEOUT)


@pytest.mark.parametrize("lab", [{"calls.answer_delay_ms": 10000}], indirect=True)
async def test_interrupt_while_ringing_cancels(lab: Lab) -> None:
    interrupted = asyncio.Event()
    out = io.StringIO()
    task = asyncio.ensure_future(place_call(lab.options(duration=5.0), out, interrupted))

    async def ringing() -> None:
        while "180 Ringing" not in out.getvalue():  # noqa: ASYNC110 - polling a StringIO
            await asyncio.sleep(0.02)

    await asyncio.wait_for(ringing(), TIMEOUT)
    interrupted.set()
    summary = await asyncio.wait_for(task, TIMEOUT)
    assert summary.exit_code == 1 and not summary.answered
    assert summary.status == 487, out.getvalue()  # CANCEL -> 487 Request Terminated
    assert "interrupted before the answer" in out.getvalue()
    await asyncio.wait_for(_until(lambda: lab.gateway.active_calls == 0), TIMEOUT)


async def _until(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - the gateway has no event for this
        await asyncio.sleep(0.02)


async def test_tcp_call(lab: Lab) -> None:
    summary, out = await lab.call(transport="tcp", duration=1.0, codec="pcmu")
    assert summary.exit_code == 0, out
    assert summary.rtp.codec == "PCMU" and summary.rtp.packets_received > 0


@pytest.mark.parametrize(
    "lab",
    [{"sip.inbound_auth": {"realm": "gw", "username": "alice", "password": "s3cret"}}],
    indirect=True,
)
async def test_digest_credentials_answer_the_challenge(lab: Lab) -> None:
    summary, out = await lab.call(username="alice", password="s3cret", duration=1.0)
    assert summary.exit_code == 0, out

    summary, out = await lab.call(username="alice", password="wrong", duration=1.0)
    assert summary.exit_code == 1
    assert summary.status in (401, 403, 407) and "call failed: rejected" in out


# -- failures: exit 1 and exit 2 (the CLI entry point, synchronous) ---------------------------
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_closed_port_fails_fast_with_exit_1(
    port_block: int, transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = main(
        [
            f"sip:100@127.0.0.1:{port_block}",
            "--transport",
            transport,
            "--local-host",
            "127.0.0.1",
            "--rtp-ports",
            f"{port_block + 30}-{port_block + 39}",
            "--duration",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "call failed:" in out and f"127.0.0.1:{port_block}" in out, out
    # Not Timer B (32 s): ICMP (UDP) or the refused connect (TCP) ends it. Generous bound.
    assert time.monotonic() - started < 25


def test_bad_wav_files_exit_2_naming_the_file(
    tmp_path: Path, port_block: int, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"sip:100@127.0.0.1:{port_block}"
    wrong_rate = tmp_path / "cd.wav"
    with wave.open(str(wrong_rate), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44100)
        wav.writeframes(b"\x00\x00" * 2 * 441)
    not_wav = tmp_path / "notes.txt"
    not_wav.write_text("hello")
    missing = tmp_path / "missing.wav"
    for path, expect in (
        (wrong_rate, "44100 Hz, 2 channel(s)"),
        (not_wav, "not a usable WAV"),
        (missing, "no such file"),
    ):
        assert main([target, "--play", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and expect in err, err
        assert "8000 Hz mono 16-bit" in err or expect == "no such file"


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--dtmf", "12x"], "--dtmf: not a DTMF digit"),
        (["--rtp-ports", "9-3"], "--rtp-ports"),
        (["--duration", "0"], "--duration"),
        (["--local-host", "example.com"], "--local-host"),
    ],
)
def test_bad_options_exit_2(
    argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sip:100@127.0.0.1:9", *argv]) == 2
    assert expect in capsys.readouterr().err


def test_not_a_sip_uri_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["http://example.com/"]) == 2
    assert "not a SIP URI" in capsys.readouterr().err or "sip:" in capsys.readouterr().err


# -- pieces -------------------------------------------------------------------------------------
def test_voiced_seconds_counts_loud_frames_only() -> None:
    silence = np.zeros(8000, dtype="<i2")
    tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype("<i2")
    hiss = np.random.default_rng(1).normal(0, 10, 8000).astype("<i2")  # about -70 dBFS
    assert voiced_seconds(silence.tobytes()) == 0.0
    assert voiced_seconds(hiss.tobytes()) == 0.0
    assert voiced_seconds(np.concatenate([silence, tone, hiss]).tobytes()) == pytest.approx(0.5)


def test_recorder_keeps_the_timeline_across_gaps() -> None:
    recorder = Recorder("PCMU", started_at=100.0)
    frame = bytes([0x00]) * 160  # u-law 0x00 is full scale: easy to find again
    # First audio 2 s after the answer: 2 s of silence lead in (minus this frame).
    recorder.add([Frame(frame, 0)], now=102.0)
    assert recorder.seconds == pytest.approx(2.0, abs=0.02)
    # Next frame 20 ms later: no padding (within the jitter slack).
    recorder.add([Frame(frame, 160)], now=102.02)
    assert recorder.seconds == pytest.approx(2.02, abs=0.02)
    # A 3 s stall the jitter buffer did not fill: padded with silence to the arrival time.
    recorder.add([Frame(frame, 320)], now=105.04)
    assert recorder.seconds == pytest.approx(5.04, abs=0.03)
    pcm = np.frombuffer(recorder.pcm16(), dtype="<i2")
    loud = np.flatnonzero(np.abs(pcm) > 8000)
    assert loud.min() == pytest.approx(2.0 * 8000 - 160, abs=160)
    assert loud.max() == pytest.approx(len(pcm) - 1, abs=1)


def test_read_wav_round_trip_and_default_duration(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    pcm = (np.arange(16000) % 200 - 100).astype("<i2").tobytes()
    write_wav(path, pcm)
    assert read_wav(path) == pcm
    assert default_duration(pcm) == 10.0  # 2 s played: 2 * 2 + 4 = 8, at least 10
    assert default_duration(pcm * 4) == 20.0  # 8 s: 2 * 8 + 4
    assert default_duration(None) == 10.0
    with pytest.raises(UsageError, match="is a directory"):
        read_wav(tmp_path)


# -- the README flow: real processes ----------------------------------------------------------
@pytest.fixture
def gateway_process(port_block: int, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "SRG_"))}
    env["SRG_CONTROL_PORT"] = "0"  # the control API's default 8080 may be taken here
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "run",
                "--sip-host",
                "127.0.0.1",
                "--sip-port",
                str(port_block),
                "--rtp-ports",
                f"{port_block + 10}-{port_block + 29}",
                "--log-format",
                "json",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        deadline = time.monotonic() + 20
        while b'"gateway.started"' not in log_path.read_bytes():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def test_cli_calls_gateway_run_and_gets_audio_back(
    gateway_process: subprocess.Popen[bytes], port_block: int, speech_wav: Path, tmp_path: Path
) -> None:
    record = tmp_path / "reply.wav"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.softphone",
            f"sip:100@127.0.0.1:{port_block}",
            "--play",
            str(speech_wav),
            "--record",
            str(record),
            "--dtmf",
            "12#",
            "--duration",
            "7",
            "--rtp-ports",
            f"{port_block + 30}-{port_block + 39}",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    progress = result.stderr.decode()
    assert result.returncode == 0, progress
    summary = orjson.loads(result.stdout)
    assert summary["answered"] and summary["audio_came_back"], summary
    assert summary["exit_code"] == 0 and summary["dtmf_sent"] == "12#"
    assert summary["rtp"]["received_voiced_s"] > 0.3
    assert "100 Trying" in progress and "200 OK" in progress and "BYE -> 200" in progress
    assert read_pcm(record).size > 6 * 8000
    assert gateway_process.poll() is None  # the gateway is still serving
