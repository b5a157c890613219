"""Control API: a small HTTP/1.1 server for health checks, metrics and live-call control.

Endpoints (JSON in and out, errors as `{"error": "..."}`):

    GET    /healthz              200 while the process serves (never needs the token)
    GET    /readyz               200 when accepting calls and every registration is registered,
                                 else 503 {"ready": false, "reason": "..."}
    GET    /metrics              Prometheus text exposition
    GET    /calls                {"calls": [...]} live calls with state and quality
    POST   /calls                originate {"to", "instructions", "registration"?, "from"?}
                                 -> 202 {"call_id": "..."}
    DELETE /calls/{id}           hang up -> 204, 404 when unknown
    POST   /calls/{id}/say       {"text", "role"?: "system"|"user", "respond"?: true} -> 202

Why a hand-written server instead of a framework: the surface is seven routes, the gateway
already runs one asyncio loop, and a dependency-free server keeps the container slim. The
parser is deliberately strict and bounded (request-head size, body size, a time budget for the
whole head so a slowloris client that drips one byte at a time cannot hold a connection open,
an idle timeout between keep-alive requests, a connection cap).

Authentication: when a token is configured every endpoint except `/healthz` and `/readyz`
needs `Authorization: Bearer <token>` (RFC 6750); a missing or wrong token gets 401 with a
`WWW-Authenticate: Bearer` challenge. The gateway always configures one unless
`control.token_required = false` (gateway/control_token.py generates it at first start).
`/healthz` and `/readyz` stay open so container and Kubernetes probes work without the secret;
they reveal nothing beyond "the process answers" and ready true/false: the readiness reason
(which can name registrars) is only shown with the token. `/metrics` needs the token unless
`metrics_public` (Prometheus sends one with `authorization` in its scrape config).

Browser defences (the API listens on loopback, which any web page the operator opens can try
to reach): a `Host` that is neither an IP literal, `localhost`, nor a configured name gets 421
(DNS rebinding: the attacker's name resolving to 127.0.0.1 still arrives with the attacker's
name in Host); a request carrying an `Origin` that is not this server's own gets 403, and no
CORS header is ever sent; a request with a body must be `application/json` (415 otherwise), so
an HTML form or a CORS-"simple" text/plain POST cannot reach a handler.

Call-IDs may contain `/`, `?` and `@` (RFC 3261 25.1 `word`): clients percent-encode them in the
path (`/calls/abc%2Fdef%40host`); the path is split on `/` before decoding each segment.

The server talks to the application through `ControlTarget` (a Protocol), so it is tested with a
fake and the real Gateway is wired to it in the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import inspect
import ipaddress
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import orjson

from gateway.control_failure import ControlFailure
from gateway.control_requests import ROLES as ROLES
from gateway.control_requests import ControlError as ControlError
from gateway.control_requests import OriginateRequest as OriginateRequest
from gateway.control_requests import SayRequest as SayRequest
from gateway.control_requests import parse_json_body as parse_json_body
from gateway.control_requests import parse_originate as parse_originate
from gateway.control_requests import parse_say as parse_say
from gateway.observe.logs import log_event

log = logging.getLogger("gateway.control")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# After an error response to a request not read to its end (RFC 9112 9.6, "lingering close"):
# half-close, then read and discard what the client still sends, at most this long and this
# much, before closing. Closing with unread input makes the kernel send a TCP reset, which can
# destroy the response in the client's socket before the client has read it.
LINGER_S = 2.0
LINGER_MAX_BYTES = 65536

_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 5.6.2 token


@runtime_checkable
class ControlTarget(Protocol):
    """What the control API needs from the application (the Gateway implements it).

    Plain methods must not block (they run on the event loop). `hangup` and `say` may be plain
    or async; they should return once the action has started (e.g. the BYE is sent), not wait
    for the far end. `originate`, `hangup` and `say` return a `ControlFailure(status, text)`
    value when the gateway cannot do it (the API answers with that status); request
    validation here raises `ControlError(status, message)`.
    """

    def healthy(self) -> bool: ...

    def ready(self) -> tuple[bool, str]:
        """(True, "") when accepting calls and every registration is registered, else
        (False, why), e.g. (False, "registration sip:100@pbx: 403 Forbidden")."""
        ...

    def metrics(self) -> tuple[bytes, str]:
        """The Prometheus exposition and its content type."""
        ...

    def list_calls(self) -> list[dict[str, Any]]:
        """Live calls as JSON-ready dicts (id, state, from, to, duration, quality...)."""
        ...

    def hangup(self, call_id: str) -> bool | ControlFailure | Awaitable[bool | ControlFailure]:
        """Start hanging up; False when the call is unknown."""
        ...

    async def originate(self, request: OriginateRequest) -> str | ControlFailure:
        """Start an outbound call; returns its call id, or why it could not be placed."""
        ...

    def say(
        self, call_id: str, text: str, role: str, respond: bool
    ) -> bool | ControlFailure | Awaitable[bool | ControlFailure]:
        """Inject a message into a live call; False when the call is unknown."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client can make the server hold (all times in seconds)."""

    max_head_bytes: int = 16 * 1024  # request line + headers
    max_body_bytes: int = 64 * 1024  # instructions fit easily; prompts belong in files
    head_timeout: float = 10.0  # budget for the whole request head, not per read
    body_timeout: float = 10.0
    idle_timeout: float = 30.0  # between keep-alive requests
    handler_timeout: float = 30.0  # one call into the application
    max_connections: int = 64
    max_requests_per_connection: int = 1000


@dataclass(slots=True)
class Request:
    method: str
    target: str
    path: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False  # close the connection after this response

    def encode(self, keep_alive: bool, head_only: bool = False) -> bytes:
        reason = _REASONS.get(self.status, "Unknown")
        lines = [
            f"HTTP/1.1 {self.status} {reason}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            "Cache-Control: no-store",
        ]
        if self.status != 204:
            lines.append(f"Content-Type: {self.content_type}")
            lines.append(f"Content-Length: {len(self.body)}")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if head_only or self.status == 204:
            return head
        return head + self.body


def json_response(status: int, payload: Any, **kwargs: Any) -> Response:
    return Response(status, orjson.dumps(payload), **kwargs)


def error_response(status: int, message: str, **kwargs: Any) -> Response:
    return json_response(status, {"error": message}, **kwargs)


class _HttpError(Exception):
    """A malformed request: answer with `status` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------
# Request parsing (pure functions: bytes in, Request or _HttpError out)


def parse_head(head: bytes) -> Request:
    """Parse the request line and headers (RFC 9112 3 and 5); `head` ends with CRLF CRLF."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _HttpError(400, "request head is not text") from None
    lines = text.split("\r\n")
    request_line = lines[0]
    parts = request_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise _HttpError(400, f"malformed request line {request_line[:80]!r}")
    method, target, version = parts
    if not _TOKEN_CHARS.match(method):
        raise _HttpError(400, f"malformed method {method[:20]!r}")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise _HttpError(505, f"{version[:20]} is not supported (use HTTP/1.1)")
        raise _HttpError(400, f"malformed request line {request_line[:80]!r}")
    if not target.startswith("/"):
        raise _HttpError(400, f"request target {target[:80]!r} must be an absolute path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            # Obsolete line folding is a request-smuggling vector (RFC 9112 5.2): reject it.
            raise _HttpError(400, "obsolete header line folding is not allowed")
        name, sep, value = line.partition(":")
        if not sep or not name or not _TOKEN_CHARS.match(name):
            raise _HttpError(400, f"malformed header line {line[:80]!r}")
        key = name.lower()
        value = value.strip(" \t")
        if key == "content-length" and key in headers and headers[key] != value:
            raise _HttpError(400, "conflicting Content-Length headers")
        headers[key] = (
            f"{headers[key]}, {value}" if key in headers and key != "content-length" else value
        )
    if "transfer-encoding" in headers:
        # Chunked uploads are not needed for JSON bodies of a few KiB; refusing them removes
        # the Content-Length/Transfer-Encoding ambiguity entirely.
        raise _HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
    path = target.split("?", 1)[0].split("#", 1)[0]
    return Request(method=method, target=target, path=path, version=version, headers=headers)


def content_length(request: Request, max_body: int) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        return 0
    if not raw.isdigit():
        raise _HttpError(400, f"Content-Length {raw[:20]!r} is not a number")
    length = int(raw)
    if length > max_body:
        raise _HttpError(413, f"body of {length} bytes is larger than the limit of {max_body}")
    return length


def bearer_ok(header: str | None, token: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>` (RFC 6750 2.1)."""
    if header is None:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare_digest over SHA-256 digests: the time taken depends neither on where the strings
    # differ nor on the length of the secret.
    given = hashlib.sha256(credentials.strip().encode()).digest()
    return hmac.compare_digest(given, hashlib.sha256(token.encode()).digest())


# ---------------------------------------------------------------------------------------------
# The server


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class ControlServer:
    """`await start()`, then `.port` / `.url`; `await stop()` closes every connection."""

    def __init__(
        self,
        target: ControlTarget,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: str | None = None,
        limits: Limits | None = None,
        allowed_hosts: tuple[str, ...] = (),
        metrics_public: bool = False,
    ) -> None:
        self.target = target
        self.host = host
        self.port = port
        self.token = token or None
        self.limits = limits or Limits()
        self.allowed_hosts = frozenset(_host_name(h) for h in allowed_hosts)
        self.metrics_public = metrics_public
        self.requests_served = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and listen; OSError (naming the address) when the port is taken."""
        try:
            self._server = await asyncio.start_server(
                self._on_connection,
                self.host,
                self.port,
                limit=self.limits.max_head_bytes,
                reuse_address=True,
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"control API cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log_event(
            log,
            "control.started",
            f"control API on {self.url}",
            address=self.url,
            auth="bearer" if self.token else "none",
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=2.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connections ---------------------------------------------------------------------------
    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._handlers) >= self.limits.max_connections:
            with contextlib.suppress(Exception):
                writer.write(error_response(503, "too many connections").encode(keep_alive=False))
                await asyncio.wait_for(writer.drain(), 1.0)
            writer.close()
            return
        self._handlers.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits
        for count in range(limits.max_requests_per_connection):
            # Wait for the first byte under the idle timeout: a silent keep-alive connection is
            # closed without a response (RFC 9112 9.5: a 408 there confuses clients).
            try:
                first = await asyncio.wait_for(
                    reader.read(1), limits.idle_timeout if count else limits.head_timeout
                )
            except TimeoutError:
                return
            if not first:
                return
            try:
                request = await self._read_request(reader, first)
            except _HttpError as exc:
                await self._send(writer, error_response(exc.status, exc.message), False)
                await _linger(reader, writer)
                return
            response = await self._respond(request)
            keep_alive = (
                request.keep_alive
                and not response.close
                and count + 1 < limits.max_requests_per_connection
            )
            await self._send(writer, response, keep_alive, head_only=request.method == "HEAD")
            if not keep_alive:
                return

    async def _read_request(self, reader: asyncio.StreamReader, first: bytes) -> Request:
        limits = self.limits
        try:
            async with asyncio.timeout(limits.head_timeout):
                rest = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise _HttpError(408, "request head not received in time") from None
        except asyncio.LimitOverrunError:
            raise _HttpError(
                431, f"request head larger than {limits.max_head_bytes} bytes"
            ) from None
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("client closed mid-request") from None
        request = parse_head(first + rest)
        length = content_length(request, limits.max_body_bytes)
        if length:
            try:
                async with asyncio.timeout(limits.body_timeout):
                    request.body = await reader.readexactly(length)
            except TimeoutError:
                raise _HttpError(408, "request body not received in time") from None
            except asyncio.IncompleteReadError:
                raise ConnectionResetError("client closed mid-body") from None
        return request

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        keep_alive: bool,
        head_only: bool = False,
    ) -> None:
        writer.write(response.encode(keep_alive, head_only))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(writer.drain(), self.limits.body_timeout)
        self.requests_served += 1

    # -- routing -------------------------------------------------------------------------------
    async def _respond(self, request: Request) -> Response:
        refused = self._refuse_foreign(request)
        if refused is not None:
            return refused
        try:
            async with asyncio.timeout(self.limits.handler_timeout):
                return await self._route(request)
        except ControlError as exc:
            return error_response(exc.status, exc.message)
        except TimeoutError:
            log_event(
                log,
                "control.timeout",
                f"{request.method} {request.path} took longer than {self.limits.handler_timeout} s",
                level=logging.WARNING,
                method=request.method,
                path=request.path,
            )
            return error_response(504, "the gateway did not complete the request in time")
        except Exception:  # a bug in the application: answer 500, keep serving
            log.exception(
                "control request failed",
                extra={"event": "control.error", "method": request.method, "path": request.path},
            )
            return error_response(500, "internal error (see the gateway log)")

    def _refuse_foreign(self, request: Request) -> Response | None:
        """Host, Origin and media-type checks, before any handler or the token check."""
        host = request.headers.get("host")
        # No Host at all is let through: every browser sends one, so its absence is a hand-made
        # client (a probe, a test), not a page rebinding a name to us.
        if host is not None and not host_allowed(host, self.allowed_hosts):
            self._log_refused(request, "host", f"Host {host[:100]!r} is not an allowed name")
            return error_response(
                421,
                f"Host {host[:100]!r} is not an allowed name for this server "
                "(control.allowed_hosts)",
                close=True,
            )
        origin = request.headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            self._log_refused(request, "origin", f"cross-origin request from {origin[:100]!r}")
            return error_response(403, "cross-origin requests are refused", close=True)
        if request.body and media_type(request.headers.get("content-type")) != "application/json":
            return error_response(415, "the body must be application/json", close=True)
        return None

    def _log_refused(self, request: Request, check: str, message: str) -> None:
        log_event(
            log,
            "control.refused",
            message,
            level=logging.WARNING,
            check=check,
            method=request.method,
            path=request.path[:100],
        )

    def _authorized(self, request: Request) -> Response | None:
        if self.token is None:
            return None
        header = request.headers.get("authorization")
        if bearer_ok(header, self.token):
            return None
        challenge = 'Bearer realm="sip-realtime-gateway"'
        if header is not None:
            challenge += ', error="invalid_token"'  # RFC 6750 3.1
        message = "missing bearer token" if header is None else "invalid bearer token"
        return error_response(401, message, headers=[("WWW-Authenticate", challenge)])

    async def _route(self, request: Request) -> Response:
        segments = request.path.split("/")[1:]
        method = request.method
        if segments == ["healthz"]:
            allowed = _allow(method, ("GET",))
            if allowed:
                return allowed
            healthy = bool(self.target.healthy())
            return json_response(
                200 if healthy else 503, {"status": "ok" if healthy else "unhealthy"}
            )
        if segments == ["readyz"]:
            # Open for probes; the reason can name registrars, so only the token shows it.
            return _allow(method, ("GET",)) or self._readyz(self._authorized(request) is None)
        if segments == ["metrics"] and self.metrics_public:
            return _allow(method, ("GET",)) or self._metrics()
        denied = self._authorized(request)
        if denied is not None:
            return denied
        if segments == ["metrics"]:
            return _allow(method, ("GET",)) or self._metrics()
        if segments and segments[0] == "calls":
            return await self._calls(request, method, segments[1:])
        return error_response(404, f"no such endpoint: {request.path[:100]}")

    def _readyz(self, with_reason: bool) -> Response:
        ready, reason = self.target.ready()
        if ready:
            return json_response(200, {"ready": True})
        if not with_reason:
            return json_response(503, {"ready": False})
        return json_response(503, {"ready": False, "reason": reason or "not ready"})

    def _metrics(self) -> Response:
        body, content_type = self.target.metrics()
        return Response(200, body, content_type=content_type)

    async def _calls(self, request: Request, method: str, rest: list[str]) -> Response:
        if not rest or rest == [""]:
            if allowed := _allow(method, ("GET", "POST")):
                return allowed
            if method in ("GET", "HEAD"):
                return json_response(200, {"calls": self.target.list_calls()})
            originate = parse_originate(parse_json_body(request.body))
            call_id = await self.target.originate(originate)
            if isinstance(call_id, ControlFailure):
                return error_response(call_id.status, call_id.text)
            log_event(
                log,
                "control.originate",
                f"originating a call to {originate.to}",
                call_id=call_id,
                to=originate.to,
                registration=originate.registration,
            )
            return json_response(
                202, {"call_id": call_id}, headers=[("Location", f"/calls/{_quote(call_id)}")]
            )
        call_id = unquote(rest[0])
        if not call_id:
            return error_response(404, "empty call id")
        if len(rest) == 1:
            if allowed := _allow(method, ("DELETE",)):
                return allowed
            found = await _maybe_await(self.target.hangup(call_id))
            if isinstance(found, ControlFailure):
                return error_response(found.status, found.text)
            if not found:
                return error_response(404, f"no live call {call_id!r}")
            log_event(log, "control.hangup", "hang-up requested", call_id=call_id)
            return Response(204)
        if rest[1:] == ["say"]:
            if allowed := _allow(method, ("POST",)):
                return allowed
            say = parse_say(parse_json_body(request.body))
            found = await _maybe_await(self.target.say(call_id, say.text, say.role, say.respond))
            if isinstance(found, ControlFailure):
                return error_response(found.status, found.text)
            if not found:
                return error_response(404, f"no live call {call_id!r}")
            log_event(
                log,
                "control.say",
                "message injected",
                call_id=call_id,
                role=say.role,
                respond=say.respond,
            )
            return json_response(202, {"call_id": call_id, "accepted": True})
        return error_response(404, f"no such endpoint: {request.path[:100]}")


def _allow(method: str, allowed: tuple[str, ...]) -> Response | None:
    """None when `method` is allowed, else the 405 response listing what is (RFC 9110 15.5.6).
    HEAD is allowed wherever GET is (RFC 9110 9.3.2)."""
    methods = list(allowed) + (["HEAD"] if "GET" in allowed else [])
    if method in methods:
        return None
    return error_response(
        405,
        f"method {method} not allowed here (allowed: {', '.join(methods)})",
        headers=[("Allow", ", ".join(methods))],
    )


def _host_name(value: str) -> str:
    """The name of a `Host` value or an allowed_hosts entry: no port, brackets, case or
    trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Whether a `Host` header may be served. IP literals are always fine: DNS rebinding needs
    the attacker's own name in the URL, so its requests carry that name, never an address;
    `localhost` is resolved to loopback by browsers themselves."""
    name = _host_name(host)
    if not name:
        return False
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def same_origin(origin: str, host: str | None) -> bool:
    """`Origin` (RFC 6454) names this server: http://<the Host header>. "null" never does."""
    if host is None:
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = ":80" if parts.scheme == "http" else ":443"
    return parts.netloc.lower().removesuffix(default) == host.strip().lower().removesuffix(":80")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _quote(call_id: str) -> str:
    from urllib.parse import quote

    return quote(call_id, safe="@.-_~!*'()+:")


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and drain the client's input for up to LINGER_S / LINGER_MAX_BYTES (see
    LINGER_S); the caller closes the connection after."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_S
        received = 0
        while received < LINGER_MAX_BYTES:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            chunk = await asyncio.wait_for(reader.read(4096), remaining)
            if not chunk:
                return
            received += len(chunk)


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ControlError",
    "ControlServer",
    "ControlTarget",
    "Limits",
    "OriginateRequest",
    "SayRequest",
    "bearer_ok",
    "host_allowed",
    "media_type",
    "parse_head",
    "parse_originate",
    "parse_say",
    "same_origin",
]
