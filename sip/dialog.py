"""Dialog state (RFC 3261 section 12): identifiers, CSeq, route set, remote target.

Pure data plus rules, no I/O. A dialog is created
- as UAS from an inbound INVITE and the 1xx/2xx (with To tag) we answer it with: `Dialog.uas()`;
- as UAC from our request and a 101-299 response carrying a To tag: `Dialog.uac()`.

It then checks inbound in-dialog requests (`receive_request` -> None or 500 for an out-of-order
CSeq, 12.2.2), follows target refreshes (re-INVITE/UPDATE Contact), and builds in-dialog requests
with the route set applied (`create_request`, 12.2.1.1) and ACKs for 2xx (`create_ack`,
13.2.2.4). The Via sent-by and transport are arguments because only the UA knows the advertised
address (NAT) and which transport the next hop uses.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from sip.message import Headers, Request, Response, generate_branch
from sip.uri import NameAddr, SipUri, UriError, format_host, parse_name_addr

__all__ = ["TARGET_REFRESH_METHODS", "Dialog", "DialogError"]

# Methods whose requests (and 2xx responses) refresh the remote target (12.2, RFC 3311, 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
# Parameters that may not stay in a Request-URI taken from a strict route (19.1.1 table 1).
_NOT_IN_REQUEST_URI = ("method", "ttl")


class DialogError(ValueError):
    """The messages given cannot create a dialog (no tag, wrong status, bad header)."""


def _initial_cseq() -> int:
    # 8.1.1.5: any value below 2**31; random so a restarted UA does not reuse old numbers,
    # and below 2**30 so a long call can never run out of room.
    return secrets.randbelow(2**30 - 1) + 1


def _without_tag(addr: NameAddr) -> NameAddr:
    addr = addr.copy()
    addr.params.pop("tag")
    return addr


def _first_contact_uri(message: Request | Response) -> SipUri | None:
    contacts = message.headers.get_all("Contact")
    if not contacts:
        return None
    try:
        uri = parse_name_addr(contacts[0]).uri
    except UriError:
        return None
    # Only a SIP URI can be a remote target; a urn:/tel: Contact is useless for routing.
    return uri if uri.scheme in ("sip", "sips") else None


def _parse_routes(values: Iterable[str]) -> list[NameAddr]:
    try:
        return [parse_name_addr(v) for v in values]
    except UriError as exc:
        raise DialogError(f"bad Record-Route: {exc}") from None


class Dialog:
    """One dialog. `state` is "early" (1xx) or "confirmed" (2xx); the UA sets "terminated"."""

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: SipUri,
        route_set: list[NameAddr],
        local_cseq: int,
        remote_cseq: int | None,
        local_contact: str | None = None,
        state: str = "confirmed",
        secure: bool = False,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri  # From of our requests, tag excluded
        self.remote_uri = remote_uri  # To of our requests, tag excluded
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.local_contact = local_contact
        self.state = state
        self.secure = secure

    # ---- creation -----------------------------------------------------------------------

    @classmethod
    def uas(cls, invite: Request, response: Response) -> Dialog:
        """12.1.1: we answered `invite` with `response` (101-299 carrying our To tag)."""
        if not 101 <= response.status <= 299:
            raise DialogError(f"status {response.status} does not create a dialog")
        local_tag = response.to_tag
        remote_tag = invite.from_tag
        if not local_tag:
            raise DialogError("response has no To tag")
        if remote_tag is None:
            # RFC 2543 peers may omit the From tag; 12.1.1 says the remote tag is then null.
            remote_tag = ""
        target = _first_contact_uri(invite)
        if target is None:
            raise DialogError("INVITE has no usable Contact")
        try:
            local_uri = _without_tag(response.to_addr)
            remote_uri = _without_tag(invite.from_addr)
        except UriError as exc:
            raise DialogError(f"bad From/To: {exc}") from None
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=local_uri,
            remote_uri=remote_uri,
            remote_target=target,
            route_set=_parse_routes(invite.headers.get_all("Record-Route")),
            local_cseq=_initial_cseq(),
            remote_cseq=invite.cseq[0],
            local_contact=response.headers.get("Contact"),
            state="early" if response.status < 200 else "confirmed",
            secure=invite.uri.scheme == "sips",
        )

    @classmethod
    def uac(cls, request: Request, response: Response) -> Dialog:
        """12.1.2: our `request` got `response` (101-299 with a To tag)."""
        if not 101 <= response.status <= 299:
            raise DialogError(f"status {response.status} does not create a dialog")
        remote_tag = response.to_tag
        local_tag = request.from_tag
        if not remote_tag:
            raise DialogError("response has no To tag")
        if not local_tag:
            raise DialogError("request has no From tag")
        target = _first_contact_uri(response)
        if target is None:
            if response.status >= 200:
                raise DialogError("2xx has no usable Contact")
            target = request.uri.copy()  # early dialog without Contact: refreshed by the 2xx
        try:
            local_uri = _without_tag(request.from_addr)
            remote_uri = _without_tag(request.to_addr)
        except UriError as exc:
            raise DialogError(f"bad From/To: {exc}") from None
        routes = _parse_routes(response.headers.get_all("Record-Route"))
        routes.reverse()  # 12.1.2: the UAC sees Record-Route in reverse order
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=local_uri,
            remote_uri=remote_uri,
            remote_target=target,
            route_set=routes,
            local_cseq=request.cseq[0],
            remote_cseq=None,
            local_contact=request.headers.get("Contact"),
            state="early" if response.status < 200 else "confirmed",
            secure=request.uri.scheme == "sips",
        )

    # ---- identity ---------------------------------------------------------------------------

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag) (12)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @staticmethod
    def id_for_request(request: Request) -> tuple[str, str, str]:
        """Dialog id of an inbound request as seen by us: the To tag is ours."""
        return (request.call_id, request.to_tag or "", request.from_tag or "")

    @staticmethod
    def id_for_response(response: Response) -> tuple[str, str, str]:
        """Dialog id of a response to our request: the From tag is ours."""
        return (response.call_id, response.from_tag or "", response.to_tag or "")

    # ---- inbound --------------------------------------------------------------------------

    def check_remote_cseq(self, cseq: int) -> bool:
        """12.2.2: a CSeq lower than the last one seen is out of order; record it otherwise."""
        if self.remote_cseq is not None and cseq < self.remote_cseq:
            return False
        self.remote_cseq = cseq
        return True

    def receive_request(self, request: Request) -> int | None:
        """Apply an inbound in-dialog request; None if fine, else the status to reject it with.

        ACK and CANCEL carry the CSeq of their INVITE and do not move the remote CSeq.
        """
        if request.method not in ("ACK", "CANCEL"):
            if not self.check_remote_cseq(request.cseq[0]):
                return 500
        if request.method in TARGET_REFRESH_METHODS:
            target = _first_contact_uri(request)
            if target is not None:
                self.remote_target = target
        return None

    def receive_response(self, request: Request, response: Response) -> None:
        """Apply a response to our in-dialog request, or the 2xx confirming an early dialog.

        13.2.2.4: the 2xx to the initial INVITE recomputes the route set of an early dialog;
        a 2xx to a target refresh (re-INVITE, UPDATE) replaces the remote target (12.2.1.2).
        """
        if not 200 <= response.status < 300:
            return
        if self.state == "early" and response.headers.get_all("Record-Route"):
            routes = _parse_routes(response.headers.get_all("Record-Route"))
            routes.reverse()
            self.route_set = routes
        if self.state == "early":
            self.state = "confirmed"
        if request.method in TARGET_REFRESH_METHODS:
            target = _first_contact_uri(response)
            if target is not None:
                self.remote_target = target

    # ---- outbound -------------------------------------------------------------------------

    def next_hop(self) -> SipUri:
        """The URI to resolve for sending (8.1.2): first route (loose or strict), else target."""
        if self.route_set:
            return self.route_set[0].uri
        return self.remote_target

    def _request_uri_and_routes(self) -> tuple[SipUri, list[str]]:
        if not self.route_set:
            return self.remote_target.copy(), []
        first = self.route_set[0]
        if "lr" in first.uri.params:
            # 12.2.1.1 loose routing: target in the Request-URI, the route set as Route.
            return self.remote_target.copy(), [str(r) for r in self.route_set]
        # Strict routing (a pre-3261 proxy): the first route becomes the Request-URI and the
        # remote target goes last in Route.
        ruri = first.uri.copy()
        for name in _NOT_IN_REQUEST_URI:
            ruri.params.pop(name)
        ruri.headers = type(ruri.headers)()
        routes = [str(r) for r in self.route_set[1:]]
        routes.append(str(NameAddr(self.remote_target.copy())))
        return ruri, routes

    def create_request(
        self,
        method: str,
        via_host: str,
        via_port: int | None = None,
        transport: str = "UDP",
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
        cseq: int | None = None,
        branch: str | None = None,
        rport: bool = True,
    ) -> Request:
        """Build an in-dialog request (12.2.1.1) and advance the local CSeq.

        `cseq` overrides the number (CANCEL and ACK reuse the INVITE's); `via_host`/`via_port`
        are our advertised sent-by. A Contact is added for target-refresh methods.
        """
        if method == "ACK" and cseq is None:
            raise ValueError("ACK needs the CSeq number of its INVITE: use create_ack()")
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        ruri, routes = self._request_uri_and_routes()
        via = f"SIP/2.0/{transport.upper()} {format_host(via_host, via_port)}"
        via += f";branch={branch or generate_branch()}"
        if rport:
            via += ";rport"  # RFC 3581: ask for responses to our source port (NAT)
        headers = Headers()
        headers.add("Via", via)
        headers.add("Max-Forwards", "70")
        for route in routes:
            headers.add("Route", route)
        local = self.local_uri.copy()
        local.params["tag"] = self.local_tag
        remote = self.remote_uri.copy()
        if self.remote_tag:
            remote.params["tag"] = self.remote_tag
        headers.add("From", str(local))
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if method in TARGET_REFRESH_METHODS and self.local_contact:
            headers.add("Contact", self.local_contact)
        for name, value in extra_headers:
            headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
        return Request(method, ruri, headers, body)

    def create_ack(
        self,
        invite_cseq: int,
        via_host: str,
        via_port: int | None = None,
        transport: str = "UDP",
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """ACK for a 2xx (13.2.2.4): CSeq number of the INVITE, a new branch, the route set."""
        return self.create_request(
            "ACK",
            via_host,
            via_port,
            transport,
            body=body,
            content_type=content_type,
            extra_headers=extra_headers,
            cseq=invite_cseq,
        )

    def __repr__(self) -> str:
        return (
            f"<Dialog {self.state} call_id={self.call_id!r} local={self.local_tag!r} "
            f"remote={self.remote_tag!r} cseq={self.local_cseq}/{self.remote_cseq}>"
        )
