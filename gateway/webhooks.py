"""Optional webhooks: POST JSON to an HTTP endpoint when a call starts and when it ends.

`call_started` carries who called whom and the route; `call_ended` carries the whole call record
(gateway.observe.records). A webhook never blocks or fails a call: each POST runs as a task the
`Webhooks` object owns (`gateway.http_post` in a worker thread, like the HTTP tools: https
unless `allow_plain_http` (loopback excepted), no redirect to another origin, the response body
never read beyond `max_response_bytes`), bounded by `timeout_s`; failures are logged as
`webhook.failed` (the URL's credentials are redacted by the log filter) and counted. `close()` waits briefly for POSTs in flight (a call_ended hook sent during shutdown
should still arrive), then cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.error
from typing import Any, Protocol

import orjson

from gateway.http_post import HttpPostError, post
from gateway.observe.logs import log_event

log = logging.getLogger("gateway.webhooks")


class WebhookSettings(Protocol):
    """What the webhooks read: the [webhooks] section (gateway.config WebhooksConfig), passed
    down by the process as a value rather than imported from the configuration."""

    @property
    def call_started_url(self) -> str: ...
    @property
    def call_ended_url(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def max_response_bytes(self) -> int: ...
    @property
    def allow_plain_http(self) -> bool: ...


class Webhooks:
    def __init__(self, config: WebhookSettings, user_agent: str = "sip-realtime-gateway") -> None:
        self.config = config
        self.user_agent = user_agent
        self.sent = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def call_started(self, payload: dict[str, Any]) -> None:
        if self.config.call_started_url:
            self._spawn(self.config.call_started_url, {"event": "call_started", **payload})

    def call_ended(self, payload: dict[str, Any]) -> None:
        if self.config.call_ended_url:
            self._spawn(self.config.call_ended_url, {"event": "call_ended", **payload})

    def _spawn(self, url: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._post(url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        timeout = self.config.timeout_s
        try:
            status = await asyncio.wait_for(
                asyncio.to_thread(_post, url, body, self.config, self.user_agent), timeout + 1.0
            )
        except (OSError, TimeoutError, urllib.error.URLError, ValueError, HttpPostError) as exc:
            self.failed += 1
            log_event(
                log,
                "webhook.failed",
                f"webhook {payload['event']} to {url} failed: {exc}",
                level=logging.WARNING,
                call_id=payload.get("call_id"),
                url=url,
                error=str(exc) or type(exc).__name__,
            )
            return
        self.sent += 1
        log_event(
            log,
            "webhook.sent",
            call_id=payload.get("call_id"),
            url=url,
            kind=payload["event"],
            status=status,
        )

    async def close(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()


def _post(url: str, body: bytes, config: WebhookSettings, user_agent: str) -> int:
    # HTTPError (4xx/5xx) is a URLError: reported as a failure by the caller.
    result = post(
        url,
        body,
        {"Content-Type": "application/json", "User-Agent": user_agent},
        timeout_s=config.timeout_s,
        max_response_bytes=config.max_response_bytes,
        allow_plain_http=config.allow_plain_http,
    )
    return result.status
