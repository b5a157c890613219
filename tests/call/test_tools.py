"""Custom HTTP tools against a real loopback HTTP server; built-in tool definitions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.call.tools import (
    HttpTool,
    builtin_tool_definitions,
    call_http_tool,
    http_tool_definition,
)

received: list[dict] = []


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        received.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path == "/slow":
            time.sleep(1.5)
        if self.path == "/fail":
            self.send_response(500, "Internal Server Error")
            self.end_headers()
            self.wfile.write(b"database down")
            return
        answer = json.dumps({"status": "shipped", "order": body["arguments"].get("id")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    received.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


async def test_http_tool_posts_the_call_and_returns_the_body(server: str) -> None:
    tool = HttpTool(
        "lookup_order", "Find an order", f"{server}/orders", headers={"Authorization": "Bearer t"}
    )
    out = await call_http_tool(
        tool, call_id="c1", caller="sip:alice@a", callee="sip:bot@b", arguments={"id": "42"}
    )
    assert json.loads(out) == {"status": "shipped", "order": "42"}
    assert received[0]["body"] == {
        "call_id": "c1",
        "caller": "sip:alice@a",
        "callee": "sip:bot@b",
        "name": "lookup_order",
        "arguments": {"id": "42"},
    }
    assert received[0]["auth"] == "Bearer t"


async def test_http_error_goes_back_to_the_model(server: str) -> None:
    out = await call_http_tool(
        HttpTool("t", "d", f"{server}/fail"), call_id="c", caller="", callee="", arguments={}
    )
    result = json.loads(out)
    assert (
        result["ok"] is False
        and "HTTP 500" in result["error"]
        and "database down" in result["error"]
    )


async def test_timeout_goes_back_to_the_model(server: str) -> None:
    out = await call_http_tool(
        HttpTool("t", "d", f"{server}/slow", timeout_s=0.3),
        call_id="c",
        caller="",
        callee="",
        arguments={},
    )
    assert "timed out" in json.loads(out)["error"]


async def test_unreachable_tool_goes_back_to_the_model() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    out = await call_http_tool(
        HttpTool("t", "d", "http://127.0.0.1:9/x", timeout_s=2),
        call_id="c",
        caller="",
        callee="",
        arguments={},
    )
    assert "unreachable" in json.loads(out)["error"]


def test_builtin_definitions_validate_as_session_tools() -> None:
    from openai.types.realtime import RealtimeFunctionTool

    tools = builtin_tool_definitions(["operator", "sales"])
    assert [t["name"] for t in tools] == ["end_call", "transfer_call", "send_dtmf"]
    assert tools[1]["parameters"]["properties"]["target"]["enum"] == ["operator", "sales"]
    for tool in [*tools, http_tool_definition(HttpTool("x", "y", "http://h/"))]:
        RealtimeFunctionTool.model_validate(tool)
    # No transfer targets configured: the model is not offered a transfer it cannot make.
    assert "transfer_call" not in [t["name"] for t in builtin_tool_definitions([])]


async def test_same_origin_redirect_is_followed_cross_origin_is_refused() -> None:
    from tests.tools.http_bait import BaitServer

    with BaitServer() as a, BaitServer() as b:  # two ports: two origins
        out = await call_http_tool(
            HttpTool("t", "d", f"{a.url}/redirect?to={a.url}/final"),
            call_id="c",
            caller="",
            callee="",
            arguments={},
        )
        assert json.loads(out) == {"ok": True, "path": "/final"}
        out = await call_http_tool(
            HttpTool("t", "d", f"{a.url}/redirect?to={b.url}/steal", headers={"X-Key": "k"}),
            call_id="c",
            caller="",
            callee="",
            arguments={},
        )
        assert "another origin refused" in json.loads(out)["error"]
        assert b.requests == []


async def test_a_huge_response_is_cut_at_the_cap() -> None:
    from tests.tools.http_bait import BaitServer

    with BaitServer() as server:
        out = await call_http_tool(
            HttpTool("t", "d", f"{server.url}/huge", max_response_bytes=100_000),
            call_id="c",
            caller="",
            callee="",
            arguments={},
        )
    assert out.endswith(" [truncated]") and len(out) <= 64 * 1024 + 20
    assert not server.huge_finished


async def test_plain_http_to_a_remote_host_needs_the_flag() -> None:
    out = await call_http_tool(
        HttpTool("t", "d", "http://192.0.2.1/x", timeout_s=0.5),
        call_id="c",
        caller="",
        callee="",
        arguments={},
    )
    assert "allow_plain_http" in json.loads(out)["error"]
