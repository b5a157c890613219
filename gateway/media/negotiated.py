"""The negotiated audio stream, as the media path needs it.

SDP offer/answer (sip/sdp.py) produces a `sip.sdp.MediaInfo`; the call object
(gateway/call/answer.py `negotiated`) turns it into this value, so the media modules never
import the SIP layer's types: media speaks of a remote RTP address, a payload type, a codec and
a direction, whatever signalling negotiated them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    codec: str  # 'PCMU' | 'PCMA'
    payload_type: int  # PT we send and expect for audio
    remote_host: str
    remote_port: int
    remote_rtcp_port: int
    direction: str = "sendrecv"  # what WE may do: sendrecv/sendonly/recvonly/inactive
    telephone_event_pt: int | None = None  # RFC 4733 PT, None when not negotiated
    ptime: int = 20  # the packetisation we send
    on_hold: bool = False  # the peer put us on hold (sendonly/inactive or c=0.0.0.0)

    @property
    def may_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def may_receive(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


__all__ = ["NegotiatedMedia"]
