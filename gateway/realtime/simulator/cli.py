"""`sip-realtime-gateway simulator`: the local voice-service simulator with its options as flags.
One process serves both APIs, each at its own path: Realtime GA (`url`) and GPT-Live
(`live_url`, /v1/live/sessions; gateway/live/simulator/); both URLs are printed, Realtime first.

The options are `SimulatorOptions` (options.py); `--script` takes any of them as JSON and the
flags override it. The GPT-Live options (`LiveSimulatorOptions`, gateway/live/simulator/
options.py) go under the script's "live" key and the `--live-*` flags. SIGINT and SIGTERM stop it however it was started: handlers
are installed explicitly, so a SIGINT that the parent set to "ignored" (`simulator &` in a
non-interactive shell does that) still stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from typing import Any

import orjson

from gateway.busy_port import bind_failure, with_errno
from gateway.live.simulator.options import LiveSimulatorOptions
from gateway.realtime.simulator.options import SimulatorOptions

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port (default %(default)s)")
    parser.add_argument(
        "--script",
        metavar="FILE",
        help="JSON object of simulator options (any SimulatorOptions field), e.g. "
        '{"tool_calls": [{"name": "end_call", "when_text_contains": "bye"}], '
        '"transcripts": ["hello", "bye"]}, and under "live" the GPT-Live ones (any '
        'LiveSimulatorOptions field, e.g. {"live": {"delta_ms": 20, "tool_calls": [{"name": '
        '"end_call", "on_utterance": 2}]}}); the flags below override it',
    )
    parser.add_argument(
        "--reply-audio",
        metavar="FILE",
        help="raw G.711 bytes to answer every turn with (default: the caller's own words)",
    )
    parser.add_argument(
        "--reply-format",
        choices=["audio/pcmu", "audio/pcma"],
        help="law of --reply-audio (default audio/pcmu)",
    )
    parser.add_argument("--reply-text", metavar="TEXT", help="transcript of every reply")
    parser.add_argument(
        "--transcript",
        metavar="TEXT",
        action="append",
        help="what the caller said on turn 1, 2, ... (repeat the flag; drives tool_calls rules)",
    )
    parser.add_argument(
        "--session-max-s",
        metavar="SECONDS",
        type=float,
        help="session time limit, then session_expired (default 3600, as the service)",
    )
    parser.add_argument(
        "--default-reply-ms",
        metavar="MS",
        type=int,
        help="length of a reply when there is no caller audio to play back (default 1000)",
    )
    parser.add_argument(
        "--delta-interval-s",
        metavar="SECONDS",
        type=float,
        help="pause between audio deltas (default 0.002: far faster than real time)",
    )
    parser.add_argument(
        "--vad-db-at-half",
        metavar="DBFS",
        type=float,
        help="simulated VAD: frames louder than this at threshold 0.5 are speech (default -40)",
    )
    parser.add_argument(
        "--drop-after-s",
        metavar="SECONDS",
        type=float,
        help="cut each session's connection this long after it opened (reconnect tests); 0 = never",
    )
    parser.add_argument(
        "--keep-sessions",
        metavar="N",
        type=int,
        help="finished sessions kept for inspection, the most recent (default 50; live ones always)",
    )
    parser.add_argument(
        "--keep-audio-chars",
        metavar="N",
        type=int,
        help="base64 audio characters kept in each session's recorded events (default 2 MiB)",
    )
    parser.add_argument(
        "--load",
        action="store_const",
        const=True,
        dest="load_mode",
        help="load mode for load tests (both APIs): the same protocol, but no recorded audio "
        "events, a VAD on a few samples per frame and uvloop, so the simulator is not the "
        "bottleneck",
    )

    live = parser.add_argument_group("GPT-Live (/v1/live/sessions)")
    for flag, kind, text in _LIVE_FLAGS:
        live.add_argument(
            f"--live-{flag.replace('_', '-')}",
            dest=f"live_{flag}",
            type=kind,
            metavar="N",
            help=text,
        )


# (LiveSimulatorOptions field, type, help) of the --live-* flags.
_LIVE_FLAGS = (
    ("delta_ms", int, "one output audio delta every N ms (default 100, as observed)"),
    ("idle_expire_s", float, "end a session N s after its input audio stops (default 30)"),
    ("session_max_s", float, "expires_at = start + N s, then session.closed expired (3600)"),
    ("barge_in_latency_ms", int, "the model falls silent N ms after the caller talks over it"),
    ("usage_every_s", float, "session.usage.updated every N s of session clock (default 15)"),
    ("drop_after_s", float, "cut each session's connection N s after it started; 0 = never"),
    ("reject_starts", int, "refuse the first N session.start with a server_error"),
    ("ignore_starts", int, "leave the next N session.start unanswered (start-up timeouts)"),
    ("keep_sessions", int, "finished GPT-Live sessions kept for inspection (default 50)"),
)

_FLAG_OPTIONS = {
    "reply_format": "reply_format",
    "reply_text": "reply_text",
    "transcript": "transcripts",
    "session_max_s": "session_max_s",
    "default_reply_ms": "default_reply_ms",
    "delta_interval_s": "delta_interval_s",
    "vad_db_at_half": "vad_db_at_half",
    "drop_after_s": "drop_after_s",
    "keep_sessions": "keep_sessions",
    "keep_audio_chars": "keep_audio_chars",
    "load_mode": "load_mode",
}


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """SimulatorOptions fields from --script and the flags; ValueError names the problem."""
    options: dict[str, Any] = {}
    if args.script:
        try:
            with open(args.script, "rb") as handle:
                script = orjson.loads(handle.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"cannot read --script: {exc}") from None
        if not isinstance(script, dict):
            raise ValueError("--script must hold a JSON object")
        options.update(script)
    live = dict(options.pop("live", None) or {})
    for flag, _, _ in _LIVE_FLAGS:
        value = getattr(args, f"live_{flag}", None)
        if value is not None:
            live[flag] = value
    for flag, option in _FLAG_OPTIONS.items():
        value = getattr(args, flag, None)
        if value is not None:
            options[option] = value
    if args.reply_audio:
        try:
            with open(args.reply_audio, "rb") as handle:
                options["reply_audio"] = handle.read()
        except OSError as exc:
            raise ValueError(f"cannot read --reply-audio: {exc}") from None
    try:
        SimulatorOptions.from_mapping(options)
        LiveSimulatorOptions.from_mapping(live)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad simulator options: {exc}") from None
    if options.get("load_mode") and "load_mode" not in live:
        live["load_mode"] = True  # --load serves both APIs in load mode
    if live:
        options["live"] = live
    return options


async def serve(host: str, port: int, options: dict[str, Any]) -> int:
    # Here, not at the top: `sip-realtime-gateway --help` imports this module to build its
    # parser and should not load websockets and numpy for it.
    from gateway.realtime.simulator.server import Simulator

    options = dict(options)
    live = LiveSimulatorOptions.from_mapping(options.pop("live", None) or {})
    simulator = Simulator(host, port, SimulatorOptions.from_mapping(options), live)
    try:
        await simulator.start()
    except OSError as exc:
        exc = with_errno(exc, host, port, ("tcp",))
        message = bind_failure("simulator port", f"{host}:{port}", exc, "--port")
        print(f"sip-realtime-gateway simulator: error: {message}", file=sys.stderr)
        return EXIT_FAILURE
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Explicit handlers: they replace an inherited SIG_IGN (a background job's SIGINT).
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"realtime simulator listening on {simulator.url}", flush=True)
    print(f"GPT-Live simulator listening on {simulator.live_url}", flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await simulator.stop()
    return EXIT_OK


def settle_heap() -> int:
    """As `run` does (gateway/cli.py): what start-up allocated (the modules, the `openai` SDK's
    models the schema check uses: ~100 000 objects) lives as long as the process, so it is
    frozen out of the collector's reach. A full collection then walks only the sessions'
    objects (walking the start-up heap too took 93 ms here, a stall of every session), and no
    longer waits for a quarter of the start-up heap's worth of new long-lived objects before it
    comes: what waits for it (the reference cycles the websockets library leaves per
    connection) is freed sooner (issue 14). Returns how many objects that froze."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def main(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"sip-realtime-gateway simulator: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if options.get("load_mode"):
        _install_uvloop()
    return asyncio.run(serve(args.host, args.port, options))


def _install_uvloop() -> None:
    # As `run` does (gateway/cli.py): uvloop cuts the event loop's cost per WebSocket frame;
    # the stdlib loop serves where it is not installed.
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
