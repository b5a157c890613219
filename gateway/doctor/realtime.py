"""The Realtime check: open a session at the configured URL and confirm
`session.updated` with audio/pcmu and then audio/pcma (G.711 pass-through needs both).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from gateway.config import ConfigError, GatewayConfig
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status

G711_FORMATS = ("audio/pcmu", "audio/pcma")


def _realtime_endpoint(config: GatewayConfig) -> tuple[str, dict[str, str]]:
    """The URL and auth headers `run` would use (gateway/call_settings.py `endpoint_for`:
    Bearer for OpenAI, `api-key` for Azure). Raises ConfigError where `run` would."""
    from gateway.call_settings import endpoint_for

    endpoint = endpoint_for(config)
    return endpoint.url, dict(endpoint.headers)


async def check_realtime(
    config: GatewayConfig,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> CheckResult:
    """Open one session the way `run` would and confirm session.updated for audio/pcmu, then
    audio/pcma. Where `run` answers with the built-in simulator (no API key, `simulator =
    "auto"`, or `"always"`), the check opens its session on that simulator and says so."""
    from gateway.call_settings import use_simulator

    if not use_simulator(config):
        return await _check_realtime_at(config, timeout)
    from gateway.realtime.simulator import Simulator

    rt = config.realtime
    why = (
        "realtime.simulator = always"
        if rt.simulator == "always"
        else f"no API key in {rt.api_key_env or '(realtime.api_key_env unset)'}"
    )
    async with Simulator("127.0.0.1", 0) as simulator:
        result = await _check_realtime_at(config, timeout, simulator.url)
    if result.status is not Status.OK:
        return result
    detail = result.message.split(": ", 1)[-1]  # without the simulator's throwaway URL
    return CheckResult(
        result.name,
        Status.OK,
        f"built-in simulator ({why}): calls are answered by the local Realtime simulator, "
        f"not OpenAI; {detail}",
        f"export {rt.api_key_env or 'OPENAI_API_KEY'}=sk-... to use {rt.model}",
    )


async def _check_realtime_at(
    config: GatewayConfig,
    timeout: float,  # noqa: ASYNC109 (bounded by design)
    simulator_url: str | None = None,
) -> CheckResult:
    from gateway.call_settings import endpoint_for
    from gateway.realtime.client import RealtimeClient, RealtimeError
    from gateway.realtime.protocol import SessionConfig

    name = "Realtime API"
    try:
        endpoint = endpoint_for(config, simulator_url)
    except ConfigError as exc:  # the same refusal `run` gives
        key_env = config.realtime.api_key_env or "OPENAI_API_KEY"
        return CheckResult(
            name,
            Status.FAIL,
            f"no API key: {exc}",
            f"export {key_env}=sk-... (realtime.api_key_env), or realtime.simulator = auto",
        )
    url = endpoint.redacted()
    host = urlsplit(endpoint.url).hostname or ""
    if not endpoint.headers and host.endswith(("openai.com", "openai.azure.com")):
        return CheckResult(
            name,
            Status.FAIL,
            f"no API key: environment variable {config.realtime.api_key_env or '(none)'} is "
            f"empty or unset, and {host} requires one",
            f"export {config.realtime.api_key_env or 'OPENAI_API_KEY'}=sk-... (realtime.api_key_env)",
        )
    client = RealtimeClient(endpoint, open_timeout=timeout, ping_interval=None)
    started = time.perf_counter()
    try:
        try:
            await client.connect(timeout=timeout)
        except RealtimeError as exc:
            return CheckResult(
                name,
                Status.FAIL,
                f"cannot open a session at {url}: {exc.__cause__ or exc}",
                "check realtime.url, network access/proxy to that host, and the API key "
                "(a 401/403 in the error means the key is wrong)",
            )
        connect_ms = (time.perf_counter() - started) * 1000
        confirmed = []
        for fmt in G711_FORMATS:
            try:
                await client.configure(
                    SessionConfig(input_format=fmt, output_format=fmt), timeout=timeout
                )
            except RealtimeError as exc:
                return CheckResult(
                    name,
                    Status.FAIL,
                    f"connected to {url} in {connect_ms:.0f} ms but session.update with {fmt} "
                    f"failed: {exc}",
                    "the endpoint must support G.711 (audio/pcmu and audio/pcma): use a GA "
                    "Realtime model (realtime.model)",
                )
            confirmed.append(fmt)
    finally:
        await client.close()
    return CheckResult(
        name,
        Status.OK,
        f"{url}: connected in {connect_ms:.0f} ms; session.updated confirmed "
        f"{' and '.join(confirmed)}",
    )
