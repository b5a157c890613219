"""Microseconds per parse + serialise of a realistic INVITE with SDP and of a 200 OK.

    .venv/bin/python bench/sip_parse.py [iterations]

Prints p50 and mean per message kind for parse_message(), to_bytes() and both together,
plus the accessors the UA reads on every request (call_id, cseq, tags, top Via).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sip.message import parse_message

_SDP = (
    b"v=0\r\no=- 3912345678 3912345678 IN IP4 192.0.2.10\r\ns=Asterisk\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 14562 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:140\r\na=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:gateway@192.0.2.20:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKPj6e4c2f1a-0b9d-4e8f-a7c6-5d4e3f2a1b0c\r\n"
    b'From: "Front Desk" <sip:2001@192.0.2.10>;tag=9c8b7a6f-5e4d-3c2b-1a09-f8e7d6c5b4a3\r\n'
    b"To: <sip:gateway@192.0.2.20>\r\n"
    b"Contact: <sip:asterisk@192.0.2.10:5060>\r\n"
    b"Call-ID: 3d2c1b0a-9f8e-7d6c-5b4a-39281706f5e4\r\n"
    b"CSeq: 28761 INVITE\r\n"
    b"Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, "
    b"PRACK, MESSAGE, REFER\r\n"
    b"Supported: 100rel, timer, replaces, norefersub\r\n"
    b"Session-Expires: 1800\r\nMin-SE: 90\r\n"
    b'P-Asserted-Identity: "Front Desk" <sip:2001@192.0.2.10>\r\n'
    b"Max-Forwards: 70\r\nUser-Agent: Asterisk PBX 20.5.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n\r\n" + _SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK4f3e2d1c0b9a8776;rport=5060;received=192.0.2.20\r\n"
    b"Record-Route: <sip:192.0.2.1;lr;ftag=a1b2c3>\r\n"
    b"From: <sip:gateway@192.0.2.20>;tag=a1b2c3d4e5f6\r\n"
    b"To: <sip:2001@192.0.2.10>;tag=0f9e8d7c-6b5a-4938-2716-05f4e3d2c1b0\r\n"
    b"Call-ID: 7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d\r\n"
    b"CSeq: 102 BYE\r\n"
    b"Server: Asterisk PBX 20.5.0\r\n"
    b"Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE\r\n"
    b"Supported: 100rel, timer, replaces, norefersub\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def measure(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(200):  # warm-up
        fn()
    samples: list[float] = []
    clock = time.perf_counter
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples) * 1e6, statistics.fmean(samples) * 1e6


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(f"{'message':<10} {'operation':<26} {'p50 us':>8} {'mean us':>8}")
    for label, raw in (("INVITE", INVITE), ("200 OK", OK_200)):
        msg = parse_message(raw)

        def accessors(m=msg) -> object:
            return (m.call_id, m.cseq, m.from_tag, m.to_tag, m.branch)

        cases: list[tuple[str, Callable[[], object]]] = [
            ("parse", lambda r=raw: parse_message(r)),
            ("to_bytes", msg.to_bytes),
            ("parse + to_bytes", lambda r=raw: parse_message(r).to_bytes()),
            ("accessors (id, tags, via)", accessors),
        ]
        for name, fn in cases:
            p50, mean = measure(fn, iterations)
            print(f"{label:<10} {name:<26} {p50:8.1f} {mean:8.1f}")
    print(f"({iterations} iterations each, {len(INVITE)}-byte INVITE, {len(OK_200)}-byte 200 OK)")


if __name__ == "__main__":
    main()
