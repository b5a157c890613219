"""SourceLatch: which source may send a call RTP/RTCP (strict latching, issue 9)."""

from __future__ import annotations

import pytest

from gateway.media.latch import ACCEPT, FOREIGN, PROBATION, SourceLatch

SDP = ("192.0.2.10", 40000)
SDP_RTCP = ("192.0.2.10", 40001)
NAT = ("203.0.113.7", 61000)  # where the caller's media really leaves from
ATTACKER = ("198.51.100.66", 5004)


def latch_for_call(**kwargs: object) -> SourceLatch:
    latch = SourceLatch(signalling_host=NAT[0], **kwargs)  # type: ignore[arg-type]
    latch.set_sdp(SDP, SDP_RTCP)
    return latch


def test_the_sdp_address_is_accepted_at_once() -> None:
    latch = latch_for_call()
    assert latch.check_rtp(SDP, 1, 100) == ACCEPT
    assert latch.latched == SDP


def test_another_source_needs_consecutive_in_sequence_packets_with_one_ssrc() -> None:
    latch = latch_for_call()
    assert latch.check_rtp(NAT, 7, 100) == PROBATION
    assert latch.check_rtp(NAT, 7, 101) == PROBATION
    assert latch.check_rtp(NAT, 7, 102) == ACCEPT
    assert latch.latched == NAT
    assert latch.check_rtp(SDP, 7, 103) == FOREIGN  # latched: even the SDP's address is out


@pytest.mark.parametrize(
    "packets",
    [
        [(7, 100), (7, 102), (7, 103)],  # a gap restarts the count
        [(7, 100), (8, 101), (7, 102)],  # another SSRC restarts it
        [(7, 100), (7, 100), (7, 101)],  # a repeat is not in sequence
    ],
)
def test_probation_restarts_on_a_gap_or_an_ssrc_change(packets: list[tuple[int, int]]) -> None:
    latch = latch_for_call()
    assert [latch.check_rtp(NAT, ssrc, seq) for ssrc, seq in packets] == [PROBATION] * 3
    assert latch.latched is None


def test_sequence_wraps_during_probation() -> None:
    latch = latch_for_call()
    verdicts = [latch.check_rtp(NAT, 7, seq) for seq in (65534, 65535, 0)]
    assert verdicts == [PROBATION, PROBATION, ACCEPT]


def test_a_host_neither_in_the_sdp_nor_the_signalling_is_never_learned() -> None:
    latch = latch_for_call()
    assert [latch.check_rtp(ATTACKER, 9, seq) for seq in range(100, 110)] == [FOREIGN] * 10
    assert latch.latched is None
    assert latch.check_rtp(SDP, 1, 1) == ACCEPT  # the caller still gets in


def test_any_host_learns_from_anywhere_after_probation() -> None:
    latch = latch_for_call(any_host=True)
    verdicts = [latch.check_rtp(ATTACKER, 9, seq) for seq in range(100, 103)]
    assert verdicts == [PROBATION, PROBATION, ACCEPT]


def test_the_probation_length_is_configurable() -> None:
    latch = latch_for_call(probation_packets=5)
    verdicts = [latch.check_rtp(NAT, 7, seq) for seq in range(5)]
    assert verdicts == [PROBATION] * 4 + [ACCEPT]
    with pytest.raises(ValueError, match="probation_packets"):
        SourceLatch(0)


def test_a_spray_of_sources_cannot_grow_the_candidates_or_block_the_sdp_address() -> None:
    latch = latch_for_call()
    for port in range(1000, 1100):
        latch.check_rtp((NAT[0], port), port, 1)
    assert len(latch._candidates) <= 4
    assert latch.check_rtp(SDP, 1, 1) == ACCEPT


def test_no_time_no_silence_reopens_the_latch() -> None:
    """The latch has no clock at all: however long the latched source is quiet, nothing else
    takes over; only set_sdp with a new address re-opens it."""
    latch = latch_for_call()
    latch.check_rtp(SDP, 1, 1)
    for seq in range(50):
        assert latch.check_rtp(NAT, 7, seq) == FOREIGN
    assert latch.latched == SDP


def test_hold_and_resume_to_the_same_address_keep_the_latch() -> None:
    latch = latch_for_call()
    for seq in (1, 2, 3):
        latch.check_rtp(NAT, 7, seq)
    latch.set_sdp(None, None)  # c=0.0.0.0 hold
    latch.set_sdp(SDP, SDP_RTCP)  # resume
    assert latch.latched == NAT
    assert latch.latches == 1


def test_a_moved_sdp_address_reopens_and_the_old_path_is_excluded() -> None:
    latch = latch_for_call()
    latch.check_rtp(SDP, 1, 1)
    moved = ("192.0.2.10", 42000)
    latch.set_sdp(moved, (moved[0], moved[1] + 1))
    assert latch.latched is None
    assert [latch.check_rtp(SDP, 1, seq) for seq in (2, 3, 4, 5)] == [FOREIGN] * 4
    assert latch.check_rtp(moved, 5, 1) == ACCEPT
    assert latch.latches == 2


def test_a_late_offer_keeps_a_source_learned_before_the_first_sdp() -> None:
    latch = SourceLatch(signalling_host=NAT[0])
    for seq in (1, 2, 3):
        latch.check_rtp(NAT, 7, seq)
    assert latch.latched == NAT
    latch.set_sdp(("10.0.0.5", 4000), ("10.0.0.5", 4001))  # the ACK's answer: a private address
    assert latch.latched == NAT


def test_rtcp_follows_the_latched_rtp_source() -> None:
    latch = latch_for_call()
    assert latch.check_rtcp(SDP_RTCP)  # before latching: the SDP's RTCP address only
    assert not latch.check_rtcp((NAT[0], NAT[1] + 1))
    for seq in (1, 2, 3):
        latch.check_rtp(NAT, 7, seq)
    assert latch.check_rtcp((NAT[0], NAT[1] + 1))
    assert latch.check_rtcp(NAT)
    assert not latch.check_rtcp(SDP_RTCP)  # the SDP's address is not the latched one
    assert not latch.check_rtcp(ATTACKER)
    other = latch_for_call()
    other.check_rtp(SDP, 1, 1)
    assert other.check_rtcp(SDP_RTCP)
    assert not other.check_rtcp((SDP[0], 9999))


def test_ipv6_brackets_from_the_sdp_match_socket_addresses() -> None:
    latch = SourceLatch(signalling_host="[::1]")
    latch.set_sdp(("[::1]", 4000), ("[::1]", 4001))
    assert latch.check_rtp(("::1", 4000, 0, 0), 1, 1) == ACCEPT
