"""The JSON log path: cached timestamp text and secret-name checks stay exact."""

from __future__ import annotations


def test_timestamp_cache_matches_strftime_across_second_boundaries() -> None:
    import time

    from gateway.observe.logs import _iso_ts

    base = 1_790_000_000.0
    for created in (base, base + 0.999, base + 1.0, base + 0.5, base + 3600.001, base - 0.001):
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(created)))
        assert _iso_ts(created) == f"{whole}.{int(created * 1000) % 1000:03d}Z"


def test_secret_field_names_are_redacted_every_time() -> None:
    from gateway.observe.logs import REDACTED, _clean

    for _ in range(3):  # the second and later lookups come from the cache
        assert _clean("sip_password", "hunter2") == REDACTED
        assert _clean("state", "listening") == "listening"


def _capture(level: str = "DEBUG") -> tuple[object, object]:
    import io
    import logging

    from gateway.observe.logs import configure_logging

    stream = io.StringIO()
    configure_logging(level, "json", stream)
    return stream, logging.getLogger


def test_websockets_debug_headers_lose_their_credentials() -> None:
    import logging

    from gateway.observe.logs import set_secrets

    stream, _ = _capture()
    set_secrets(["cfg-secret-value"])
    try:
        ws = logging.getLogger("websockets.client")
        ws.debug("> %s: %s", "Authorization", "Bearer sk-test-abcdefghijklmnop")
        ws.debug("> %s: %s", "api-key", "0123456789abcdef0123")
        logging.getLogger("gateway.x").info("hello %s", "cfg-secret-value")
        logging.getLogger("gateway.x").warning("key sk-proj-abcdefghijklmnopqrst leaked")
    finally:
        set_secrets([])
    text = stream.getvalue()  # type: ignore[attr-defined]
    for secret in ("sk-test-abcdefghijklmnop", "0123456789abcdef0123", "cfg-secret-value"):
        assert secret not in text
    assert "sk-proj-abcdefghijklmnopqrst" not in text
    assert "Authorization: Bearer ***" in text and "api-key: ***" in text


def test_configured_secrets_are_redacted_in_fields_nested_values_and_tracebacks() -> None:
    import logging

    from gateway.observe.logs import log_event, set_secrets

    stream, _ = _capture("INFO")
    set_secrets(["pa55word-xyz", 'quote"secret'])
    log = logging.getLogger("gateway.y")
    try:
        log_event(log, "webhook.failed", url="https://u:pa55word-xyz@h/x")
        log_event(log, "gateway.config", config={"tools": [{"url": "https://h/?t=pa55word-xyz"}]})
        log_event(log, "x", note='a quote"secret inside')
        try:
            raise ValueError("boom pa55word-xyz")
        except ValueError:
            log.exception("failed")
    finally:
        set_secrets([])
    text = stream.getvalue()  # type: ignore[attr-defined]
    assert "pa55word-xyz" not in text
    assert 'quote\\"secret' not in text
    assert text.count("***") >= 5


def test_ordinary_text_is_left_alone() -> None:
    from gateway.observe.logs import redact_text

    for text in ("basic support", "call ended (remote_bye)", 'Digest username="a"'):
        assert redact_text(text) == text


def test_url_credentials_and_configured_secrets_are_collected() -> None:
    import dataclasses

    from gateway.config import GatewayConfig, Secret, ToolConfig, WebhooksConfig
    from gateway.config.redact import configured_secrets, url_credentials

    assert url_credentials("https://u:pw-1234@h/x?token=t0k3n&q=plain") == ["pw-1234", "t0k3n"]
    config = dataclasses.replace(
        GatewayConfig(),
        tools=(ToolConfig("t", "d", "https://h/t?api_key=tool-key-9"),),
        webhooks=WebhooksConfig(call_ended_url="https://h/e?sig=hook-sig-9"),
    )
    config = dataclasses.replace(
        config, realtime=dataclasses.replace(config.realtime, api_key=Secret("sk-abc-123"))
    )
    found = configured_secrets(config)
    assert {"tool-key-9", "hook-sig-9", "sk-abc-123"} <= set(found)
