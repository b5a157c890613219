"""SDP parse/serialise and audio offer/answer against offers shaped like real peers'."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.sdp import (
    Attribute,
    CodecPrefs,
    Connection,
    LocalSdpState,
    MediaDescription,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    answer_offer,
    build_offer,
    parse_sdp,
    process_answer,
)
from tests.conftest import require_peer

LOCAL_IP = "127.0.0.1"
LOCAL_PORT = 10000


def sdp(text: str) -> bytes:
    """Test SDPs are written with LF; peers send CRLF."""
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


# Offers shaped like what the peers in our interop harness send (project-owned fixtures).
SIPP_OFFER = sdp("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
""")

# Same shape as baresip 1.0.0's offer seen by test_baresip_offer_and_our_answer below.
BARESIP_OFFER = sdp("""
v=0
o=- 1618033988 749894848 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 25038 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:1263574289 cname:sip:caller@127.0.0.1:25062
a=minptime:20
a=ptime:20
""")

LINPHONE_OFFER = sdp("""
v=0
o=caller 2712 1133 IN IP4 127.0.0.1
s=Talk
c=IN IP4 127.0.0.1
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 99 100 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:99 telephone-event/48000
a=rtpmap:100 telephone-event/16000
a=rtpmap:101 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
""")

# linphone's DTMF-only dynamic PT: telephone-event on 96 (peers.md table).
LINPHONE_G711_OFFER = sdp("""
v=0
o=caller 2712 1133 IN IP4 127.0.0.1
s=Talk
c=IN IP4 127.0.0.1
t=0 0
m=audio 7078 RTP/AVP 0 8 96
a=rtpmap:96 telephone-event/8000
a=rtcp-fb:* trr-int 1000
""")

ASTERISK_OFFER = sdp("""
v=0
o=- 1289760212 1289760212 IN IP4 127.0.0.1
s=Asterisk
c=IN IP4 127.0.0.1
t=0 0
m=audio 14396 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")


def answer(offer: bytes | str, prefs: CodecPrefs | None = None, **kwargs):
    return answer_offer(parse_sdp(offer), LOCAL_IP, LOCAL_PORT, prefs, **kwargs)


def simple_offer(m_lines: str, session: str = "c=IN IP4 192.0.2.10\n") -> bytes:
    return sdp(f"v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\n{session}t=0 0\n{m_lines}")


# --- parsing and serialising -------------------------------------------------------------------


def test_parse_fields_and_round_trip() -> None:
    parsed = parse_sdp(BARESIP_OFFER)
    assert parsed.origin.session_id == "1618033988"
    assert parsed.origin.session_version == "749894848"
    assert parsed.connection == Connection("IN", "IP4", "127.0.0.1")
    audio = parsed.media[0]
    assert (audio.media, audio.port, audio.proto, audio.fmts) == (
        "audio",
        25038,
        "RTP/AVP",
        ["0", "8", "101"],
    )
    assert parsed.attributes == [Attribute("tool", "baresip 1.0.0")]
    assert audio.attribute("rtcp-rsize") == ""
    assert audio.attribute("minptime") == "20"
    assert audio.fmtp(101) == "0-15"
    assert audio.direction == "sendrecv"
    assert audio.ptime == 20
    # Unknown attributes are kept verbatim and in order; output is CRLF and byte-identical here.
    assert parsed.to_bytes() == BARESIP_OFFER
    assert str(parsed).endswith("a=ptime:20\r\n")


def test_parse_tolerates_lf_only_trailing_spaces_blank_lines_and_unknown_types() -> None:
    text = "v=0\no=- 1 2 IN IP4 10.0.0.1  \ns=-\n\nt=0 0\nx=unknown line\nm=audio 4000/2 RTP/AVP 0\nb=AS:88\ny=media-level unknown\na=weird attr:with:colons\n\n"
    parsed = parse_sdp(text)
    assert parsed.origin.address == "10.0.0.1"
    assert parsed.other_lines == ["x=unknown line"]
    media = parsed.media[0]
    assert media.port_count == 2 and media.port == 4000
    assert media.bandwidths == ["AS:88"]
    assert media.other_lines == ["y=media-level unknown"]
    assert media.attributes[-1] == Attribute("weird attr", "with:colons")
    assert parse_sdp(str(parsed)) == parsed


def test_missing_s_and_t_get_defaults() -> None:
    parsed = parse_sdp("v=0\no=- 1 2 IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\n")
    assert parsed.session_name == "-" and parsed.times == ["0 0"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("o=- 1 2 IN IP4 h\nv=0\n", "start with v="),
        ("v=1\no=- 1 2 IN IP4 h\n", "version"),
        ("v=0\ns=-\n", "no o= line"),
        ("v=0\nm=audio 1 RTP/AVP 0\n", "no o= line"),
        ("v=0\no=- 1 IN IP4 h\n", "o= needs 6 fields"),
        ("v=0\no=- 1 2 IN IP4 h\no=- 1 2 IN IP4 h\n", "repeated o="),
        ("v=0\no=- 1 2 IN IP4 h\nm=audio RTP/AVP 0\n", "m= "),
        ("v=0\no=- 1 2 IN IP4 h\nm=audio x RTP/AVP 0\n", "port"),
        ("v=0\no=- 1 2 IN IP4 h\nm=audio 70000 RTP/AVP 0\n", "out of range"),
        ("v=0\no=- 1 2 IN IP4 h\nc=IN IP4\n", "c= needs"),
        ("v=0\no=- 1 2 IN IP4 h\nthis is not sdp\n", "line 3"),
        ("v=0\no=- 1 2 IN IP4 h\nv=0\n", "repeated v="),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_sdp(text)


def test_parse_rejects_wrong_type_and_oversize() -> None:
    with pytest.raises(SdpError, match="str or bytes"):
        parse_sdp(42)  # type: ignore[arg-type]
    with pytest.raises(SdpError, match="too large"):
        parse_sdp(b"v=0\r\n" + b"a=x\r\n" * 20000)


def test_non_utf8_bytes_round_trip() -> None:
    raw = b"v=0\r\no=- 1 2 IN IP4 h\r\ns=caf\xe9\r\nt=0 0\r\n"
    assert parse_sdp(raw).to_bytes() == raw


# --- answering real-peer offers ----------------------------------------------------------------


def test_sipp_offer() -> None:
    result = answer(SIPP_OFFER)
    media = result.media
    assert (media.codec, media.payload_type) == ("PCMU", 0)
    assert (media.telephone_event_pt, media.telephone_events) == (101, "0-16")
    assert (media.remote_host, media.remote_port, media.remote_rtcp_port) == (
        "127.0.0.1",
        6000,
        6001,
    )
    assert media.direction == "sendrecv" and not media.on_hold
    assert media.clock_rate == 8000 and media.ptime == 20 and media.remote_ptime == 20
    text = str(result.answer)
    assert "m=audio 10000 RTP/AVP 0 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\n" in text
    assert "a=fmtp:101 0-16\r\n" in text
    assert "a=ptime:20\r\n" in text and "a=sendrecv\r\n" in text
    assert "c=IN IP4 127.0.0.1\r\n" in text
    assert "PCMA" not in text  # exactly one audio codec in the answer
    # The answer itself is valid SDP that parses back to the same thing.
    assert parse_sdp(result.answer.to_bytes()) == result.answer


def test_baresip_offer_echoes_its_event_range() -> None:
    result = answer(BARESIP_OFFER)
    assert result.media.codec == "PCMU"
    assert result.media.telephone_events == "0-15"
    assert "a=fmtp:101 0-15\r\n" in str(result.answer)
    assert "ssrc" not in str(result.answer)  # their attributes are not parroted back


def test_linphone_offer_skips_opus_speex_and_other_rate_telephone_events() -> None:
    result = answer(LINPHONE_OFFER)
    assert (result.media.codec, result.media.payload_type) == ("PCMU", 0)
    # 99 (48000) and 100 (16000) don't fit an 8 kHz codec; 101 does.
    assert result.media.telephone_event_pt == 101
    assert result.media.telephone_events == "0-15"  # no fmtp: RFC 4733 default
    assert "m=audio 10000 RTP/AVP 0 101\r\n" in str(result.answer)


def test_linphone_dynamic_pt_96_telephone_event() -> None:
    result = answer(LINPHONE_G711_OFFER)
    assert result.media.telephone_event_pt == 96
    assert "m=audio 10000 RTP/AVP 0 96\r\n" in str(result.answer)
    assert "a=rtpmap:96 telephone-event/8000\r\n" in str(result.answer)


def test_asterisk_offer_order_is_honoured_by_default() -> None:
    result = answer(ASTERISK_OFFER)
    assert (result.media.codec, result.media.payload_type) == ("PCMA", 8)
    assert "m=audio 10000 RTP/AVP 8 101\r\n" in str(result.answer)


def test_our_preference_when_configured() -> None:
    result = answer(ASTERISK_OFFER, CodecPrefs(("PCMU", "PCMA"), prefer_ours=True))
    assert result.media.codec == "PCMU"
    # Our list restricts what is acceptable even in offerer order.
    assert answer(SIPP_OFFER, CodecPrefs(("PCMA",))).media.codec == "PCMA"


def test_pcma_only_offer() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 8\n"))
    assert (result.media.codec, result.media.payload_type) == ("PCMA", 8)
    assert result.media.telephone_event_pt is None
    assert "m=audio 10000 RTP/AVP 8\r\n" in str(result.answer)


def test_g729_only_offer_is_no_common_codec() -> None:
    with pytest.raises(NoCommonCodec, match="G729"):
        answer(
            simple_offer(
                "m=audio 5004 RTP/AVP 18 101\na=rtpmap:18 G729/8000\na=rtpmap:101 telephone-event/8000\n"
            )
        )


def test_static_payload_types_without_rtpmap() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 0 8\n"))
    assert result.media.codec == "PCMU"


def test_dynamic_pt_named_pcmu_is_honoured() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 112 18\na=rtpmap:112 PCMU/8000\n"))
    assert (result.media.codec, result.media.payload_type) == ("PCMU", 112)
    assert "a=rtpmap:112 PCMU/8000\r\n" in str(result.answer)


def test_wrong_clock_rate_for_g711_name_is_not_used() -> None:
    with pytest.raises(NoCommonCodec):
        answer(simple_offer("m=audio 5004 RTP/AVP 112\na=rtpmap:112 PCMU/16000\n"))


def test_audio_plus_video_declines_video_keeping_order() -> None:
    result = answer(
        simple_offer("m=video 5006 RTP/AVP 96\na=rtpmap:96 H264/90000\nm=audio 5004 RTP/AVP 0\n")
    )
    lines = [m.lines()[0] for m in result.answer.media]
    assert lines == ["m=video 0 RTP/AVP 96", "m=audio 10000 RTP/AVP 0"]
    assert result.media_index == 1


def test_two_audio_streams_answer_only_the_first() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 0\nm=audio 5008 RTP/AVP 8\n"))
    assert [m.port for m in result.answer.media] == [LOCAL_PORT, 0]
    assert result.media.remote_port == 5004


def test_first_audio_with_a_common_codec_is_chosen() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 18\nm=audio 5008 RTP/AVP 8\n"))
    assert [m.port for m in result.answer.media] == [0, LOCAL_PORT]
    assert result.media.codec == "PCMA"


def test_srtp_stream_is_declined() -> None:
    with pytest.raises(NoCommonCodec, match="RTP/SAVP"):
        answer(
            simple_offer("m=audio 5004 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc\n")
        )
    result = answer(simple_offer("m=audio 5004 RTP/SAVP 0\nm=audio 5006 RTP/AVP 0\n"))
    assert [(m.port, m.proto) for m in result.answer.media] == [
        (0, "RTP/SAVP"),
        (LOCAL_PORT, "RTP/AVP"),
    ]


def test_avpf_is_answered_with_avpf() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVPF 0\n"))
    assert result.answer.media[0].proto == "RTP/AVPF"


def test_disabled_stream_and_empty_offer() -> None:
    with pytest.raises(NoCommonCodec, match="port 0"):
        answer(simple_offer("m=audio 0 RTP/AVP 0\n"))
    with pytest.raises(NoCommonCodec, match="no m= lines"):
        answer(simple_offer(""))


def test_missing_connection_address() -> None:
    with pytest.raises(NoCommonCodec, match="c="):
        answer(simple_offer("m=audio 5004 RTP/AVP 0\n", session=""))


@pytest.mark.parametrize(
    ("offered", "answered", "on_hold"),
    [
        ("sendrecv", "sendrecv", False),
        ("sendonly", "recvonly", True),
        ("recvonly", "sendonly", False),
        ("inactive", "inactive", True),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str, on_hold: bool) -> None:
    result = answer(simple_offer(f"m=audio 5004 RTP/AVP 0\na={offered}\n"))
    assert result.media.direction == answered
    assert result.media.on_hold is on_hold
    assert f"a={answered}\r\n" in str(result.answer)


def test_session_level_direction_applies_and_media_level_overrides() -> None:
    result = answer(
        simple_offer("m=audio 5004 RTP/AVP 0\n", session="c=IN IP4 192.0.2.10\na=sendonly\n")
    )
    assert result.media.direction == "recvonly" and result.media.on_hold
    result = answer(
        simple_offer(
            "m=audio 5004 RTP/AVP 0\na=sendrecv\n", session="c=IN IP4 192.0.2.10\na=sendonly\n"
        )
    )
    assert result.media.direction == "sendrecv"


def test_rfc2543_hold_with_zero_address() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 0\n", session="c=IN IP4 0.0.0.0\n"))
    assert result.media.on_hold
    assert result.media.direction == "recvonly"  # nowhere to send to
    assert not result.media.may_send and result.media.may_receive


def test_media_level_connection_overrides_session_level() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 0\nc=IN IP4 198.51.100.7\n"))
    assert result.media.remote_host == "198.51.100.7"


def test_rtcp_attribute_sets_rtcp_port() -> None:
    result = answer(simple_offer("m=audio 5004 RTP/AVP 0\na=rtcp:5999 IN IP4 192.0.2.10\n"))
    assert result.media.remote_rtcp_port == 5999


def test_ipv6_offer_and_answer() -> None:
    offer = sdp("""
v=0
o=- 1 1 IN IP6 ::1
s=-
c=IN IP6 ::1
t=0 0
m=audio 5004 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
""")
    result = answer_offer(parse_sdp(offer), "::1", 10002)
    assert result.media.remote_host == "::1"
    text = str(result.answer)
    assert "c=IN IP6 ::1\r\n" in text and "o=- " in text and " IN IP6 ::1\r\n" in text


def test_bad_local_setup_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="not an IP"):
        answer_offer(parse_sdp(SIPP_OFFER), "gateway.example", 10000)
    with pytest.raises(SdpError, match="port"):
        answer_offer(parse_sdp(SIPP_OFFER), LOCAL_IP, 0)


def test_codec_prefs_validation() -> None:
    assert CodecPrefs(["pcma", "PCMU"]).codecs == ("PCMA", "PCMU")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="G729"):
        CodecPrefs(("G729",))
    with pytest.raises(ValueError, match="empty"):
        CodecPrefs(())


def test_no_telephone_event_when_disabled() -> None:
    result = answer(SIPP_OFFER, CodecPrefs(telephone_event=False))
    assert result.media.telephone_event_pt is None
    assert "telephone-event" not in str(result.answer)


# --- o= versioning across a dialog -------------------------------------------------------------


def test_session_version_stays_for_refresh_and_bumps_on_change() -> None:
    state = LocalSdpState()
    first = answer(SIPP_OFFER, state=state)
    refresh = answer(SIPP_OFFER, state=state, current=first.media)
    assert refresh.answer.origin == first.answer.origin
    hold = answer(
        SIPP_OFFER.replace(b"a=ptime:20", b"a=sendonly"), state=state, current=first.media
    )
    assert int(hold.answer.origin.session_version) == int(first.answer.origin.session_version) + 1
    assert hold.answer.origin.session_id == first.answer.origin.session_id
    resume = answer(SIPP_OFFER, state=state, current=first.media)
    assert int(resume.answer.origin.session_version) == int(first.answer.origin.session_version) + 2


def test_reoffer_keeps_the_current_codec() -> None:
    state = LocalSdpState()
    first = answer(ASTERISK_OFFER, state=state)
    assert first.media.codec == "PCMA"
    # Asterisk's session refresh may list 0 before 8; the call stays on PCMA.
    reordered = ASTERISK_OFFER.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 0 8 101")
    again = answer(reordered, state=state, current=first.media)
    assert again.media.codec == "PCMA"
    assert again.answer.origin == first.answer.origin


def test_build_offer_is_stable_for_unchanged_reoffers() -> None:
    state = LocalSdpState()
    first = build_offer(LOCAL_IP, 10000, state=state)
    again = build_offer(LOCAL_IP, 10000, state=state)
    assert first.origin == again.origin
    held = build_offer(LOCAL_IP, 10000, direction="sendonly", state=state)
    assert int(held.origin.session_version) == int(first.origin.session_version) + 1


# --- our offers and their answers --------------------------------------------------------------


def test_build_offer_lists_our_codecs_and_telephone_event() -> None:
    offer = build_offer(LOCAL_IP, 10000, CodecPrefs(("PCMA", "PCMU")), telephone_event_pt=110)
    text = str(offer)
    assert "m=audio 10000 RTP/AVP 8 0 110\r\n" in text
    assert "a=rtpmap:110 telephone-event/8000\r\na=fmtp:110 0-16\r\n" in text
    assert "a=ptime:20\r\na=sendrecv\r\n" in text
    assert parse_sdp(offer.to_bytes()) == offer
    with pytest.raises(SdpError, match="dynamic"):
        build_offer(LOCAL_IP, 10000, telephone_event_pt=8)


def test_our_offer_answered_by_our_answerer() -> None:
    offer = build_offer("::1", 10000)
    result = answer_offer(parse_sdp(offer.to_bytes()), "::1", 20000)
    media = process_answer(offer, parse_sdp(result.answer.to_bytes()))
    assert (media.codec, media.payload_type, media.telephone_event_pt) == ("PCMU", 0, 101)
    assert (media.remote_host, media.remote_port, media.direction) == ("::1", 20000, "sendrecv")


def test_process_answer_baresip_style_several_codecs_takes_first() -> None:
    offer = build_offer(LOCAL_IP, 10000)
    reply = parse_sdp(BARESIP_OFFER.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 8 0 101"))
    media = process_answer(offer, reply)
    assert media.codec == "PCMA"
    assert (media.telephone_event_pt, media.telephone_events) == (101, "0-15")
    assert media.remote_port == 25038


def test_process_answer_direction_and_hold() -> None:
    offer = build_offer(LOCAL_IP, 10000)
    reply = simple_offer("m=audio 5004 RTP/AVP 0\na=recvonly\n")
    media = process_answer(offer, parse_sdp(reply))
    assert media.direction == "sendonly" and not media.on_hold
    held = process_answer(offer, parse_sdp(simple_offer("m=audio 5004 RTP/AVP 0\na=inactive\n")))
    assert held.direction == "inactive" and held.on_hold


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        ("m=audio 5004 RTP/AVP 18\na=rtpmap:18 G729/8000\n", NoCommonCodec, "G729"),
        ("m=audio 0 RTP/AVP 0\n", NoCommonCodec, "declined"),
        ("m=audio 5004 RTP/AVP 0\nm=video 0 RTP/AVP 96\n", SdpError, "m= lines"),
        ("m=video 5004 RTP/AVP 96\n", SdpError, "video"),
    ],
)
def test_process_answer_mismatches(reply: str, error: type[Exception], message: str) -> None:
    offer = build_offer(LOCAL_IP, 10000)
    with pytest.raises(error, match=message):
        process_answer(offer, parse_sdp(simple_offer(reply)))


def test_process_answer_rejects_codec_we_did_not_offer() -> None:
    offer = build_offer(LOCAL_IP, 10000, CodecPrefs(("PCMU",)))
    with pytest.raises(NoCommonCodec, match="PCMA"):
        process_answer(offer, parse_sdp(simple_offer("m=audio 5004 RTP/AVP 8\n")))


# --- fuzzing -----------------------------------------------------------------------------------

_line_kinds = st.sampled_from(list("vosicbtamrzkeupx"))
_values = st.text(
    alphabet=st.sampled_from([*"0123456789 IN IP4 audio RTP/AVP:/-.=\t", "é", "\r"]),
    max_size=30,
)
_lines = st.lists(st.tuples(_line_kinds, _values).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=15)


@settings(max_examples=300, deadline=None)
@given(_lines, st.sampled_from(["\n", "\r\n"]))
def test_sdp_fuzz_structured(lines: list[str], eol: str) -> None:
    text = eol.join(["v=0", "o=- 1 2 IN IP4 127.0.0.1", *lines]) + eol
    _check_parse_is_stable(text)


# Lines that look like what peers send, in random combinations, so answer_offer is exercised
# on many plausible (and some contradictory) offers.
_plausible_lines = st.lists(
    st.sampled_from(
        [
            "c=IN IP4 192.0.2.1",
            "c=IN IP6 ::1",
            "c=IN IP4 0.0.0.0",
            "m=audio 5004 RTP/AVP 0 8 101",
            "m=audio 5006 RTP/AVP 96 97",
            "m=audio 0 RTP/AVP 0",
            "m=audio 5008 RTP/SAVP 0",
            "m=audio 5010 RTP/AVPF 8",
            "m=video 5012 RTP/AVP 96",
            "m=audio 65535 RTP/AVP 0",
            "a=rtpmap:96 PCMA/8000",
            "a=rtpmap:97 telephone-event/8000",
            "a=rtpmap:101 telephone-event/48000",
            "a=rtpmap:0 PCMA/8000",
            "a=rtpmap:8",
            "a=fmtp:97 0-15",
            "a=fmtp:101",
            "a=sendonly",
            "a=inactive",
            "a=recvonly",
            "a=rtcp:9",
            "a=rtcp:abc",
            "a=ptime:x",
            "a=ptime:30",
        ]
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(_plausible_lines)
def test_sdp_fuzz_plausible_offers(lines: list[str]) -> None:
    text = "\r\n".join(["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", *lines]) + "\r\n"
    parsed = parse_sdp(text)
    assert parse_sdp(parsed.to_bytes()) == parsed
    try:
        result = answer_offer(parsed, LOCAL_IP, LOCAL_PORT)
    except NoCommonCodec:
        return
    # Whatever was chosen, the answer is well formed and shaped like the offer (RFC 3264 6).
    assert len(result.answer.media) == len(parsed.media)
    assert sum(1 for m in result.answer.media if m.port) == 1
    assert result.media.codec in ("PCMU", "PCMA")
    assert parse_sdp(result.answer.to_bytes()) == result.answer


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_sdp_fuzz_bytes(data: bytes) -> None:
    _check_parse_is_stable(data)


def _check_parse_is_stable(data: str | bytes) -> None:
    try:
        parsed = parse_sdp(data)
    except SdpError:
        return
    again = parse_sdp(parsed.to_bytes())
    assert again == parsed
    assert again.to_bytes() == parsed.to_bytes()
    try:
        answer_offer(parsed, LOCAL_IP, LOCAL_PORT)
    except SdpError:
        pass


def test_hand_built_description_serialises() -> None:
    description = SessionDescription(
        connection=Connection.for_host("10.1.1.1"),
        media=[
            MediaDescription("audio", 4000, "RTP/AVP", ["0"], attributes=[Attribute("sendrecv")])
        ],
    )
    assert str(description) == (
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"
    )


def test_our_own_hold_direction_is_intersected_with_the_offer() -> None:
    assert answer(SIPP_OFFER, direction="sendonly").media.direction == "sendonly"
    offer = simple_offer("m=audio 5004 RTP/AVP 0\na=sendonly\n")
    assert answer(offer, direction="sendonly").media.direction == "inactive"


def test_bracketed_ipv6_local_address_is_written_bare() -> None:
    offer = build_offer("[::1]", 10000)
    assert offer.connection == Connection("IN", "IP6", "::1")
    assert offer.origin.address == "::1"


def test_unencodable_text_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="encoded"):
        parse_sdp("v=0\no=- 1 2 IN IP4 h\ns=\ud800\n")


# --- interop: baresip's real offer, and baresip accepting our answer ---------------------------

_BARESIP_CONFIG = """poll_method epoll
net_interface 127.0.0.1
sip_listen 127.0.0.1:{sip_port}
sip_trans_def udp
audio_source aufile,{wav}
audio_player alsa,null
audio_alert alsa,null
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
rtp_ports {rtp_min}-{rtp_max}
rtcp_mux no
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module alsa.so
module_tmp account.so
module_app menu.so
"""


def _silence_wav(path: Path, seconds: float) -> Path:
    # aufile wants 16-bit PCM at ausrc_srate; at the end of the file baresip hangs up (BYE),
    # which ends the call without any timer of ours.
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return path


class _AnsweringUas(asyncio.DatagramProtocol):
    """Answers one INVITE with answer_offer's SDP, then records the ACK and BYE."""

    def __init__(self, rtp_port: int) -> None:
        self.rtp_port = rtp_port
        self.offer: bytes | None = None
        self.result = None
        self.methods: list[str] = []
        self.done = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        method = lines[0].split(" ", 1)[0]
        self.methods.append(method)
        if method not in ("INVITE", "BYE"):
            return
        extra: list[str] = []
        payload = b""
        if method == "INVITE":
            if self.result is None:
                self.offer = body
                self.result = answer_offer(parse_sdp(body), LOCAL_IP, self.rtp_port)
            payload = self.result.answer.to_bytes()
            # Contact with our port: the in-dialog BYE goes here (RFC 3261 12.1.1), not to 5060.
            port = self.transport.get_extra_info("sockname")[1] if self.transport else 0
            extra = [f"Contact: <sip:bot@127.0.0.1:{port}>", "Content-Type: application/sdp"]
        else:
            self.done.set()
        copied = [
            line
            for line in lines[1:]
            if line.split(":", 1)[0].strip().lower() in ("via", "from", "call-id", "cseq")
        ]
        to = next(line for line in lines[1:] if line.lower().startswith("to:"))
        response = [
            "SIP/2.0 200 OK",
            *copied,
            f"{to};tag=h2uas" if "tag=" not in to else to,
            *extra,
            f"Content-Length: {len(payload)}",
        ]
        assert self.transport is not None
        self.transport.sendto(("\r\n".join(response) + "\r\n\r\n").encode() + payload, addr)


@pytest.mark.interop
async def test_baresip_offer_and_our_answer(tmp_path: Path, port_block: int) -> None:
    require_peer("baresip")
    uas_port, baresip_port = port_block, port_block + 1
    (tmp_path / "config").write_text(
        _BARESIP_CONFIG.format(
            sip_port=baresip_port,
            rtp_min=port_block + 10,
            rtp_max=port_block + 19,
            wav=_silence_wav(tmp_path / "silence.wav", seconds=1.0),
        )
    )
    (tmp_path / "accounts").write_text(
        f"<sip:caller@127.0.0.1:{baresip_port}>;regint=0;"
        "audio_codecs=PCMU/8000/1,PCMA/8000/1;ptime=20\n"
    )
    loop = asyncio.get_running_loop()
    transport, uas = await loop.create_datagram_endpoint(
        lambda: _AnsweringUas(port_block + 30), local_addr=("127.0.0.1", uas_port)
    )
    proc = await asyncio.create_subprocess_exec(
        "baresip", "-f", str(tmp_path), "-e", f"/dial sip:bot@127.0.0.1:{uas_port}", "-t", "8",
        stdin=asyncio.subprocess.DEVNULL, stdout=(tmp_path / "baresip.log").open("wb"),
        stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        # Everything asserted below is in `uas` by now (baresip's BYE was answered at once).
        await asyncio.wait_for(uas.done.wait(), timeout=20)
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        transport.close()
    assert uas.offer is not None and uas.result is not None
    offer = parse_sdp(uas.offer)
    audio = offer.media[0]
    # What baresip really sends (peers.md): PCMU/PCMA, telephone-event 0-15, extra attributes.
    assert audio.proto == "RTP/AVP"
    assert uas.result.media.codec == "PCMU"
    assert uas.result.media.telephone_events == "0-15"
    assert uas.result.media.remote_host == "127.0.0.1"
    assert port_block + 10 <= uas.result.media.remote_port <= port_block + 19
    assert parse_sdp(offer.to_bytes()) == offer
    assert audio.attribute("rtcp-rsize") == "" and audio.attribute("ssrc") is not None
    # baresip accepted our answer: it ACKed the 200 and later hung up with BYE.
    assert "ACK" in uas.methods and "BYE" in uas.methods


@pytest.mark.parametrize("value", ["inf", "nan", "-20", "x", "", "1e9"])
def test_nonsense_ptime_and_rtcp_are_ignored(value: str) -> None:
    result = answer(simple_offer(f"m=audio 5004 RTP/AVP 0\na=ptime:{value}\na=rtcp:{value}\n"))
    assert result.media.remote_ptime is None
    assert result.media.remote_rtcp_port == 5005
    assert result.media.ptime == 20
