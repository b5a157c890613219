"""Fixtures of the real-peer interop suite. The shared ones (ports, interop_processes, gateway,
sipp, baresip, tshark, media_dir) are in tests/conftest.py; the harnesses in tests/tools/.

Ports come from the test's `port_block` (40 consecutive free loopback ports), laid out by
`tests.tools.ports.InteropPorts`; nothing here uses 5060 or any fixed port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.kamailio import Kamailio
from tests.tools.peers import require_peer
from tests.tools.ports import InteropPorts
from tests.tools.process import ManagedProcess


@pytest.fixture
def kamailio(
    tmp_path: Path,
    ports: InteropPorts,
    interop_processes: list[ManagedProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Kamailio]:
    """The digest registrar and record-routing proxy (tests/interop/kamailio/kamailio.cfg)."""
    require_peer("kamailio")
    proxy = Kamailio.registrar(
        tmp_path / "kamailio", ports.kamailio_sip, interop_processes, request
    )
    proxy.start()
    yield proxy
    proxy.stop()
