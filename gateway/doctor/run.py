"""`run_checks`: every check against a loaded configuration, in the order the report shows."""

from __future__ import annotations

from gateway import wsock
from gateway.config import ConfigError, GatewayConfig, validate
from gateway.doctor.addresses import check_addresses
from gateway.doctor.exposure import (
    check_admission,
    check_control,
    check_exposure,
    check_media_safety,
)
from gateway.doctor.live import check_live
from gateway.doctor.models import check_model
from gateway.doctor.ports import (
    check_descriptors,
    check_port_quarantine,
    check_rtp_ports,
    check_sip_port,
)
from gateway.doctor.realtime import check_realtime
from gateway.doctor.registrations import check_registrations
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status
from gateway.doctor.tls import check_registration_tls, check_tls_files
from gateway.media import jitter


def check_config(config: GatewayConfig, source: str = "") -> CheckResult:
    try:
        validate(config)
    except ConfigError as exc:
        return CheckResult(
            "configuration",
            Status.FAIL,
            str(exc),
            "fix the key named above (examples/gateway.toml)",
        )
    where = f" ({source})" if source else ""
    regs = len(config.registrations)
    return CheckResult(
        "configuration",
        Status.OK,
        f"valid{where}: SIP {config.sip.host}:{config.sip.port} "
        f"({', '.join(config.sip.transports)}), {regs} registration{'s' if regs != 1 else ''}",
    )


def _compiled_check(name: str, implementation: str, reason: str, module: str) -> CheckResult:
    """Which implementation of a compiled speedup this install runs (issue 14): the compiled one,
    or the pure-Python fallback (a build without a compiler, or SRG_PURE_PYTHON set). Both are
    correct; the compiled one costs less CPU per packet, so this informs rather than warns."""
    if implementation == "c":
        return CheckResult(name, Status.OK, f"compiled ({module})")
    return CheckResult(
        name,
        Status.OK,
        f"pure Python: {reason}",
        "for less CPU per call install gcc and the Python headers and reinstall (make install)",
    )


def check_jitter_buffer() -> CheckResult:
    """The inbound jitter buffer (and the RTP paths compiled with it)."""
    return _compiled_check(
        "jitter buffer",
        jitter.IMPLEMENTATION,
        jitter.IMPLEMENTATION_REASON,
        "gateway.media._jitter",
    )


def check_ws_frames() -> CheckResult:
    """The builder of the voice session's audio append frames."""
    return _compiled_check(
        "websocket frames",
        wsock.FRAME_IMPLEMENTATION,
        wsock.FRAME_IMPLEMENTATION_REASON,
        "gateway._wsframe",
    )


async def run_checks(
    config: GatewayConfig,
    *,
    realtime: bool = True,
    registrations: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
    source: str = "",
) -> list[CheckResult]:
    """Every check against `config` (already loaded); see the module docstring."""
    results = [check_config(config, source)]
    if results[0].status is Status.FAIL:
        return results
    sip_results = check_sip_port(config)
    results += sip_results
    results += check_rtp_ports(config)
    results += await check_addresses(config, timeout)
    if realtime:
        results.append(await check_realtime(config, timeout))
        results += await check_live(config, timeout)
    else:
        results.append(CheckResult("Realtime API", Status.SKIP, "not checked (--skip-realtime)"))
    if registrations:
        busy = any(r.status is Status.FAIL and "in use" in r.message for r in sip_results)
        results += await check_registrations(config, sip_port_busy=busy, timeout=timeout)
    else:
        results.append(
            CheckResult("registrations", Status.SKIP, "not checked (--skip-registrations)")
        )
    results += check_control(config)
    results.append(check_admission(config))
    results += check_exposure(config)
    results += check_media_safety(config)
    results.append(check_jitter_buffer())
    results.append(check_ws_frames())
    results.append(check_descriptors(config))
    results += check_model(config)
    results.append(check_port_quarantine(config))
    results += check_tls_files(config)
    if registrations:
        results += await check_registration_tls(config, timeout)
    return results
