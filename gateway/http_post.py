"""The one outbound HTTP POST of the gateway (HTTP tools and webhooks), with its limits.

Both send call data (who called, what the model asked) to a URL from the configuration and read
what comes back, so both get the same defences:

- `https://` only, unless the URL's host is loopback (the request never leaves the machine) or
  the operator set `allow_plain_http` for it: the call's data and any `Authorization` header
  would otherwise cross the network in clear.
- Redirects are followed only within the same origin (scheme, host and port), at most
  `MAX_REDIRECTS` times: a tool server that is compromised or misconfigured cannot send the
  call data, with the tool's headers, to another host or downgrade it to plain HTTP.
- The response is read in pieces up to `max_response_bytes` and then the connection is closed
  (`truncated`): a tool answering with gigabytes costs one buffer of that size, not the memory
  of the process; the whole exchange is bounded by `timeout_s` (not only each socket read), so
  a server that drips a byte at a time cannot hold the worker thread.

It runs urllib in the calling thread (callers use `asyncio.to_thread`): no extra dependency,
proxies from the environment as before.
"""

from __future__ import annotations

import ipaddress
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_REDIRECTS = 3
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024


class HttpPostError(Exception):
    """The POST failed or was refused; the message says why (for logs and the model)."""


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int
    body: bytes
    truncated: bool  # the response was longer than max_response_bytes


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_problem(url: str, allow_plain_http: bool) -> str | None:
    """Why `url` may not be used (None when it may): not http(s), or plain http to a host that
    is not loopback without the explicit allowance."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL"
    if parts.scheme == "http" and not allow_plain_http and not is_loopback_host(parts.hostname):
        return (
            "plain http:// to a host that is not loopback sends the call's data unencrypted; "
            "use https:// or set allow_plain_http = true"
        )
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            raise HttpPostError(
                f"redirect ({code}) to another origin refused: {_origin_text(newurl)}"
            )
        if code in (307, 308):
            # RFC 9110 15.4.8/15.4.9: the method and body are kept (urllib only does so for
            # GET); the same origin already holds the request, so its headers go along.
            return urllib.request.Request(
                newurl,
                data=req.data,
                headers=dict(req.header_items()),
                origin_req_host=req.origin_req_host,
                unverifiable=True,
                method=req.get_method(),
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin_text(url: str) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


_opener = urllib.request.build_opener(_SameOriginRedirects())


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    allow_plain_http: bool = False,
) -> PostResult:
    """POST `body`; the response status and at most `max_response_bytes` of its body.

    Raises HttpPostError (refused URL or redirect, the deadline passed while reading),
    urllib.error.HTTPError (4xx/5xx; its body is still readable), urllib.error.URLError,
    TimeoutError and OSError."""
    problem = plain_http_problem(url, allow_plain_http)
    if problem is not None:
        raise HttpPostError(problem)
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        response = _opener.open(request, timeout=timeout_s)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, HttpPostError):
            raise exc.reason from None
        raise
    with response:
        chunks: list[bytes] = []
        received = 0
        truncated = False
        while True:
            if time.monotonic() > deadline:
                raise HttpPostError(f"timed out after {timeout_s:g} s reading the response")
            want = min(_READ_CHUNK, max_response_bytes + 1 - received)
            if want <= 0:
                break
            chunk = response.read1(want) if hasattr(response, "read1") else response.read(want)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        data = b"".join(chunks)
        if len(data) > max_response_bytes:
            data = data[:max_response_bytes]
            truncated = True
        return PostResult(int(response.status), data, truncated)
