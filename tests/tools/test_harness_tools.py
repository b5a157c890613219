"""The harness helpers that decide when a test goes on (waits) or what a peer is given (config,
scenarios, fixture files) are tested here, without starting any peer."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import pytest

from tests.tools.captured import dump_captured, load_captured
from tests.tools.gateway_process import merge_config, to_toml
from tests.tools.ports import InteropPorts, udp_port_bound
from tests.tools.sipp import E2E_SIPP_DIR, INTEROP_SIPP_DIR, Sipp
from tests.tools.wait import async_wait_until, wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(answers), 5) == "ready"


def test_wait_until_fails_with_what_did_not_happen() -> None:
    with pytest.raises(AssertionError, match=r"the peer answering: did not happen within 0.05 s"):
        wait_until(lambda: False, 0.05, "the peer answering")


def test_wait_until_asks_a_callable_message_at_the_deadline() -> None:
    log = ["started"]

    def message() -> str:
        return "log: " + ",".join(log)

    with pytest.raises(AssertionError, match="log: started,late line"):
        wait_until(lambda: log.append("late line") and False, 0.02, message)


async def test_async_wait_until_awaits_a_coroutine_predicate() -> None:
    calls = []

    async def third_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    assert await async_wait_until(third_time, 5) is True
    assert len(calls) == 3
    with pytest.raises(AssertionError, match="never: did not happen"):
        await async_wait_until(lambda: None, 0.02, "never")


def test_udp_port_bound_sees_a_bound_socket_and_its_release() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert udp_port_bound(port)
    assert not udp_port_bound(port)


def test_to_toml_writes_what_tomllib_reads_back() -> None:
    config = merge_config(
        {"sip": {"host": "127.0.0.1", "port": 5070}, "media": {"echo": True}},
        {
            "sip": {"port": 5080, "transports": ["udp", "tcp"]},
            "calls": {"max_duration_s": 2.5, "routes": {"sales": 'say "hi"'}},
            "registrations": [{"registrar": "sip:pbx", "expires": 60}, {"registrar": "sip:b"}],
        },
    )
    assert tomllib.loads(to_toml(config)) == {
        "sip": {"host": "127.0.0.1", "port": 5080, "transports": ["udp", "tcp"]},
        "media": {"echo": True},
        "calls": {"max_duration_s": 2.5, "routes": {"sales": 'say "hi"'}},
        "registrations": [{"registrar": "sip:pbx", "expires": 60}, {"registrar": "sip:b"}],
    }


def test_sipp_finds_scenarios_in_order_and_fills_placeholders(tmp_path: Path) -> None:
    derived = tmp_path / "derived"
    derived.mkdir()
    (derived / "uac_call.xml").write_text("<scenario>@WHO@</scenario>")
    work = tmp_path / "work"
    work.mkdir()
    sipp = Sipp(work, InteropPorts(20000), [])
    assert sipp.scenario_dirs == (E2E_SIPP_DIR, INTEROP_SIPP_DIR)
    assert sipp.scenario_path("uac_call.xml") == INTEROP_SIPP_DIR / "uac_call.xml"
    assert sipp.scenario_path("uac_info_dtmf.xml") == E2E_SIPP_DIR / "uac_info_dtmf.xml"
    sipp.scenario_dirs = (derived, *sipp.scenario_dirs)
    assert sipp.scenario_path("uac_call.xml") == derived / "uac_call.xml"
    assert (
        sipp._prepare("uac_call.xml", {"WHO": "alice"}).read_text() == "<scenario>alice</scenario>"
    )
    with pytest.raises(ValueError, match="@WHO@"):
        sipp._prepare("uac_call.xml", {})
    with pytest.raises(FileNotFoundError):
        sipp.scenario_path("nope.xml")


def test_captured_files_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.tools.captured as captured

    monkeypatch.setattr(captured, "FIXTURE_DIR", tmp_path)
    rows = [(100.0, 4000, 5000, b"\x80\x00\x00\x01"), (100.0205, 4001, 5001, b"\x81\xc8")]
    assert dump_captured(tmp_path / "x.rtp", ["peer X", ""], rows) == 2
    assert (tmp_path / "x.rtp").read_text().startswith("# peer X\n#\n0.0 4000>5000 80000001\n")
    packets = load_captured("x.rtp")
    assert [(p.src_port, p.dst_port, p.data) for p in packets] == [r[1:] for r in rows]
    assert [p.t_ms for p in packets] == [0.0, 20.5]


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_peer_fails_under_ci_and_skips_locally(
    ci: str, outcome: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.tools.peers as peers

    monkeypatch.setattr(peers, "PEER_PATH", str(tmp_path))  # an empty directory
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="real peer"):
        peers.require_peer("sipp")
