"""Self-checks of the interop harness with the peers alone (no gateway).

When a gateway interop test fails, these tell whether the harness (Kamailio config and
db_text tables, SIPp, the test media) is sound, so the failure can be pinned on the gateway.
"""

from __future__ import annotations

import wave

import pytest

from tests.tools.gateway_process import LOOPBACK
from tests.tools.kamailio import KAMAILIO_PASSWORD, KAMAILIO_USER, Kamailio
from tests.tools.media import MediaFiles
from tests.tools.pcap import read_udp
from tests.tools.ports import InteropPorts
from tests.tools.rtp import analyse_streams
from tests.tools.sipp import Sipp

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(("password", "expected_rc"), [(KAMAILIO_PASSWORD, 0), ("wrong", 1)])
def test_kamailio_digest_registrar(
    sipp: Sipp, kamailio: Kamailio, password: str, expected_rc: int
) -> None:
    result = sipp.run(
        "register_auth.xml",
        f"{LOOPBACK}:{kamailio.port}",
        service=KAMAILIO_USER,
        timeout_s=10,
        extra_args=("-au", KAMAILIO_USER, "-ap", password),
    )
    assert result.rc == expected_rc, result.describe()


def test_media_files_are_what_the_tests_expect(media_dir: MediaFiles) -> None:
    (stream,) = analyse_streams(read_udp(media_dir.rtp_pcap))
    assert stream.digits == "123#"
    assert stream.seq_errors == 0
    assert stream.payload_types[0] > 200  # several seconds of speech
    assert set(stream.audio_payload_sizes) == {160}
    # One u-law byte per 8 kHz sample of the WAV: the raw file has no header on the wire.
    with wave.open(str(media_dir.speech_wav)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
        assert media_dir.speech_ulaw.stat().st_size == wav.getnframes()
    with wave.open(str(media_dir.padded_wav)) as padded:
        assert padded.getnframes() == wav.getnframes() + 8 * 8000


def test_cancel_scenario_handles_a_lost_race(sipp: Sipp, ports: InteropPorts) -> None:
    """uac_cancel.xml must end cleanly when the 200 beats the CANCEL (its fallback branch)."""
    stand_in = sipp.start(
        "uas_answer_at_once.xml",
        local_port=ports.gateway_sip,
        media_port=ports.base + 36,
        timeout_s=15,
    )
    caller = sipp.run("uac_cancel.xml", timeout_s=10)
    callee = stand_in.wait()
    assert caller.rc == 0, caller.describe()
    assert callee.rc == 0, callee.describe()
    assert "path=answered" in caller.logs, caller.describe()
