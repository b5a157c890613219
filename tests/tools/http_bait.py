"""A loopback HTTP server that misbehaves on purpose, for the HTTP tool and webhook tests.

Paths (POST or GET):
- `/redirect?to=<url>&code=<3xx>`: redirects there (default 307, which keeps the POST body);
  without `to`, to itself (a redirect loop).
- `/huge?bytes=<n>`: 200 with a body of n bytes (default 64 MiB), written in 64 KiB pieces
  until the client stops reading; `sent_bytes` tells how far it got.
- anything else: 200 `{"ok": true, "path": ...}`.
Every request is recorded in `requests` (method, path, headers) before it is answered.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HUGE_DEFAULT = 64 * 1024 * 1024


class BaitServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[dict[str, Any]] = []
        self.sent_bytes = 0
        self.huge_finished = False
        self._lock = threading.Lock()
        bait = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self._handle()

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with bait._lock:
                    bait.requests.append(
                        {"method": self.command, "path": parts.path, "headers": dict(self.headers)}
                    )
                if parts.path == "/redirect":
                    self.send_response(int(query.get("code", "307")))
                    self.send_header("Location", query.get("to", "/redirect"))  # else a loop
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts.path == "/huge":
                    self._huge(int(query.get("bytes", HUGE_DEFAULT)))
                else:
                    body = json.dumps({"ok": True, "path": parts.path}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def _huge(self, total: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(total))
                self.end_headers()
                piece = b"x" * 65536
                try:
                    while bait.sent_bytes < total:
                        self.wfile.write(piece)
                        with bait._lock:
                            bait.sent_bytes += len(piece)
                    bait.huge_finished = True
                except OSError:
                    pass  # the client stopped reading and closed: what the test wants

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> BaitServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
