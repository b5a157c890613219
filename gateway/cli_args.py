"""The command-line flags that override configuration keys, shared by `run` (gateway.cli) and
`check` (gateway.doctor): the doctor must see the same configuration the gateway would run with.

A module of its own so that cli and doctor both import it and neither imports the other.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gateway.config import parse_port_range

__all__ = ["add_config_arguments", "overrides_from_args"]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that override configuration keys, shared by `run` and `check` (the doctor must
    see the same configuration the gateway would run with)."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("SRG_CONFIG"),
        help="TOML configuration file (default: $SRG_CONFIG, else built-in defaults)",
    )
    parser.add_argument("--sip-host", metavar="ADDR", help="SIP bind address (sip.host)")
    parser.add_argument(
        "--sip-port", metavar="PORT", type=int, help="SIP port, UDP and TCP (sip.port)"
    )
    parser.add_argument(
        "--advertised-host",
        metavar="HOST",
        help="address put in Via/Contact/SDP, e.g. the public IP behind NAT (sip.advertised_host)",
    )
    parser.add_argument(
        "--rtp-ports",
        metavar="MIN-MAX",
        help="RTP port range, e.g. 10000-20000 (media.rtp_port_min/max)",
    )
    parser.add_argument(
        "--max-calls", metavar="N", type=int, help="concurrent call limit (sip.max_calls)"
    )
    parser.add_argument(
        "--realtime-url", metavar="URL", help="Realtime WebSocket URL (realtime.url)"
    )
    parser.add_argument(
        "--control-port",
        metavar="PORT",
        type=int,
        help="control API port (control.port; 0 = any free port)",
    )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Map `run` flags to dotted config keys; None means "not given on the command line"."""
    overrides: dict[str, Any] = {
        "sip.host": args.sip_host,
        "sip.port": args.sip_port,
        "sip.advertised_host": args.advertised_host,
        "sip.max_calls": args.max_calls,
        "realtime.url": args.realtime_url,
        "control.port": getattr(args, "control_port", None),
        "log.level": args.log_level,
        "log.format": args.log_format,
        "shutdown.drain_timeout_s": getattr(args, "drain_timeout", None),  # `check` has none
    }
    if args.rtp_ports is not None:
        low, high = parse_port_range(args.rtp_ports)
        overrides["media.rtp_port_min"] = low
        overrides["media.rtp_port_max"] = high
    return {key: value for key, value in overrides.items() if value is not None}
