"""`check` with realtime.api = "live": a session per G.711 law must start (issue 12)."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.doctor.live import check_live
from gateway.doctor.results import Status
from tests.tools.fake_live import fake_live


def _config(tmp_path: Path, text: str):
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return load_config(path, env={})


async def test_nothing_to_check_without_live_calls(tmp_path: Path) -> None:
    assert await check_live(_config(tmp_path, "")) == []


async def test_both_laws_start(tmp_path: Path) -> None:
    async with fake_live() as server:
        config = _config(
            tmp_path, f'[realtime]\napi = "live"\nurl = "{server.url}"\nsimulator = "never"\n'
        )
        [result] = await check_live(config, timeout=5)
        assert result.status is Status.OK, result
        assert "audio/pcmu" in result.message and "audio/pcma" in result.message
        formats = [e["session"]["audio"]["format"]["type"] for e in server.of_type("session.start")]
        assert formats == ["audio/pcmu", "audio/pcma"]
        assert len(server.of_type("session.close")) == 2


async def test_a_server_that_echoes_another_format_fails(tmp_path: Path) -> None:
    async with fake_live(echo_format={"type": "audio/pcm", "rate": 24000}) as server:
        config = _config(
            tmp_path, f'[realtime]\napi = "live"\nurl = "{server.url}"\nsimulator = "never"\n'
        )
        [result] = await check_live(config, timeout=5)
        assert result.status is Status.FAIL
        assert "audio/pcmu" in result.message


async def test_no_key_and_no_simulator_fails_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, '[realtime]\napi = "live"\nsimulator = "never"\n')
    [result] = await check_live(config, timeout=1)
    assert result.status is Status.FAIL and "api_key_env" in result.message
