"""sips: and TLS rules (RFC 3261 26.2, RFC 5630): pure decisions shared by the sans-I/O core and
the resolver (sip/resolve.py), no I/O.

- A `sips:` URI is reached over TLS only (RFC 5630 3.1.3): asking for UDP or TCP to one is an
  error (`InsecureTransportError`), never a silent downgrade.
- `;transport=tls` and `sips:` default to port 5061, everything else to 5060 (RFC 3263 4.2 basics,
  no NAPTR/SRV).
- A request that came with a `sips:` Request-URI or Contact is answered with a `sips:` Contact
  (RFC 5630 4.1: the dialog must stay secure).
"""

from __future__ import annotations

from sip.message import Request
from sip.uri import SipUri, UriError, parse_name_addr

SIP_PORT = 5060
SIPS_PORT = 5061
_PROTOS = ("udp", "tcp", "tls")


class InsecureTransportError(OSError):
    """A sips: target was asked to go over a transport that is not TLS."""


def next_hop_transport(uri: SipUri, proto: str | None = None) -> tuple[str, int]:
    """The transport and port for sending to `uri`: `proto` if given, else its ;transport=,
    else TLS for sips: and UDP for sip:. Unknown transports fall back to UDP (as before)."""
    sips = uri.scheme == "sips"
    chosen = (proto or uri.transport or ("tls" if sips else "udp")).lower()
    if chosen not in _PROTOS:
        chosen = "udp"
    if sips and chosen != "tls":
        raise InsecureTransportError(
            f"{uri} is a sips: URI: it is reached over TLS only, not {chosen.upper()} (RFC 5630)"
        )
    return chosen, uri.port or (SIPS_PORT if chosen == "tls" else SIP_PORT)


def wants_sips(req: Request) -> bool:
    """True when the peer asked for a secure dialog: a sips: Request-URI or Contact."""
    if req.uri.scheme == "sips":
        return True
    contact = req.headers.get("Contact")
    if not contact:
        return False
    try:
        return parse_name_addr(contact).uri.scheme == "sips"
    except (UriError, ValueError):
        return False


__all__ = [
    "SIPS_PORT",
    "SIP_PORT",
    "InsecureTransportError",
    "next_hop_transport",
    "wants_sips",
]
