"""The user agent's core is sans-I/O (issue 11): sip/ua_core.py and the modules it is made of
import nothing that does I/O (asyncio, socket, selectors, websockets), not even through another
sip module, and none of them reaches the asyncio shell (sip/useragent.py), DNS (sip/resolve.py)
or the sockets (sip/transport.py). Also: no import cycle inside sip/, and sip never imports
gateway."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIP = Path(__file__).resolve().parents[2] / "sip"
CORE = [
    "sip.ua_core",
    "sip.invite_server",
    "sip.invite_client",
    "sip.dialog_server",
    "sip.uas_guard",
    "sip.calls",
    "sip.session_timer",
    "sip.refer",
    "sip.info",
    "sip.glare",
    "sip.address",
    "sip.transaction",
    "sip.dialog",
    "sip.sdp",
    "sip.sips",
    "sip.keepalive",
]
IO_MODULES = {"asyncio", "socket", "selectors", "websockets"}
SHELL = {"sip.useragent", "sip.resolve", "sip.transport", "sip.stream", "sip.registration"}


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """sip module -> the project modules it imports, and -> the top-level others."""
    project: dict[str, set[str]] = {}
    other: dict[str, set[str]] = {}
    for path in SIP.glob("*.py"):
        name = f"sip.{path.stem}"
        project[name], other[name] = set(), set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for imported in names:
                if imported.split(".")[0] in ("sip", "gateway"):
                    project[name].add(imported)
                else:
                    other[name].add(imported.split(".")[0])
    return project, other


def _reachable(project: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in project.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


@pytest.mark.parametrize("module", CORE)
def test_core_module_reaches_no_io(module: str) -> None:
    project, other = _imports()
    assert module in project
    reached = _reachable(project, module) | {module}
    io = {f"{m} imports {lib}" for m in reached for lib in other.get(m, set()) & IO_MODULES}
    assert not io
    assert not reached & SHELL


def test_no_cycles_and_no_upward_imports_in_sip() -> None:
    project, _ = _imports()
    assert not {(m, d) for m, deps in project.items() for d in deps if d.startswith("gateway")}
    for module in project:
        assert module not in _reachable(project, module), f"import cycle through {module}"
