"""Command line: `sip-realtime-gateway run|simulator|check|call` (also `python -m gateway`).

Exit codes are part of the interface (systemd, containers, the interop tests):
0 clean shutdown, 2 configuration error (the message names the key), 1 runtime failure such as
a SIP port already in use (the message names the address).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from gateway.busy_port import bind_failure, with_errno
from gateway.cli_args import add_config_arguments, overrides_from_args
from gateway.config import (
    VALID_LOG_FORMATS,
    VALID_LOG_LEVELS,
    ConfigError,
    GatewayConfig,
    load_config,
    redacted,
)
from gateway.config.redact import configured_secrets
from gateway.observe.logs import configure_logging, log_event, set_secrets

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

PROG = "sip-realtime-gateway"
DEFAULT_DRAIN_TIMEOUT_S = 30.0  # ShutdownConfig.drain_timeout_s

log = logging.getLogger("gateway")


def version() -> str:
    try:
        return metadata.version("sip-realtime-gateway")
    except metadata.PackageNotFoundError:  # running from a source tree without `pip install`
        return "0.1.0+source"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "SIP/RTP gateway that answers phone calls and bridges them to the OpenAI "
            "Realtime API (G.711 pass-through)."
        ),
        epilog=(
            "Configuration precedence: built-in defaults < --config TOML file < SRG_* "
            "environment variables (e.g. SRG_SIP_PORT, SRG_SIP_ADVERTISED_HOST) < command-line "
            "flags. Secrets come from the environment (OPENAI_API_KEY) or password_env / "
            "password_file. See examples/gateway.toml."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="start the gateway (SIP listener, registrations, calls)",
        description="Start the gateway and serve calls until SIGTERM/SIGINT.",
    )
    add_config_arguments(run)
    run.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        choices=VALID_LOG_LEVELS,
        help=f"one of {', '.join(VALID_LOG_LEVELS)} (log.level)",
    )
    run.add_argument(
        "--log-format",
        choices=VALID_LOG_FORMATS,
        help="json lines, text, or auto = json unless stderr is a terminal (log.format)",
    )
    run.add_argument(
        "--drain-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="on SIGTERM/SIGINT, how long live calls may go on before they get BYE "
        f"(shutdown.drain_timeout_s, default {DEFAULT_DRAIN_TIMEOUT_S:g})",
    )

    sim = sub.add_parser(
        "simulator",
        help="run the local Realtime API simulator (for tests and `make run` without a key)",
        description="Run the protocol-faithful local Realtime API simulator until SIGINT or "
        "SIGTERM (Ctrl-C; also when started in the background with `&`).",
    )
    from gateway.realtime.simulator import cli as simulator_cli

    simulator_cli.add_arguments(sim)
    from gateway import doctor

    check = sub.add_parser(
        "check",
        help="doctor: validate config, ports, NAT, the Realtime endpoint and registrations",
        description="Check the configuration, SIP/RTP ports and the advertised address (NAT), "
        "open a Realtime session confirming audio/pcmu and audio/pcma, and try each "
        "registration once. Exit 0 when nothing failed (warnings allowed), 1 otherwise.",
    )
    doctor.add_arguments(check)

    from gateway import softphone

    call = sub.add_parser(
        "call",
        help="test softphone: call a SIP URI, play a WAV, record the reply, send DTMF, "
        "print RTP statistics",
        description="A test softphone built on the gateway's own SIP and media code. Exit 0 "
        "when the call completed, 1 when it failed (the status is printed), 2 on a usage or "
        "file error.",
    )
    softphone.add_arguments(call)
    return parser


def _install_uvloop() -> None:
    # uvloop halves per-packet overhead on the RTP path; the stdlib loop works everywhere.
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(
    config: GatewayConfig,
    drain_timeout: float | None = None,
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> int:
    """Start the gateway, wait for SIGTERM/SIGINT, drain and stop. Returns the exit code.

    SIGHUP re-reads `config_path` (with the command line's `overrides` applied again): routes,
    instructions files and the admission keys are applied; a bad file, or a changed key that
    needs a restart, is logged and the running configuration stays."""
    from gateway.serve import Gateway  # imported here so `--help` works even if sip/ is broken

    if drain_timeout is None:
        drain_timeout = config.shutdown.drain_timeout_s
    gateway = Gateway(config, config_path=config_path, overrides=overrides)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers first: a SIGTERM that arrives while we bind still gives a clean drain + exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload)
    try:
        try:
            await gateway.start()
        except OSError as exc:
            address = f"{config.sip.host}:{config.sip.port}"
            sip = config.sip
            message = bind_failure(
                f"SIP port ({', '.join(sip.transports)})",
                address,
                with_errno(exc, sip.host, sip.port, sip.transports),
                "--sip-port",
                "sip.port",
            )
            log_event(
                log,
                "gateway.start_failed",
                f"cannot start: {message}",
                level=logging.ERROR,
                address=address,
                error=exc.strerror or str(exc),
            )
            print(f"{PROG}: error: cannot start: {message}", file=sys.stderr)
            await gateway.stop(drain_timeout=0)
            return EXIT_FAILURE
        settle_heap()
        await stop_requested.wait()
        log_event(log, "gateway.stopping", "signal received, draining calls")
        await gateway.stop(drain_timeout=drain_timeout)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return EXIT_OK


def settle_heap() -> int:
    """Move everything allocated at startup (modules, config, the bound gateway) out of the
    collector's reach; returns how many objects that froze.

    They live as long as the process, yet every full collection would walk them again: about
    50 000 objects, a 20-50 ms stall of the event loop each time (measured beside
    bench/latency.py at 100 calls), during which no RTP is read or sent. Calls' own objects
    are collected as before."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ, overrides_from_args(args))
    except ConfigError as exc:
        print(f"{PROG}: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log.level, config.log.format)
    set_secrets(configured_secrets(config))  # before the config line: URLs may hold tokens
    log_event(log, "gateway.config", "configuration loaded", config=redacted(config))
    from gateway.doctor import model_warnings

    for warning in model_warnings(config):
        log_event(log, "realtime.model_shutdown", warning, level=logging.WARNING)
    _install_uvloop()
    try:
        return asyncio.run(
            serve(config, config.shutdown.drain_timeout_s, args.config, overrides_from_args(args))
        )
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        return EXIT_FAILURE
    except ConfigError as exc:  # found while resolving routes (an unreadable instructions file)
        print(f"{PROG}: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # a bug: report it as a runtime failure, with the traceback logged
        log.exception("gateway crashed", extra={"event": "gateway.crashed"})
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _simulator(args: argparse.Namespace) -> int:
    from gateway.realtime.simulator import cli as simulator_cli

    return simulator_cli.main(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command == "run":
        try:
            return _run(args)
        except ConfigError as exc:  # from parse_port_range
            print(f"{PROG}: config error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if args.command == "simulator":
        return _simulator(args)
    if args.command == "check":
        from gateway.doctor import main as check_main

        return check_main(args)
    if args.command == "call":
        from gateway.softphone import main as call_main

        return call_main(args)
    parser.print_help(sys.stderr)
    return EXIT_CONFIG
