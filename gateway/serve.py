"""The composition root of a gateway process: the Gateway with its control API.

gateway/app.py is the process (calls, registrations, reload, drain) and knows nothing of HTTP;
gateway/control.py is the HTTP API and knows nothing of calls. This module joins them: its
`Gateway` starts the control server with a `GatewayControl` (the process as the API sees it),
and turns the `ControlFailure` values the process returns into what the API reports. `run`
(gateway/cli.py) builds this one; tests that need no control API use gateway.app's.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway import app
from gateway.busy_port import bind_failure, with_errno
from gateway.control import ControlServer, Limits
from gateway.control_failure import ControlFailure
from gateway.control_token import control_token
from gateway.observe.logs import log_event

log = logging.getLogger("gateway")


class Gateway(app.Gateway):
    """The process with its control API (when `[control] enabled`)."""

    async def _start_control(self) -> None:
        """The control API. A port already taken is logged, not fatal: calls are the product,
        and a second instance on one host (or a test run) must still answer the phone; the
        ERROR line and failing /readyz probes make the problem visible. The same holds for a
        token file that cannot be written: the API then stays off (closed), it never opens
        without its token."""
        cfg = self.config.control
        if not cfg.enabled:
            return
        try:
            token = control_token(cfg)
        except OSError as exc:
            log_event(
                log,
                "control.start_failed",
                f"{exc.strerror or exc}; set control.token_env or control.token_file",
                level=logging.ERROR,
                address=f"{cfg.host}:{cfg.port}",
            )
            return
        self._control_token = token or ""
        self._register_secrets()
        limits = Limits(
            max_head_bytes=cfg.max_head_bytes,
            max_body_bytes=cfg.max_body_bytes,
            head_timeout=cfg.read_timeout_s,
            body_timeout=cfg.read_timeout_s,
        )
        server = ControlServer(
            GatewayControl(self),
            cfg.host,
            cfg.port,
            token=token,
            limits=limits,
            allowed_hosts=cfg.allowed_hosts,
            metrics_public=cfg.metrics_public,
        )
        try:
            await server.start()
        except OSError as exc:
            address = f"{cfg.host}:{cfg.port}"
            exc = with_errno(exc, cfg.host, cfg.port, ("tcp",))
            message = bind_failure(
                "control API port", address, exc, "--control-port", "control.port"
            )
            log_event(log, "control.start_failed", message, level=logging.ERROR, address=address)
            return
        self.control = server


class GatewayControl:
    """The Gateway as the control API sees it (gateway.control.ControlTarget)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def healthy(self) -> bool:
        # Stays true while draining: a liveness probe failing then would get the process
        # killed before its calls ended. /readyz is what turns false.
        return self.gateway._started

    def ready(self) -> tuple[bool, str]:
        gw = self.gateway
        if not gw._started:
            return False, "starting"
        if gw._stopping:
            return False, "draining: not accepting calls"
        for client in gw.registrations:
            if not client.registered:
                name = gw._reg_names.get(id(client), client.aor)
                why = client.core.reason or client.state
                return False, f"registration {name} ({client.aor}): {why}"
        return True, ""

    def metrics(self) -> tuple[bytes, str]:
        self.gateway._collect_polled_metrics()
        return self.gateway.prometheus.render()

    def list_calls(self) -> list[dict[str, Any]]:
        gw = self.gateway
        now = gw._loop.time() if gw._loop else 0.0
        return [live.summary(now) for live in list(gw.calls.values()) if not live.ended]

    def hangup(self, call_id: str) -> bool:
        live = self.gateway.calls.get(call_id)
        if live is None or live.ended:
            return False
        live.operator_hangup()
        return True

    async def originate(self, request: Any) -> str | ControlFailure:
        return await self.gateway.originate(
            request.to, request.instructions, request.registration, request.from_
        )

    def say(self, call_id: str, text: str, role: str, respond: bool) -> bool | ControlFailure:
        live = self.gateway.calls.get(call_id)
        if live is None or live.ended:
            return False
        if live.session is None:
            return ControlFailure(409, "the call has no Realtime session (echo mode)")
        live.session.say(text, role, respond)
        return True


__all__ = ["Gateway", "GatewayControl"]
