"""gateway/http_post.py: the limits shared by HTTP tools and webhooks, against loopback servers."""

from __future__ import annotations

import urllib.error

import pytest

from gateway.config import WebhooksConfig
from gateway.http_post import HttpPostError, is_loopback_host, plain_http_problem, post
from gateway.webhooks import Webhooks
from tests.tools.http_bait import BaitServer


def test_loopback_and_the_flag_decide_plain_http() -> None:
    assert plain_http_problem("http://127.0.0.1:8081/x", False) is None
    assert plain_http_problem("http://[::1]/x", False) is None
    assert plain_http_problem("http://localhost/x", False) is None
    assert plain_http_problem("https://api.example.com/x", False) is None
    assert "allow_plain_http" in (plain_http_problem("http://api.example.com/x", False) or "")
    assert plain_http_problem("http://api.example.com/x", True) is None
    assert "not an http" in (plain_http_problem("ftp://h/x", True) or "")
    assert is_loopback_host("127.8.9.10") and not is_loopback_host("10.0.0.1")


def test_redirect_limits() -> None:
    with BaitServer() as a, BaitServer() as b:
        ok = post(f"{a.url}/redirect?to={a.url}/here", b"{}", {}, timeout_s=5)
        assert ok.status == 200 and b'"/here"' in ok.body
        with pytest.raises(HttpPostError, match="another origin"):
            post(f"{a.url}/redirect?to={b.url}/x&code=302", b"{}", {}, timeout_s=5)
        assert b.requests == []
        # A redirect loop on the same origin ends at MAX_REDIRECTS.
        with pytest.raises(urllib.error.HTTPError):
            post(f"{a.url}/redirect?to=/redirect", b"", {}, timeout_s=5)


def test_the_response_is_read_up_to_the_cap_only() -> None:
    with BaitServer() as server:
        result = post(f"{server.url}/huge", b"", {}, timeout_s=5, max_response_bytes=1000)
    assert result.truncated and len(result.body) == 1000
    assert not server.huge_finished


async def test_webhook_redirect_to_another_origin_fails_and_is_counted() -> None:
    with BaitServer() as a, BaitServer() as b:
        hooks = Webhooks(WebhooksConfig(call_ended_url=f"{a.url}/redirect?to={b.url}/x"))
        hooks.call_ended({"call_id": "c1"})
        await hooks.close(timeout=5)
        assert hooks.failed == 1 and hooks.sent == 0
        assert b.requests == []
