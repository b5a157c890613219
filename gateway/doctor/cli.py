"""The `check` command line: its options, and `main`, which loads the configuration the
way `run` would and prints the report (text or JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.cli_args import add_config_arguments, overrides_from_args
from gateway.config import ConfigError, load_config
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status, format_report
from gateway.doctor.run import run_checks

PROG = "sip-realtime-gateway check"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `check` options (cli.py adds a `check` subparser and calls this)."""
    add_config_arguments(parser)
    parser.add_argument(
        "--skip-realtime", action="store_true", help="do not open a Realtime session"
    )
    parser.add_argument(
        "--skip-registrations", action="store_true", help="do not send test REGISTERs"
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="per network check (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check the configuration, ports, addresses (NAT), the Realtime endpoint "
        "and registrations. Exit 0 when nothing failed (warnings allowed), 1 otherwise.",
    )
    add_arguments(parser)
    return parser


_OVERRIDE_FLAGS = (
    "sip_host",
    "sip_port",
    "advertised_host",
    "max_calls",
    "realtime_url",
    "log_level",
    "log_format",
    "rtp_ports",
    "control_port",
)


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the doctor; `args` from cli.py's `check` subparser, or an argv list."""
    if not isinstance(args, argparse.Namespace):
        try:
            args = build_parser().parse_args(list(args) if args is not None else None)
        except SystemExit as exc:
            return int(exc.code or 0)
    flags = argparse.Namespace(**{name: getattr(args, name, None) for name in _OVERRIDE_FLAGS})
    config_path = getattr(args, "config", None)
    if not logging.getLogger().handlers:
        # The SIP stack logs registration noise on its own; the report says what matters.
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        config = load_config(config_path, os.environ, overrides_from_args(flags))
    except ConfigError as exc:
        results = [
            CheckResult(
                "configuration",
                Status.FAIL,
                str(exc),
                "fix the key named above (examples/gateway.toml documents every key)",
            ),
            CheckResult("other checks", Status.SKIP, "not checked: the configuration is invalid"),
        ]
    else:
        results = asyncio.run(
            run_checks(
                config,
                realtime=not getattr(args, "skip_realtime", False),
                registrations=not getattr(args, "skip_registrations", False),
                timeout=getattr(args, "timeout", DEFAULT_TIMEOUT_S),
                source=str(config_path) if config_path else "built-in defaults",
            )
        )
    if getattr(args, "json", False):
        payload: dict[str, Any] = {
            "ok": all(r.ok for r in results),
            "results": [r.to_dict() for r in results],
        }
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_report(results))
    return 0 if all(r.ok for r in results) else 1
