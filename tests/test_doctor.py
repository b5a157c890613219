"""The `check` doctor: configuration, ports, NAT/advertised address, Realtime, registrations."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gateway import doctor
from gateway.config import GatewayConfig, load_config
from gateway.doctor import CheckResult, Status
from gateway.doctor import ports as doctor_ports
from gateway.realtime.simulator import Simulator
from sip.message import Request, parse_message


def make_config(tmp_path: Path, text: str) -> GatewayConfig:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load_config(path, env={})


def local_config(
    tmp_path: Path, port: int, extra: str = "", realtime_url: str = ""
) -> GatewayConfig:
    """A loopback-only setup on the test's port block: SIP on `port`, RTP on the rest."""
    realtime = f'\n[realtime]\nurl = "{realtime_url}"\napi_key_env = ""\n' if realtime_url else ""
    return make_config(
        tmp_path,
        f"""
[sip]
host = "127.0.0.1"
port = {port}
max_calls = 5

[media]
rtp_port_min = {port + 2}
rtp_port_max = {port + 39}
{realtime}
{extra}
""",
    )


def by_name(results: list[CheckResult], prefix: str) -> list[CheckResult]:
    return [r for r in results if r.name.startswith(prefix)]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator("127.0.0.1", 0)
    await sim.start()
    yield sim
    await sim.stop()


class Registrar(asyncio.DatagramProtocol):
    """A minimal UDP registrar: answers REGISTER with `status`, echoing the Contact (10.3)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[Request] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = parse_message(data)
        assert isinstance(request, Request)
        self.requests.append(request)
        headers = []
        if self.status == 200:
            contact = request.headers.get("Contact") or ""
            headers.append(("Contact", contact))
        response = request.make_response(self.status, to_tag="reg1", headers=headers)
        assert self.transport is not None
        self.transport.sendto(response.to_bytes(), addr)


RegistrarFactory = Callable[..., Awaitable[Registrar]]


@pytest.fixture
async def registrar_factory() -> AsyncIterator[RegistrarFactory]:
    started: list[asyncio.DatagramTransport] = []

    async def start(port: int, status: int = 200) -> Registrar:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Registrar(status), local_addr=("127.0.0.1", port)
        )
        started.append(transport)
        return protocol

    yield start
    for transport in started:
        transport.close()


# -- configuration ---------------------------------------------------------------------------


def test_config_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[media]\nrtp_port_mn = 10000\n")
    assert doctor.main(["--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] configuration: media.rtp_port_mn: unknown key" in out
    assert "not checked" in out


def test_bad_cli_flag_value_is_a_config_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert doctor.main(["--rtp-ports", "abc", "--skip-realtime"]) == 1
    assert "--rtp-ports" in capsys.readouterr().out


# -- ports -----------------------------------------------------------------------------------


def test_sip_port_free(tmp_path: Path, port_block: int) -> None:
    results = doctor.check_sip_port(local_config(tmp_path, port_block))
    assert [r.status for r in results] == [Status.OK, Status.OK]


def test_sip_port_in_use_flagged(tmp_path: Path, port_block: int) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind(("127.0.0.1", port_block))
        tcp.bind(("127.0.0.1", port_block))
        tcp.listen(1)
        results = doctor.check_sip_port(local_config(tmp_path, port_block))
    finally:
        udp.close()
        tcp.close()
    assert [r.name for r in results] == ["SIP port udp", "SIP port tcp"]
    for result in results:
        assert result.status is Status.FAIL
        assert f"127.0.0.1:{port_block}" in result.message
        assert "in use" in result.message
        assert "sip.port" in result.fix


def test_sip_host_not_local_flagged(tmp_path: Path, port_block: int) -> None:
    config = make_config(tmp_path, f'[sip]\nhost = "192.0.2.77"\nport = {port_block}\n')
    results = doctor.check_sip_port(config)
    assert all(r.status is Status.FAIL for r in results)
    assert "not one of this host's addresses" in results[0].message


def test_rtp_range_ok_and_sampled(tmp_path: Path, port_block: int) -> None:
    results = doctor.check_rtp_ports(local_config(tmp_path, port_block), ephemeral=(60000, 61000))
    assert [r.status for r in results] == [Status.OK, Status.OK]
    assert "19 RTP/RTCP pairs" in results[0].message


def test_rtp_port_in_use_flagged(tmp_path: Path, port_block: int) -> None:
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("127.0.0.1", port_block + 2))  # the first sampled RTP port
    try:
        results = doctor.check_rtp_ports(
            local_config(tmp_path, port_block), ephemeral=(60000, 61000)
        )
    finally:
        held.close()
    sample = by_name(results, "RTP ports bindable")[0]
    assert sample.status is Status.WARN
    assert f"{port_block + 2} (in use" in sample.message


def test_rtp_range_problems(tmp_path: Path, port_block: int) -> None:
    config = make_config(
        tmp_path,
        f"""
[sip]
host = "127.0.0.1"
port = {port_block + 10}
max_calls = 100
[media]
rtp_port_min = {port_block}
rtp_port_max = {port_block + 39}
""",
    )
    result = doctor.check_rtp_ports(config, ephemeral=(port_block + 30, port_block + 5000))[0]
    assert result.status is Status.FAIL
    assert f"contains the SIP port {port_block + 10}" in result.message
    assert "20 RTP/RTCP pairs for sip.max_calls = 100" in result.message
    assert "ephemeral port range" in result.message


# -- addresses / NAT -------------------------------------------------------------------------


async def test_wrong_advertised_address_flagged(tmp_path: Path, port_block: int) -> None:
    config = make_config(
        tmp_path,
        f'[sip]\nhost = "127.0.0.1"\nport = {port_block}\nadvertised_host = "192.0.2.55"\n',
    )
    results = await doctor.check_addresses(config, timeout=2)
    advertised = by_name(results, "advertised address")[0]
    assert advertised.status is Status.WARN
    assert "advertised address not local" in advertised.message
    assert "192.0.2.55" in advertised.message
    assert "NAT" in advertised.message


async def test_private_advertised_address_to_public_registrar_fails(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        """
[sip]
advertised_host = "10.254.0.9"
[[registrations]]
registrar = "sip:8.8.8.8"
username = "100"
password = "x"
""",
    )
    results = await doctor.check_addresses(config, timeout=2)
    sdp = by_name(results, "SDP address")[0]
    assert sdp.status is Status.FAIL
    assert "private address 10.254.0.9" in sdp.message
    assert "public peer registrar sip:8.8.8.8" in sdp.message
    assert "sip.advertised_host" in sdp.fix


async def test_public_advertised_address_behind_nat_is_a_warning_only(tmp_path: Path) -> None:
    # (203.0.113.0/24 is documentation space, not global: a real public address is needed.)
    config = make_config(
        tmp_path,
        '[sip]\nadvertised_host = "8.8.4.4"\nallow_networks = ["1.1.1.0/24"]\n',
    )
    results = await doctor.check_addresses(config, timeout=2)
    assert [r.status for r in results] == [Status.WARN, Status.OK]
    assert "Contact/SDP carry 8.8.4.4" in results[1].message


async def test_loopback_sdp_to_non_loopback_peer_warns(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        '[sip]\nhost = "0.0.0.0"\nadvertised_host = "127.0.0.1"\nallow_networks = ["192.168.1.0/24"]\n',
    )
    results = await doctor.check_addresses(config, timeout=2)
    advertised = by_name(results, "advertised address")[0]
    assert advertised.status is Status.OK  # 127.0.0.1 is ours...
    sdp = by_name(results, "SDP address")[0]
    assert sdp.status is Status.WARN  # ...but useless to a LAN phone
    assert "SDP would carry 127.0.0.1 to non-loopback peer" in sdp.message
    assert "192.168.1.1" in sdp.message


async def test_allow_everyone_names_no_peer(tmp_path: Path) -> None:
    config = make_config(tmp_path, '[sip]\nallow_networks = ["0.0.0.0/0"]\n')
    results = await doctor.check_addresses(config, timeout=2)
    assert by_name(results, "SDP address")[0].status is Status.SKIP


async def test_loopback_setup_is_clean(tmp_path: Path, port_block: int) -> None:
    config = local_config(
        tmp_path,
        port_block,
        f'[[registrations]]\nregistrar = "sip:127.0.0.1:{port_block + 1}"\nusername = "gw"\n',
    )
    results = await doctor.check_addresses(config, timeout=2)
    assert [r.status for r in results] == [Status.OK, Status.OK]


def test_is_local_address() -> None:
    assert doctor.is_local_address("127.0.0.1")
    assert not doctor.is_local_address("192.0.2.55")
    assert doctor.route_source("127.0.0.1") == "127.0.0.1"


# -- Realtime --------------------------------------------------------------------------------


async def test_unreachable_realtime_endpoint_flagged(tmp_path: Path, port_block: int) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/v1/realtime"
    config = local_config(tmp_path, port_block, realtime_url=url)
    result = await doctor.check_realtime(config, timeout=3)
    assert result.status is Status.FAIL
    assert url in result.message
    assert "cannot open a session" in result.message
    assert "realtime.url" in result.fix


async def test_openai_url_without_key_fails_before_connecting(tmp_path: Path) -> None:
    # simulator = "never": with "auto" (the default) `run` would use the simulator (issue 10).
    config = make_config(
        tmp_path, '[realtime]\napi_key_env = "SRG_TEST_UNSET_KEY"\nsimulator = "never"\n'
    )
    result = await doctor.check_realtime(config, timeout=3)
    assert result.status is Status.FAIL
    assert "SRG_TEST_UNSET_KEY" in result.message


async def test_realtime_confirms_both_g711_formats(
    tmp_path: Path, port_block: int, simulator: Simulator
) -> None:
    config = local_config(tmp_path, port_block, realtime_url=simulator.url)
    result = await doctor.check_realtime(config, timeout=5)
    assert result.status is Status.OK, result
    assert "audio/pcmu and audio/pcma" in result.message
    assert "connected in" in result.message
    session = await simulator.wait_session(1, timeout=5)
    updates = session.client_events_of("session.update")
    formats = [u["session"]["audio"]["input"]["format"]["type"] for u in updates]
    assert formats == ["audio/pcmu", "audio/pcma"]


async def test_realtime_endpoint_without_pcma_flagged(tmp_path: Path, port_block: int) -> None:
    """An endpoint that accepts session.update but keeps audio/pcmu (an old or partial
    implementation) fails the check, naming the format."""
    from websockets.asyncio.server import ServerConnection, serve

    async def pcmu_only(ws: ServerConnection) -> None:
        session = {
            "id": "s1",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}},
                "output": {"format": {"type": "audio/pcmu"}},
            },
        }
        await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": session}))
        async for _ in ws:
            await ws.send(
                json.dumps({"type": "session.updated", "event_id": "e1", "session": session})
            )

    async with serve(pcmu_only, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = local_config(
            tmp_path, port_block, realtime_url=f"ws://127.0.0.1:{port}/v1/realtime"
        )
        result = await doctor.check_realtime(config, timeout=3)
    assert result.status is Status.FAIL
    assert "session.update with audio/pcma failed" in result.message


async def test_realtime_http_rejection_flagged(tmp_path: Path, port_block: int) -> None:
    from websockets.asyncio.server import serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def refuse(connection: object, request: object) -> Response:
        return Response(401, "Unauthorized", Headers(), b"bad key")

    async def never(ws: object) -> None:  # pragma: no cover - refused before the handler
        return None

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        config = local_config(
            tmp_path, port_block, realtime_url=f"ws://127.0.0.1:{port}/v1/realtime"
        )
        result = await doctor.check_realtime(config, timeout=3)
    assert result.status is Status.FAIL
    assert "401" in result.message
    assert "key" in result.fix


def test_realtime_endpoint_url_and_key(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[realtime]\nurl = "wss://example.test/v1/realtime"\nmodel = "m 1"\n')
    config = load_config(path, env={"OPENAI_API_KEY": "sk-abc"})
    url, headers = doctor._realtime_endpoint(config)
    assert url == "wss://example.test/v1/realtime?model=m%201"
    assert headers == {"Authorization": "Bearer sk-abc"}


# -- registrations ---------------------------------------------------------------------------


async def test_registration_ok_then_unregistered(
    tmp_path: Path, port_block: int, registrar_factory: RegistrarFactory
) -> None:
    registrar = await registrar_factory(port_block + 1)
    config = local_config(
        tmp_path,
        port_block,
        f'[[registrations]]\nregistrar = "sip:127.0.0.1:{port_block + 1}"\n'
        'username = "gw"\npassword = "pw"\nexpires = 120\n',
    )
    results = await doctor.check_registrations(config, timeout=3)
    assert [r.status for r in results] == [Status.OK]
    assert "registered sip:gw@127.0.0.1" in results[0].message
    expires = [r.headers.get("Expires") for r in registrar.requests]
    assert expires == ["120", "0"]  # register, then remove the test binding
    contact = registrar.requests[0].headers.get("Contact") or ""
    assert f":{port_block}" not in contact.split(";")[0]  # a temporary port, not the SIP port


async def test_registration_rejected_flagged(
    tmp_path: Path, port_block: int, registrar_factory: RegistrarFactory
) -> None:
    await registrar_factory(port_block + 1, status=403)
    config = local_config(
        tmp_path,
        port_block,
        f'[[registrations]]\nregistrar = "sip:127.0.0.1:{port_block + 1}"\nusername = "gw"\n',
    )
    results = await doctor.check_registrations(config, timeout=3)
    assert results[0].status is Status.FAIL
    assert "403" in results[0].message
    assert "password" in results[0].fix


async def test_registration_no_answer_flagged(tmp_path: Path, port_block: int) -> None:
    config = local_config(
        tmp_path,
        port_block,
        f'[[registrations]]\nregistrar = "sip:127.0.0.1:{port_block + 1}"\nusername = "gw"\n',
    )
    results = await doctor.check_registrations(config, timeout=0.5)
    assert results[0].status is Status.FAIL
    assert results[0].message == "sip:gw@127.0.0.1: no response from registrar (timeout)"
    assert "firewall" in results[0].fix


async def test_registration_skipped_when_gateway_running(tmp_path: Path, port_block: int) -> None:
    config = local_config(
        tmp_path,
        port_block,
        f'[[registrations]]\nregistrar = "sip:127.0.0.1:{port_block + 1}"\nusername = "gw"\n',
    )
    results = await doctor.check_registrations(config, sip_port_busy=True)
    assert results[0].status is Status.SKIP
    assert "not checked" in results[0].message


# -- the whole doctor ------------------------------------------------------------------------


async def test_good_setup_against_simulator_passes(
    tmp_path: Path, port_block: int, simulator: Simulator, registrar_factory: RegistrarFactory
) -> None:
    await registrar_factory(port_block + 1)
    config = local_config(
        tmp_path,
        port_block,
        f'[[registrations]]\nregistrar = "sip:127.0.0.1:{port_block + 1}"\n'
        'username = "gw"\npassword = "pw"\n',
        realtime_url=simulator.url,
    )
    results = await doctor.run_checks(config, timeout=5)
    failed = [r for r in results if r.status in (Status.FAIL, Status.WARN)]
    assert not failed, doctor.format_report(results)
    names = {r.name for r in results}
    assert {"configuration", "SIP port udp", "Realtime API", "SDP address"} <= names
    assert any(r.name.startswith("registration gw@") and r.status is Status.OK for r in results)


def test_main_report_and_exit_codes(
    tmp_path: Path, port_block: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        f'[sip]\nhost = "127.0.0.1"\nport = {port_block}\nmax_calls = 5\n'
        f"[media]\nrtp_port_min = {port_block + 2}\nrtp_port_max = {port_block + 39}\n"
        f'[realtime]\nurl = "ws://127.0.0.1:{closed_port()}/v1/realtime"\napi_key_env = ""\n'
    )
    code = doctor.main(["--config", str(path), "--timeout", "3"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] Realtime API: cannot open a session at ws://127.0.0.1:" in out
    assert "failed" in out.splitlines()[-1]

    code = doctor.main(["--config", str(path), "--skip-realtime", "--json"])
    payload = json.loads(capsys.readouterr().out)
    statuses = {r["name"]: r["status"] for r in payload["results"]}
    assert statuses["Realtime API"] == "skip"
    assert statuses["SIP port udp"] == "ok"
    assert payload["ok"] is (code == 0)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # main() reads os.environ: a developer's real key must not reach a test endpoint.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("SRG_CONFIG", raising=False)
    # Test port blocks come from 20000-60000, inside Linux's default ephemeral range: pin the
    # range the doctor reads so the overlap warning is only tested where it is meant to be.
    ephemeral = tmp_path / "ip_local_port_range"
    ephemeral.write_text("61000\t61999\n")
    monkeypatch.setattr(doctor_ports, "EPHEMERAL_RANGE_FILE", str(ephemeral))
    yield


# -- control API (issue 9) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "status", "needle"),
    [
        ("", Status.OK, "generated at first start"),
        ('[control]\nhost = "0.0.0.0"\n', Status.OK, "generated at first start"),
        ('[control]\nhost = "0.0.0.0"\ntoken_file = "/run/t"\n', Status.OK, "from /run/t"),
        ("[control]\ntoken_required = false\n", Status.WARN, "no token"),
        ('[control]\nhost = "0.0.0.0"\ntoken_required = false\n', Status.FAIL, "non-loopback"),
        ('[control]\nhost = "::"\ntoken_required = false\n', Status.FAIL, "non-loopback"),
        ("[control]\nenabled = false\ntoken_required = false\n", Status.OK, "disabled"),
    ],
)
def test_control_without_token_on_a_non_loopback_bind_fails(
    tmp_path: Path, toml: str, status: Status, needle: str
) -> None:
    (result,) = doctor.check_control(make_config(tmp_path, toml))
    assert result.status is status, result
    assert needle in result.message
    if status is Status.FAIL:
        assert "token_required" in result.fix


# -- admission (issue 9) -----------------------------------------------------------------------
def test_admission_closed_by_default_is_ok_and_says_who_may_call(tmp_path: Path) -> None:
    result = doctor.check_admission(make_config(tmp_path, ""))
    assert result.status is Status.OK
    assert "the host itself" in result.message and "403" in result.message
    assert "sip.allow_networks" in result.message


def test_admission_open_without_digest_warns(tmp_path: Path) -> None:
    result = doctor.check_admission(make_config(tmp_path, '[sip]\nallow_networks = ["::/0"]\n'))
    assert result.status is Status.WARN
    assert "open" in result.message and "::/0" in result.message
    assert "sip.inbound_auth" in result.fix


def test_admission_open_with_digest_is_ok(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        '[sip]\nallow_networks = ["0.0.0.0/0"]\n'
        'inbound_auth = { username = "pbx", password = "pw" }\n',
    )
    result = doctor.check_admission(config)
    assert result.status is Status.OK and "digest" in result.message


def test_run_checks_reports_admission(tmp_path: Path, port_block: int) -> None:
    config = local_config(tmp_path, port_block)
    results = asyncio.run(doctor.run_checks(config, realtime=False, registrations=False))
    assert [r.name for r in results].count("admission") == 1


def test_api_key_over_plain_ws_to_a_remote_host_fails(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[realtime]\nurl = "ws://realtime.example.com/v1/realtime"\n')
    with_key = load_config(path, env={"OPENAI_API_KEY": "sk-test-abcdefghijkl"})
    result = doctor.check_realtime_transport(with_key)
    assert result.status is Status.FAIL and "unencrypted" in result.message
    assert doctor.check_realtime_transport(load_config(path, env={})).status is Status.WARN
    path.write_text('[realtime]\nurl = "ws://127.0.0.1:8765/v1/realtime"\n')
    local = load_config(path, env={"OPENAI_API_KEY": "sk-test-abcdefghijkl"})
    assert doctor.check_realtime_transport(local).status is Status.OK
    assert doctor.check_realtime_transport(GatewayConfig()).status is Status.OK  # wss://


def test_record_directories_readable_by_others_are_reported(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir(mode=0o755)
    records.chmod(0o755)
    (records / "a.json").write_text("{}")
    (records / "a.json").chmod(0o644)
    config = make_config(tmp_path, f'[records]\ndir = "{records}"\n')
    [result] = doctor.check_record_permissions(config)
    assert result.status is Status.WARN
    assert "0755" in result.message and "a.json" in result.message and "chmod" in result.fix
    records.chmod(0o700)
    (records / "a.json").chmod(0o600)
    [result] = doctor.check_record_permissions(config)
    assert result.status is Status.OK


def test_allowed_plain_http_urls_are_reported(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        """
[webhooks]
call_ended_url = "http://hooks.example.com/end"
allow_plain_http = true

[[tools]]
name = "local"
description = "d"
url = "http://127.0.0.1:8081/t"
""",
    )
    results = doctor.check_plain_http_urls(config)
    assert [r.name for r in results] == ["plain HTTP webhooks.call_ended_url"]
    assert results[0].status is Status.WARN and "allow_plain_http" in results[0].message


def test_media_safety_warns_when_latching_learns_from_any_host(tmp_path: Path) -> None:
    strict = doctor.check_media_safety(GatewayConfig())
    assert [r.status for r in strict] == [Status.OK]
    loose = make_config(tmp_path, "[media]\nrtp_latch_any_host = true\n")
    (result,) = doctor.check_media_safety(loose)
    assert result.status is Status.WARN and "rtp_latch_any_host" in result.message


def test_run_checks_reports_loose_latching(tmp_path: Path, port_block: int) -> None:
    config = local_config(tmp_path, port_block)
    loose = dataclasses.replace(
        config, media=dataclasses.replace(config.media, rtp_latch_any_host=True)
    )
    results = asyncio.run(doctor.run_checks(loose, realtime=False, registrations=False))
    assert any("rtp_latch_any_host" in r.message + r.fix for r in results)


def test_descriptor_check_warns_when_the_tcp_cap_is_lowered() -> None:
    from gateway.config import GatewayConfig
    from gateway.doctor import Status, check_descriptors

    config = GatewayConfig()
    assert check_descriptors(config, fd_limit=65536).status is Status.OK
    low = check_descriptors(config, fd_limit=1024)
    assert low.status is Status.WARN and "lowered" in low.message and "ulimit" in low.fix
    assert check_descriptors(config, fd_limit=200).status is Status.FAIL


# -- issue 10: check agrees with run; model shutdown dates -----------------------------------


def test_check_without_a_key_uses_the_simulator_and_passes(
    tmp_path: Path, port_block: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `run` does: no OPENAI_API_KEY and realtime.simulator = auto -> the built-in simulator."""
    path = tmp_path / "g.toml"
    path.write_text(
        f'[sip]\nhost = "127.0.0.1"\nport = {port_block}\nmax_calls = 5\n'
        f"[media]\nrtp_port_min = {port_block + 2}\nrtp_port_max = {port_block + 39}\n"
    )
    code = doctor.main(["--config", str(path), "--skip-registrations", "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(ln for ln in out.splitlines() if "Realtime API" in ln)
    assert line.startswith("[ ok ]"), out
    assert "simulator" in line and "OPENAI_API_KEY" in line
    assert "audio/pcmu and audio/pcma" in line


async def test_check_with_simulator_always_says_so(tmp_path: Path) -> None:
    config = make_config(tmp_path, '[realtime]\nsimulator = "always"\n')
    result = await doctor.check_realtime(config, timeout=5)
    assert result.status is Status.OK, result
    assert "built-in simulator (realtime.simulator = always)" in result.message


def test_azure_is_checked_with_the_api_key_header_as_run_does(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        '[realtime]\nprovider = "azure"\nurl = "wss://myres.openai.azure.com/openai/v1/realtime"\n'
        'model = "my-deployment"\n'
    )
    config = load_config(path, env={"OPENAI_API_KEY": "az-key"})
    url, headers = doctor._realtime_endpoint(config)
    assert url == "wss://myres.openai.azure.com/openai/v1/realtime?model=my-deployment"
    assert headers == {"api-key": "az-key"}  # not Authorization: Bearer
    from gateway.call_settings import endpoint_for

    assert (url, headers) == (endpoint_for(config).url, endpoint_for(config).headers)


async def test_azure_without_a_key_fails_like_run(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        '[realtime]\nprovider = "azure"\nurl = "wss://myres.openai.azure.com/openai/v1/realtime"\n'
        'api_key_env = "SRG_TEST_AZURE_KEY"\n',
    )
    result = await doctor.check_realtime(config, timeout=3)
    assert result.status is Status.FAIL
    assert "SRG_TEST_AZURE_KEY" in result.message and "Azure" in result.message


def test_model_shutdown_within_60_days_warns(tmp_path: Path) -> None:
    from datetime import date

    old = make_config(tmp_path, '[realtime]\nmodel = "gpt-realtime"\n')
    (result,) = doctor.check_model(old, today=date(2026, 12, 6))
    assert result.status is Status.WARN
    assert "2027-01-20" in result.message and "45 days" in result.message
    assert "gpt-realtime-2.1" in result.fix
    # Further out than 60 days: nothing to say yet.
    (early,) = doctor.check_model(old, today=date(2026, 11, 1))
    assert early.status is Status.OK
    (gone,) = doctor.check_model(old, today=date(2027, 2, 1))
    assert gone.status is Status.WARN and "was shut down" in gone.message
    # The default model has no announced date; a route's override is checked too.
    routed = make_config(
        tmp_path, '[[routes]]\nname = "r"\nrealtime = { model = "gpt-realtime-mini" }\n'
    )
    results = doctor.check_model(routed, today=date(2026, 12, 6))
    assert [r.status for r in results] == [Status.WARN]
    assert "routes[0].realtime.model 'gpt-realtime-mini'" in results[0].message
    assert doctor.check_model(GatewayConfig(), today=date(2026, 12, 6))[0].status is Status.OK


# -- issue 14: the RTP range against max_calls and the port quarantine -----------------------


def test_port_quarantine_check_warns_when_the_range_is_too_small(tmp_path: Path) -> None:
    ok = doctor.check_port_quarantine(GatewayConfig())
    assert ok.status is Status.OK and "5000 pairs >= 150" in ok.message
    # 120 pairs for 100 calls: enough for the live calls, not for the pairs in quarantine.
    small = make_config(
        tmp_path, "[sip]\nmax_calls = 100\n[media]\nrtp_port_min = 20000\nrtp_port_max = 20239\n"
    )
    warn = doctor.check_port_quarantine(small)
    assert warn.status is Status.WARN
    assert "holds 120 port pairs" in warn.message and "need 150" in warn.message
    assert "media.rtp_port_quarantine_s" in warn.fix
    # The same range with the quarantine off holds the calls.
    off = dataclasses.replace(
        small, media=dataclasses.replace(small.media, rtp_port_quarantine_s=0)
    )
    assert doctor.check_port_quarantine(off).status is Status.OK
    results = asyncio.run(doctor.run_checks(small, realtime=False, registrations=False))
    assert any(r.name == "RTP range vs quarantine" and r.status is Status.WARN for r in results)
