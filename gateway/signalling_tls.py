"""The process's SIP-over-TLS contexts (issue 13): the listener's (`[sip.tls] enabled`, on
`sip.tls.port`) and the client's (registrations, trunks, REFER targets and originated calls to
`sips:` or `;transport=tls` URIs), built from sip/tls.py settings and re-read on SIGHUP.

The client context is built whatever `enabled` says (outbound TLS needs no listener; a registrar
that sends calls to our Contact's TLS port does, docs/configuration.md). A reload re-reads the
certificate and key into the listener's context (`ServerTls.reload`): connections accepted
later get the new certificate, open ones keep theirs, and a broken new pair leaves the old one
in use with an ERROR naming the file. Turning the listener on or off, or moving its port, needs
a restart (gateway/config/reload.py). gateway/app.py owns one; nothing here reads the
configuration module: it is handed the `[sip.tls]` section (gateway/config/schema.py TlsConfig:
`enabled`, `server_settings()`, `client_settings()`).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from gateway.observe.logs import log_event
from sip.tls import ServerTls, TlsClientSettings, TlsError, TlsServerSettings, client_context

log = logging.getLogger("gateway")


class SignallingTls:
    """The listener's `ServerTls` (None without a listener) and the outbound client context.
    Raises `TlsError` naming the file or setting that is wrong."""

    def __init__(self, section: Any) -> None:
        self.server = ServerTls(section.server_settings()) if section.enabled else None
        self.client: ssl.SSLContext = client_context(section.client_settings())

    def transport_options(self, port: int) -> dict[str, Any]:
        """Keyword arguments of sip.transport.Transport: the listener on `port` (0: any free
        port, for tests) when enabled, and the outbound context."""
        options: dict[str, Any] = {"tls_client_context": self.client}
        if self.server is not None:
            options.update(tls_context=self.server.context, tls_port=port)
        return options

    def reload(self, transport: Any, section: Any) -> bool:
        """SIGHUP: re-read the certificate, key and CAs (the files may have been renewed in
        place, or the settings point at new ones). False, with an ERROR line, when a file is
        unreadable or the pair does not match: then nothing changes."""
        server: TlsServerSettings = section.server_settings()
        client: TlsClientSettings = section.client_settings()
        try:
            new_client = client_context(client)
            if self.server is not None:
                self.server.reload(server)
        except TlsError as exc:
            log_event(
                log,
                "sip.tls_reload_failed",
                f"keeping the current TLS certificate and configuration: {exc}",
                level=logging.ERROR,
                error=str(exc),
            )
            return False
        self.client = new_client
        if transport is not None:
            transport.set_tls_contexts(client=new_client)
        if self.server is not None:
            log_event(
                log,
                "sip.tls_reloaded",
                f"TLS certificate re-read from {server.cert_file}",
                cert_file=server.cert_file,
                verify_client=server.verify_client,
            )
        return True


__all__ = ["SignallingTls"]
