"""The GPT-Live check (issue 12): where some calls use `realtime.api = "live"`, start a session
the way `run` would, once with audio/pcmu and once with audio/pcma, and confirm that
`session.started` echoes each format (G.711 pass-through needs both)."""

from __future__ import annotations

import time

from gateway.config import ConfigError, GatewayConfig
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status

NAME = "GPT-Live API"


async def check_live(
    config: GatewayConfig,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> list[CheckResult]:
    """Nothing when no call uses GPT-Live. With the built-in simulator (no key, as `run`),
    the sessions are opened on it."""
    from gateway.call_settings import use_simulator, uses_live

    if not uses_live(config):
        return []
    if not use_simulator(config):
        return [await _check_at(config, timeout, None)]
    from gateway.realtime.simulator import Simulator

    async with Simulator("127.0.0.1", 0) as simulator:
        if getattr(simulator, "live_url", None) is None:
            return [CheckResult(NAME, Status.SKIP, "the built-in simulator has no GPT-Live")]
        result = await _check_at(config, timeout, simulator)
    if result.status is not Status.OK:
        return [result]
    detail = result.message.split(": ", 1)[-1]
    return [CheckResult(NAME, Status.OK, f"built-in simulator: {detail}")]


async def _check_at(config: GatewayConfig, timeout: float, simulator: object) -> CheckResult:  # noqa: ASYNC109
    from gateway.call_settings import live_endpoint_for, live_model
    from gateway.live import protocol as lp
    from gateway.live.client import LiveClient, LiveError

    try:
        endpoint = live_endpoint_for(config, simulator)
    except ConfigError as exc:
        key_env = config.realtime.api_key_env or "OPENAI_API_KEY"
        return CheckResult(NAME, Status.FAIL, f"no API key: {exc}", f"export {key_env}=sk-...")
    assert endpoint is not None
    url = endpoint.redacted()
    started_ms: list[str] = []
    for fmt in lp.LIVE_FORMATS:
        config_fmt = lp.LiveSessionConfig(model=live_model(config), audio_format=fmt)  # type: ignore[arg-type]
        client = LiveClient(endpoint, config_fmt, ping_interval=None, close_wait_s=timeout)
        started = time.perf_counter()
        try:
            await client.open((), timeout)
        except LiveError as exc:
            return CheckResult(
                NAME,
                Status.FAIL,
                f"cannot start a session with {fmt} at {url}: {exc.__cause__ or exc}",
                "check realtime.url, network access to that host, the API key (a 401/403 "
                "means the key is wrong) and realtime.model (gpt-live-1, gpt-live-1.1)",
            )
        finally:
            await client.close()
        started_ms.append(f"{fmt} in {(time.perf_counter() - started) * 1000:.0f} ms")
    return CheckResult(NAME, Status.OK, f"{url}: session.started confirmed {', '.join(started_ms)}")
