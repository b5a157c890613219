"""The registrations check: one REGISTER per registration from a temporary port,
then an unregister.
"""

from __future__ import annotations

import asyncio

from gateway.config import GatewayConfig, RegistrationConfig
from gateway.doctor.results import DEFAULT_TIMEOUT_S, CheckResult, Status


async def _register_once(
    config: GatewayConfig,
    reg: RegistrationConfig,
    timeout: float,  # noqa: ASYNC109 (bounded by design)
) -> CheckResult:
    from sip.registration import RegistrationClient
    from sip.transport import Transport
    from sip.useragent import UserAgent

    name = f"registration {reg.username}@{reg.registrar}"
    # A temporary port: the Contact differs from the running gateway's, so the unregister
    # below removes only the doctor's own binding.
    transport = Transport(config.sip.host, 0, transports=config.sip.transports)
    ua = UserAgent(
        transport,
        advertised_host=config.sip.advertised_host or None,
        user_agent=config.sip.user_agent,
    )
    try:
        await ua.start()
    except OSError as exc:
        return CheckResult(
            name, Status.FAIL, f"cannot open a SIP socket on {config.sip.host}: {exc}"
        )
    try:
        client = RegistrationClient(
            ua,
            reg.registrar,
            reg.username,
            reg.password.reveal(),
            domain=reg.domain,
            expires=reg.expires,
            request_timeout=timeout,
        )
        try:
            async with asyncio.timeout(timeout + 1):
                outcome = await client.register_once(reg.expires)
        except TimeoutError:
            return CheckResult(
                name,
                Status.FAIL,
                f"no answer from {reg.registrar} within {timeout:.0f} s",
                "check the registrar host/port/transport and the firewall",
            )
        if outcome.status is not None and 200 <= outcome.status < 300:
            try:
                async with asyncio.timeout(timeout):
                    await client.register_once(0)
            except TimeoutError:
                pass  # the test binding then expires by itself
            return CheckResult(
                name,
                Status.OK,
                f"registered {client.aor} (granted {outcome.granted or reg.expires} s), "
                "then unregistered the test binding",
            )
        reason = outcome.reason or f"status {outcome.status}"
        fix = "check the registrar host/port/transport and the firewall"
        if outcome.status in (401, 403, 407) or "authentication" in reason:
            fix = f"check registrations username/password for {reg.username}"
        elif outcome.status == 404:
            fix = "the registrar does not know this user: check username/domain"
        return CheckResult(name, Status.FAIL, f"{client.aor}: {reason}", fix)
    finally:
        await ua.close()


async def check_registrations(
    config: GatewayConfig,
    sip_port_busy: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 (bounded by design)
) -> list[CheckResult]:
    if not config.registrations:
        return [CheckResult("registrations", Status.SKIP, "not checked: none configured")]
    if sip_port_busy:
        # Registrars that keep one contact per AOR (Asterisk max_contacts=1 with
        # remove_existing) would swap the running gateway's binding for the test one.
        return [
            CheckResult(
                f"registration {reg.username}@{reg.registrar}",
                Status.SKIP,
                "not checked: the SIP port is in use (gateway already running?); a test "
                "REGISTER could replace its binding",
                "stop the gateway first, or use --skip-registrations",
            )
            for reg in config.registrations
        ]
    return list(
        await asyncio.gather(
            *(_register_once(config, reg, timeout) for reg in config.registrations)
        )
    )
