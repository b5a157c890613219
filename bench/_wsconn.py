"""The gateway's client WebSocket connection (gateway/wsock.py `_CallbackConnection`) after a
real handshake answered by websockets' server side, on a stand-in transport, and the server
frames to feed it: for the benches that time the read path (event_cost.py --wire,
wsread_cost.py). `gateway.wsock` is imported when a connection is made, so an A/B child that
put its own tree first on sys.path gets that tree's."""

from __future__ import annotations

from typing import Any

from bench._standins import StandInTransport


def server_frame(payload: bytes) -> bytes:
    """An unmasked text frame, FIN set, as a server writes it (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65536:
        return bytes([0x81, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + n.to_bytes(8, "big") + payload


def handshaken_connection(on_message: Any, max_size: int = 16 * 2**20) -> Any:
    """A `_CallbackConnection` reading into `on_message`, its handshake done."""
    from websockets.client import ClientProtocol
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    from gateway.wsock import _CallbackConnection

    protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), max_size=max_size)
    conn = _CallbackConnection(
        protocol,
        on_message=on_message,
        on_closed=lambda exc: None,
        ping_interval=None,
        ping_timeout=None,
    )
    conn.connection_made(StandInTransport())
    protocol.send_request(protocol.connect())
    server = ServerProtocol()
    server.receive_data(b"".join(protocol.data_to_send()))
    server.send_response(server.accept(server.events_received()[0]))
    conn.data_received(b"".join(server.data_to_send()))
    return conn
