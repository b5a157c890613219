"""`sip-realtime-gateway call`: a test softphone built on our own sip/ and media code.

    sip-realtime-gateway call sip:100@127.0.0.1:5060 --play hello.wav --record reply.wav \\
        --dtmf 12# --duration 20

It binds its own SIP transport on a free port, sends an INVITE with a G.711 offer, prints the
call progress, plays a WAV file as paced 20 ms RTP (the gateway's own `CallOutput` +
`PlayoutQueue` on the shared media clock, so what the gateway hears is exactly what a PBX would
send), records what comes back into a WAV file, sends DTMF (RFC 4733 or SIP INFO), hangs up
with BYE at `--duration` and prints RTP statistics both ways. The line that matters most is
"non-silent": it says at a glance whether audio came back (one-way audio is the classic failure).

Exit codes: 0 the call was answered and ended (by us, by the far end's BYE, or by Ctrl-C),
1 the call failed (status and reason printed), 2 usage or file errors (the message names the file).

Also runnable as `python -m gateway.softphone ...`. Tests drive `place_call(CallOptions(...))`
directly inside their own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import math
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.call.answer import negotiated
from gateway.media import g711
from gateway.media.dtmf import validate_digits
from gateway.media.jitter import Frame
from gateway.media.leg import LegSettings, MediaLeg
from gateway.media.pacer import shared_clock
from gateway.media.playout import (
    DEFAULT_MAX_QUEUED_BYTES,
    FRAME_SAMPLES,
    IdlePolicy,
    PlayoutQueue,
)
from gateway.media.ports import PortAllocator
from gateway.media.stream import NoFreePortError
from gateway.softphone_audio import Recorder as Recorder
from gateway.softphone_audio import UsageError as UsageError
from gateway.softphone_audio import read_wav as read_wav
from gateway.softphone_audio import voiced_seconds as voiced_seconds
from gateway.softphone_audio import write_wav as write_wav
from gateway.softphone_report import EXIT_CALL_FAILED as EXIT_CALL_FAILED
from gateway.softphone_report import EXIT_OK as EXIT_OK
from gateway.softphone_report import CallSummary as CallSummary
from gateway.softphone_report import RtpSummary as RtpSummary
from gateway.softphone_report import format_summary as format_summary
from sip.message import Response, SipParseError, parse_message
from sip.sdp import CodecPrefs, MediaInfo, SdpError, build_offer, parse_sdp, process_answer
from sip.transport import Transport, TransportAddr
from sip.uri import UriError, parse_uri
from sip.useragent import Call, Credentials, OutgoingCall, UserAgent

PROG = "sip-realtime-gateway call"

EXIT_USAGE = 2

SAMPLE_RATE = 8000
DEFAULT_RTP_PORTS = "40000-40999"  # away from the gateway's default 10000-20000 on the same host
HANGUP_TIMEOUT_S = 5.0
INFO_TIMEOUT_S = 5.0
INFO_DIGIT_GAP_S = 0.15  # between INFO digits: some PBXs drop digits that arrive back to back
INFO_DIGIT_MS = 100

log = logging.getLogger("gateway.softphone")


# ---------------------------------------------------------------------------------------------
# Options and results


@dataclass
class CallOptions:
    target: str
    play: str | None = None
    record: str | None = None
    dtmf: str | None = None
    dtmf_at: float | None = None  # seconds after the answer; None: after the play file
    dtmf_mode: str = "rfc4733"  # rfc4733 | info
    duration: float | None = None  # seconds after the answer; None: see default_duration()
    codec: str = "both"  # pcmu | pcma | both
    local_host: str | None = None  # None: the address the OS routes towards the target
    local_port: int = 0
    rtp_ports: str = DEFAULT_RTP_PORTS
    transport: str = "udp"
    username: str | None = None
    password: str | None = None
    ring_timeout: float = 30.0
    json: bool = False


def default_duration(play_pcm16: bytes | None) -> float:
    """Long enough to play the file and hear a reply of the same length (the simulator echoes
    the utterance) plus turn detection; 10 s when nothing is played."""
    if not play_pcm16:
        return 10.0
    play_s = len(play_pcm16) / 2 / SAMPLE_RATE
    return max(10.0, math.ceil(2 * play_s + 4.0))


def parse_rtp_ports(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        port_min, port_max = int(low), int(high)
    except ValueError:
        raise UsageError(f"--rtp-ports: {text!r} is not MIN-MAX (e.g. 40000-40999)") from None
    if not sep or not 1 <= port_min < port_max <= 65535:
        raise UsageError(f"--rtp-ports: {text!r} is not a port range MIN-MAX within 1-65535")
    return port_min, port_max


def local_address_towards(host: str) -> str:
    """The address the OS would send from to reach `host` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# The call


class Printer:
    """Human-readable progress lines; on stderr when stdout carries the JSON summary."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, line: str) -> None:
        print(line, file=self.out, flush=True)


class Softphone:
    """One outbound call from start to summary. `await run()` never raises for network or peer
    problems: they end up in `summary.error` / `summary.status`."""

    def __init__(self, options: CallOptions, say: Printer, play_pcm16: bytes | None) -> None:
        self.options = options
        self.say = say
        self.play_pcm16 = play_pcm16
        self.summary = CallSummary(target=options.target)
        self.ua: UserAgent | None = None
        self.leg: MediaLeg | None = None
        self.recorder: Recorder | None = None
        self.call: OutgoingCall | None = None
        self.media: MediaInfo | None = None
        self.interrupted = asyncio.Event()
        self._remote_bye = asyncio.Event()
        self._trying_seen = False
        self._answered_at = 0.0

    # -- SIP callbacks -----------------------------------------------------------------------
    def _on_progress(self, call: Call, response: Response) -> None:
        self._progress(response.status, response.reason)

    def _progress(self, status: int, reason: str) -> None:
        line = f"{status} {reason}".strip()
        self.summary.progress.append(line)
        self.say(f"  {line}")

    def _on_call_ended(self, call: Call, reason: str) -> None:
        if reason == "bye":
            self._remote_bye.set()

    def _peek(self, data: bytes, source: TransportAddr) -> None:
        """The UA reports only 180/183 to `on_progress`; print the 100 Trying as well."""
        assert self.ua is not None
        if data.startswith(b"SIP/2.0 100") and not self._trying_seen:
            with contextlib.suppress(SipParseError):
                message = parse_message(data)
                if isinstance(message, Response) and message.cseq[1] == "INVITE":
                    self._trying_seen = True
                    self._progress(message.status, message.reason)
        self.ua.handle_datagram(data, source)

    # -- main flow -----------------------------------------------------------------------------
    async def run(self) -> CallSummary:
        try:
            await self._run()
        except Exception as exc:  # a bug or an unexpected peer: report it, still clean up
            log.exception("softphone failed")
            self.summary.error = self.summary.error or f"internal error: {exc!r}"
        finally:
            await self._cleanup()
        return self.summary

    async def _run(self) -> None:
        opts = self.options
        summary = self.summary
        uri = parse_uri(opts.target)
        proto = opts.transport
        host = uri.host_no_brackets
        local_host = opts.local_host or local_address_towards(host)
        transport = Transport(local_host, opts.local_port, transports=(proto,))
        credentials = (
            Credentials(opts.username, opts.password or "") if opts.username is not None else None
        )
        self.ua = UserAgent(
            transport,
            user_agent="sip-realtime-gateway-softphone",
            contact_user=opts.username or "softphone",
            credentials=credentials,
            on_call_ended=self._on_call_ended,
        )
        try:
            await self.ua.start()
        except OSError as exc:
            summary.error = f"cannot bind SIP {proto} on {local_host}:{opts.local_port}: {exc}"
            return
        transport.on_message = self._peek  # after start(): the UA installs its own handler

        codecs = {"pcmu": ("PCMU",), "pcma": ("PCMA",), "both": ("PCMU", "PCMA")}[opts.codec]
        port_min, port_max = parse_rtp_ports(opts.rtp_ports)
        loop = asyncio.get_running_loop()
        self.leg = MediaLeg(
            LegSettings(codec=codecs[0], payload_type=g711_pt(codecs[0]), wants_audio=True),
            signalling_host=None,
            on_dtmf=self._on_dtmf,
        )
        self.leg.on_audio = self._on_audio
        try:
            rtp_port = await self.leg.open(
                PortAllocator(port_min, port_max, quarantine_s=0), local_host
            )
        except NoFreePortError as exc:
            summary.error = str(exc)
            return
        offer = build_offer(local_host, rtp_port, CodecPrefs(codecs=codecs))
        try:
            dest = await self.ua.resolve(uri, proto)
        except OSError as exc:
            summary.error = f"cannot resolve {host}: {exc}"
            return
        summary.rtp.local_rtp = f"{local_host}:{rtp_port}"
        self.say(
            f"calling {opts.target} over {proto.upper()} from "
            f"{local_host}:{self.ua.advertised_port} (offer {'/'.join(codecs)}, RTP {rtp_port})"
        )

        answered = await self._invite(dest, offer.to_bytes(), credentials)
        if not answered:
            return
        await self._talk(loop)

    async def _invite(
        self, dest: TransportAddr, offer_sdp: bytes, credentials: Credentials | None
    ) -> bool:
        assert self.ua is not None
        opts, summary = self.options, self.summary
        counters = self.ua.transport.counters
        received_before = counters.received
        invite = asyncio.ensure_future(
            self.ua.invite(
                opts.target,
                offer_sdp,
                from_user=opts.username or "softphone",
                dest=dest,
                credentials=credentials,
                ring_timeout=opts.ring_timeout,
                on_progress=self._on_progress,
            )
        )
        interrupted = asyncio.ensure_future(self.interrupted.wait())
        probe = asyncio.ensure_future(
            udp_port_refused(dest.host, dest.port) if dest.proto == "udp" else _never()
        )
        try:
            # Bounded: the UA gives up after ring_timeout + Timer B.
            while not invite.done():
                await asyncio.wait(
                    {invite, interrupted, probe}, return_when=asyncio.FIRST_COMPLETED
                )
                if interrupted.done() and not invite.done():
                    self.say("  interrupted: cancelling")
                    await self._cancel_ringing(invite)
                    summary.error = "interrupted before the answer"
                    break
                if probe.done() and not invite.done():
                    if probe.result() and counters.received == received_before:
                        invite.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await invite
                        summary.reason = "destination unreachable"
                        summary.error = (
                            f"nothing listens on {dest.host}:{dest.port}/udp "
                            "(ICMP port unreachable)"
                        )
                        return False
                    probe = asyncio.ensure_future(_never())
        finally:
            interrupted.cancel()
            probe.cancel()
        if summary.error or not invite.done() or invite.cancelled():
            return False  # interrupted while ringing: _cancel_ringing recorded the outcome
        call = invite.result()
        self.call = call
        summary.status = call.status
        summary.reason = call.reason
        if call.status is None or call.status >= 300:
            if call.status is None and counters.received == received_before:
                summary.error = (
                    f"no response from {dest.host}:{dest.port}/{dest.proto} "
                    f"({'connection refused or unreachable' if dest.proto == 'tcp' else 'timeout'})"
                )
            elif call.status is None:
                summary.error = f"no answer within {opts.ring_timeout:g} s (cancelled)"
            else:
                summary.error = f"rejected: {call.status} {call.reason}"
            return False
        self._progress(call.status, call.reason)
        try:
            if call.remote_sdp is None:
                raise SdpError("the 200 OK has no SDP answer")
            offer = parse_sdp(call.local_sdp or b"")
            self.media = process_answer(offer, parse_sdp(call.remote_sdp))
        except SdpError as exc:
            summary.error = f"unusable SDP answer: {exc}"
            self.say(f"call failed: {summary.error}; hanging up")
            summary.bye_status = await call.hangup(
                'SIP;cause=488;text="unusable SDP answer"', timeout=HANGUP_TIMEOUT_S
            )
            return False
        summary.answered = True
        return True

    async def _cancel_ringing(self, invite: asyncio.Future[OutgoingCall]) -> None:
        assert self.ua is not None
        for call in list(self.ua.calls.values()):
            if isinstance(call, OutgoingCall):
                await call.hangup(timeout=HANGUP_TIMEOUT_S)  # CANCEL before the answer (15)
        done, _ = await asyncio.wait({invite}, timeout=HANGUP_TIMEOUT_S)
        if not done:
            invite.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await invite
        elif not invite.cancelled() and invite.exception() is None:
            call = invite.result()
            self.summary.status, self.summary.reason = call.status, call.reason
            if call.status is not None and call.status < 300:
                # The 200 crossed our CANCEL: the UA has already sent the BYE for it.
                self.summary.ended_by = "interrupted"

    async def _talk(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.leg is not None and self.call is not None and self.media is not None
        opts, summary, media, leg = self.options, self.summary, self.media, self.leg
        leg.apply(negotiated(media))
        summary.rtp.codec = media.codec
        summary.rtp.remote_rtp = f"{media.remote_host}:{media.remote_port}"
        self.say(
            f"  media: {media.codec}/8000 to {media.remote_host}:{media.remote_port}, "
            f"telephone-event {media.telephone_event_pt if media.telephone_event_pt else 'none'}"
            f", direction {media.direction}"
        )
        self._answered_at = loop.time()
        self.recorder = Recorder(media.codec, self._answered_at)
        # The whole play file is queued at once: the queue's bound (playout.py) must hold it.
        play_bytes = len(self.play_pcm16) // 2 if self.play_pcm16 else 0
        leg.queue = queue = PlayoutQueue(
            codec=media.codec,
            idle_policy=IdlePolicy.SILENCE,
            max_queued_bytes=max(DEFAULT_MAX_QUEUED_BYTES, play_bytes),
        )
        if self.play_pcm16:
            queue.enqueue("play", g711.encode(media.codec, self.play_pcm16))
            queue.end_of_item("play")
            self.say(f"  playing {opts.play} ({len(self.play_pcm16) / 2 / SAMPLE_RATE:.2f} s)")
        leg.start(shared_clock(loop))
        leg.start_output(send_events=media.telephone_event_pt is not None)

        duration = opts.duration if opts.duration is not None else default_duration(self.play_pcm16)
        deadline = self._answered_at + duration
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._remote_bye.wait()),
            asyncio.ensure_future(self.interrupted.wait()),
        ]
        dtmf_task = asyncio.ensure_future(self._send_dtmf(deadline)) if opts.dtmf else None
        try:
            await asyncio.wait(
                waiters,
                timeout=max(deadline - loop.time(), 0.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
            if dtmf_task is not None:
                dtmf_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dtmf_task
        leg.stop_output()
        summary.duration_s = round(loop.time() - self._answered_at, 3)
        if self._remote_bye.is_set():
            summary.ended_by = "remote"
            self.say(f"  far end hung up (BYE) after {summary.duration_s:.1f} s")
            return
        summary.ended_by = "interrupted" if self.interrupted.is_set() else "local"
        why = "interrupted" if self.interrupted.is_set() else f"duration {duration:g} s reached"
        summary.bye_status = await self.call.hangup(timeout=HANGUP_TIMEOUT_S)
        status = summary.bye_status if summary.bye_status is not None else "no response"
        self.say(f"  {why}: BYE -> {status}")

    async def _send_dtmf(self, deadline: float) -> None:
        assert self.leg is not None and self.leg.queue is not None and self.call is not None
        queue = self.leg.queue
        opts, summary = self.options, self.summary
        digits = opts.dtmf or ""
        loop = asyncio.get_running_loop()
        if opts.dtmf_at is not None:
            await asyncio.sleep(max(self._answered_at + opts.dtmf_at - loop.time(), 0.0))
        else:
            # After the play file has gone out (bounded by the call's own deadline).
            while queue.queued_bytes > 0 and loop.time() < deadline:  # noqa: ASYNC110 - the queue has no completion callback; polled at the frame rate
                await asyncio.sleep(0.02)
            if not self.play_pcm16:
                # Nothing to play: give the far end a moment to get its media going.
                await asyncio.sleep(min(1.0, max(deadline - loop.time(), 0.0)))
        summary.dtmf_mode = opts.dtmf_mode
        if opts.dtmf_mode == "rfc4733":
            try:
                self.leg.send_digits(digits)
            except ValueError as exc:
                self.say(f"  DTMF not sent: {exc}")
                return
            summary.dtmf_sent = digits
            self.say(f"  sending DTMF {digits} (RFC 4733)")
            return
        self.say(f"  sending DTMF {digits} (SIP INFO)")
        for digit in digits:
            body = f"Signal={digit}\r\nDuration={INFO_DIGIT_MS}\r\n".encode()
            response = await self.call.send_request(
                "INFO", body, "application/dtmf-relay", timeout=INFO_TIMEOUT_S
            )
            status = response.status if response is not None else None
            if status is None or status >= 300:
                self.say(f"  INFO {digit} -> {status or 'no response'}")
                return
            summary.dtmf_sent += digit
            await asyncio.sleep(INFO_DIGIT_GAP_S)

    def _on_dtmf(self, digit: str, duration_ms: int | None, source: str) -> None:
        self.summary.dtmf_received += digit
        self.say(f"  received DTMF {digit} ({duration_ms} ms, RFC 4733)")

    def _on_audio(self, frames: list[Frame]) -> None:
        if self.recorder is not None:
            self.recorder.add(frames, asyncio.get_running_loop().time())

    async def _cleanup(self) -> None:
        summary = self.summary
        if self.leg is not None:
            output = self.leg.output
            stats = self.leg.close("softphone done")
            rtp = summary.rtp
            rtp.packets_sent = stats.packets_sent
            rtp.dtmf_packets_sent = output.stats.event_packets if output else 0
            rtp.audio_sent_s = round(
                (stats.packets_sent - rtp.dtmf_packets_sent) * FRAME_SAMPLES / SAMPLE_RATE, 3
            )
            rtp.peer_reported_lost = stats.remote_cumulative_lost
            rtp.peer_reported_jitter_ms = round(stats.remote_jitter_ms, 2)
            rtp.rtcp_received = stats.rtcp_received
            rtp.packets_received = stats.packets_received
            rtp.lost = stats.lost
            rtp.late = stats.late
            rtp.concealed = stats.concealed
            rtp.jitter_ms = round(stats.jitter_ms, 2)
        if self.recorder is not None:
            pcm = self.recorder.pcm16()
            summary.rtp.received_audio_s = round(self.recorder.seconds, 3)
            summary.rtp.received_voiced_s = round(voiced_seconds(pcm), 2)
            if self.options.record:
                try:
                    write_wav(self.options.record, pcm)
                    summary.recording = self.options.record
                except OSError as exc:
                    self.say(f"error: cannot write {self.options.record}: {exc}")
        if self.ua is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ua.close(), 5.0)


async def udp_port_refused(host: str, port: int, attempts: int = 3, interval: float = 0.5) -> bool:
    """True when the host answers UDP to `port` with ICMP port unreachable.

    Linux reports ICMP errors only on *connected* UDP sockets, and the SIP transport's socket is
    unconnected (it talks to everybody), so a closed port would cost the full Timer B (32 s).
    A connected side socket sends RFC 5626 CRLFCRLF keepalive pings: a refused send/recv means
    nobody listens; a pong (or silence: not every peer answers pings) means carry on."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError:
        return False
    with sock:
        sock.setblocking(False)
        try:
            sock.connect((host, port))
            for _ in range(attempts):
                sock.send(b"\r\n\r\n")
                try:
                    await asyncio.wait_for(loop.sock_recv(sock, 64), interval)
                    return False  # a pong: something listens
                except TimeoutError:
                    continue
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


async def _never() -> bool:
    await asyncio.Event().wait()
    return False


def g711_pt(codec: str) -> int:
    return 0 if codec == "PCMU" else 8


# ---------------------------------------------------------------------------------------------
# Entry points


def check_options(options: CallOptions) -> bytes | None:
    """Validate everything that does not need the network; return the play file's PCM16."""
    try:
        uri = parse_uri(options.target)
    except (UriError, ValueError) as exc:
        raise UsageError(f"target {options.target!r} is not a SIP URI: {exc}") from None
    if uri.scheme != "sip":
        raise UsageError(f"target {options.target!r}: only sip: URIs are supported (no TLS)")
    if options.transport not in ("udp", "tcp"):
        raise UsageError(f"--transport: {options.transport!r} is not udp or tcp")
    if options.codec not in ("pcmu", "pcma", "both"):
        raise UsageError(f"--codec: {options.codec!r} is not pcmu, pcma or both")
    if options.dtmf_mode not in ("rfc4733", "info"):
        raise UsageError(f"--dtmf-mode: {options.dtmf_mode!r} is not rfc4733 or info")
    if options.dtmf is not None:
        error = validate_digits(options.dtmf)
        if error is not None:
            raise UsageError(f"--dtmf: {error}")
    if options.dtmf_mode == "info" and options.dtmf and "F" in options.dtmf.upper():
        raise UsageError("--dtmf: flash (F) cannot be sent as SIP INFO dtmf-relay")
    if options.duration is not None and not 0 < options.duration <= 86400:
        raise UsageError(f"--duration: {options.duration:g} is not 0 < seconds <= 86400")
    if options.dtmf_at is not None and options.dtmf_at < 0:
        raise UsageError(f"--dtmf-at: {options.dtmf_at:g} is negative")
    if not 0 <= options.local_port <= 65535:
        raise UsageError(f"--local-port: {options.local_port} is not 0-65535")
    if options.ring_timeout <= 0:
        raise UsageError(f"--ring-timeout: {options.ring_timeout:g} must be > 0")
    if options.local_host is not None:
        try:
            ipaddress.ip_address(options.local_host.strip("[]"))
        except ValueError:
            raise UsageError(f"--local-host: {options.local_host!r} is not an IP address") from None
    parse_rtp_ports(options.rtp_ports)
    if options.record:
        parent = Path(options.record).resolve().parent
        if not parent.is_dir():
            raise UsageError(f"--record: {options.record}: directory {parent} does not exist")
    return read_wav(options.play) if options.play else None


async def place_call(
    options: CallOptions,
    out: TextIO | None = None,
    interrupted: asyncio.Event | None = None,
) -> CallSummary:
    """Validate, call, summarise. UsageError for bad options/files (nothing sent then).
    Setting `interrupted` hangs up (or cancels a ringing call) as Ctrl-C does."""
    play_pcm16 = check_options(options)
    say = Printer(out if out is not None else sys.stdout)
    phone = Softphone(options, say, play_pcm16)
    if interrupted is not None:
        phone.interrupted = interrupted
    summary = await phone.run()
    say(format_summary(summary))
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `call` options (cli.py adds a `call` subparser and calls this)."""
    parser.add_argument(
        "target", metavar="SIP_URI", help="whom to call, e.g. sip:100@127.0.0.1:5060"
    )
    parser.add_argument(
        "--play", metavar="WAV", help="8 kHz mono 16-bit WAV to send once the call is answered"
    )
    parser.add_argument(
        "--record", metavar="WAV", help="write what the far end sends (8 kHz mono 16-bit WAV)"
    )
    parser.add_argument("--dtmf", metavar="DIGITS", help="DTMF digits to send, e.g. 12#")
    parser.add_argument(
        "--dtmf-at",
        metavar="SECONDS",
        type=float,
        help="when to send the digits, seconds after the answer (default: after the play file)",
    )
    parser.add_argument(
        "--dtmf-mode",
        choices=("rfc4733", "info"),
        default="rfc4733",
        help="RFC 4733 telephone-events in RTP, or SIP INFO application/dtmf-relay "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--duration",
        metavar="SECONDS",
        type=float,
        help="hang up with BYE this long after the answer (default: twice the play file + 4 s, "
        "at least 10 s)",
    )
    parser.add_argument(
        "--codec",
        choices=("pcmu", "pcma", "both"),
        default="both",
        help="codec(s) to offer (default %(default)s: PCMU then PCMA)",
    )
    parser.add_argument(
        "--local-host",
        metavar="ADDR",
        help="local IP for SIP and RTP (default: the address routed towards the target)",
    )
    parser.add_argument(
        "--local-port", metavar="PORT", type=int, default=0, help="local SIP port (0 = any)"
    )
    parser.add_argument(
        "--rtp-ports",
        metavar="MIN-MAX",
        default=DEFAULT_RTP_PORTS,
        help="local RTP port range (default %(default)s)",
    )
    parser.add_argument(
        "--transport", choices=("udp", "tcp"), default="udp", help="SIP transport (default udp)"
    )
    parser.add_argument("--username", help="digest username (also the From user)")
    parser.add_argument("--password", help="digest password, used when challenged (401/407)")
    parser.add_argument(
        "--ring-timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="CANCEL when not answered within this (default %(default)s)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary on stdout (progress goes to stderr)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Test softphone: call a SIP URI, play a WAV, record the reply, send DTMF, "
        "print call progress and RTP statistics. Exit 0 call completed, 1 call failed, "
        "2 usage or file error.",
    )
    add_arguments(parser)
    return parser


def options_from_args(args: argparse.Namespace) -> CallOptions:
    return CallOptions(
        target=args.target,
        play=args.play,
        record=args.record,
        dtmf=args.dtmf,
        dtmf_at=args.dtmf_at,
        dtmf_mode=args.dtmf_mode,
        duration=args.duration,
        codec=args.codec,
        local_host=args.local_host,
        local_port=args.local_port,
        rtp_ports=args.rtp_ports,
        transport=args.transport,
        username=args.username,
        password=args.password,
        ring_timeout=args.ring_timeout,
        json=args.json,
    )


async def _main_async(options: CallOptions) -> CallSummary:
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, interrupted.set)
            installed.append(sig)
    try:
        out = sys.stderr if options.json else sys.stdout
        return await place_call(options, out, interrupted)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run one call; `args` from cli.py's `call` subparser, or an argv list."""
    if not isinstance(args, argparse.Namespace):
        try:
            args = build_parser().parse_args(list(args) if args is not None else None)
        except SystemExit as exc:
            return int(exc.code or 0)
    options = options_from_args(args)
    if not logging.getLogger().handlers:
        # The SIP stack's own log lines would drown the progress; problems are reported here.
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = asyncio.run(_main_async(options))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second Ctrl-C while hanging up
        return EXIT_CALL_FAILED
    if options.json:
        print(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
