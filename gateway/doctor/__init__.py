"""`sip-realtime-gateway check`: a doctor that finds the usual set-up mistakes before a call does.

Each check returns `CheckResult`s (ok / warn / fail / skip) whose message says what was found and
whose `fix` says what to change. The checks, in order:

- configuration: loads through `gateway.config` (errors name the key);
- SIP port: the configured host:port is bindable for every configured transport (UDP and TCP);
- RTP ports: the range holds enough RTP/RTCP pairs for `sip.max_calls`, does not contain the SIP
  port or overlap the kernel's ephemeral range, and a sample of pairs is bindable;
- addresses (NAT): whether `sip.advertised_host` is an address of this host, and which address
  our Contact/SDP would carry towards each known peer (registrars, `allow_networks`). A private
  address sent to a public peer is the classic one-way-audio set-up (lessons 3.1);
- Realtime: opens a session at the configured URL and confirms `session.updated` with
  `audio/pcmu` and then `audio/pcma` (G.711 pass-through needs both), timing the connect;
- registrations: one REGISTER per registration from a temporary port, then an unregister;
- control API: no token (`control.token_required = false`) on a non-loopback bind fails;
- admission: who may place calls (closed by default); open admission (a /0 network in
  `sip.allow_networks`) without inbound digest is a warning;
- exposure: an API key sent over plain `ws://` to a host that is not loopback, record and
  recording directories (or files) readable by other users, `http://` tool/webhook URLs;
- RTP latching: `media.rtp_latch_any_host = true` is a warning.
- TLS (tls.py, issue 13): the `[sip.tls]` certificate (unreadable, not PEM, expired or expiring
  within 30 days, key mismatch, not covering `sip.advertised_host`), its CA files,
  `verify_server = false` (a warning), and a TLS handshake to each `sips:`/`;transport=tls`
  registrar (skipped with `--skip-registrations`).

Deliberately no `ip addr`/netlink parsing: "is X an address of this host" is answered by trying
to bind a UDP socket to X (the kernel refuses with EADDRNOTAVAIL otherwise), and "which address
would we use towards Y" by connecting a UDP socket to Y and reading its local address (no packet
is sent). Both work the same in containers and on any Linux/BSD/macOS host.

One module per family of checks: ports.py (SIP/RTP ports, quarantine, descriptors),
addresses.py (NAT), realtime.py, registrations.py, exposure.py (control API, admission, plain
ws:// and http://, permissions, latching), models.py; run.py runs them in order, cli.py is the
`check` command, results.py the result type and report, network.py the socket helpers,
tls.py the certificate checks.
"""

from __future__ import annotations

from gateway.doctor.addresses import check_addresses
from gateway.doctor.cli import _OVERRIDE_FLAGS, PROG, add_arguments, build_parser, main
from gateway.doctor.exposure import (
    check_admission,
    check_control,
    check_exposure,
    check_media_safety,
    check_plain_http_urls,
    check_realtime_transport,
    check_record_permissions,
)
from gateway.doctor.models import check_model, configured_models, model_warnings
from gateway.doctor.network import IpAddress, is_local_address, route_source, try_bind
from gateway.doctor.ports import (
    EPHEMERAL_RANGE_FILE,
    RTP_SAMPLE_PAIRS,
    check_descriptors,
    check_port_quarantine,
    check_rtp_ports,
    check_sip_port,
)
from gateway.doctor.realtime import G711_FORMATS, _realtime_endpoint, check_realtime
from gateway.doctor.registrations import check_registrations
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status, format_report
from gateway.doctor.run import check_config, run_checks

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "EPHEMERAL_RANGE_FILE",
    "G711_FORMATS",
    "PROG",
    "RTP_SAMPLE_PAIRS",
    "_OVERRIDE_FLAGS",
    "CheckResult",
    "IpAddress",
    "Status",
    "_realtime_endpoint",
    "add_arguments",
    "build_parser",
    "check_addresses",
    "check_admission",
    "check_config",
    "check_control",
    "check_descriptors",
    "check_exposure",
    "check_media_safety",
    "check_model",
    "check_plain_http_urls",
    "check_port_quarantine",
    "check_realtime",
    "check_realtime_transport",
    "check_record_permissions",
    "check_registrations",
    "check_rtp_ports",
    "check_sip_port",
    "configured_models",
    "format_report",
    "is_local_address",
    "main",
    "model_warnings",
    "route_source",
    "run_checks",
    "try_bind",
]
