"""The direction of imports in `sip/` and `gateway/` (docs/architecture.md "Import direction";
issue 11), and the size of source files.

The test parses every module with `ast` (nothing is imported or executed) and collects every
`import` and `from ... import`, at module level and inside functions alike: a lazy import is
still a dependency, it only hides it from a reader. Relative imports are resolved. `from pkg
import name` points at `pkg.name` when that is a module of ours, else at `pkg`. An import names
its deepest module only: the parent packages' `__init__` that Python runs on the way are not
counted (they would put every package in a cycle with its own modules).

Imports guarded by `if TYPE_CHECKING:` count for the direction rules (a type named from above
is still knowledge of what lives above) but not for cycles (they never execute, so they cannot
make an import loop).

The rules are the table `RULES` below: (importer pattern, imported pattern, exceptions, why). A
pattern `a.b` matches the module `a.b` and everything under it; `a.b*` matches every module whose
name starts with `a.b` (`gateway.config_env`, `gateway.config.load`). On top of the table:
no import cycle, and the machine (`gateway.call.machine` and every module of ours it reaches)
imports nothing that does I/O (`MACHINE_IO`).

`KNOWN_VIOLATIONS` lists what another engineer is removing in parallel, each with its owner;
the lead empties it at merge. Every violation not listed fails the test, and so does a listed
one that no longer occurs (so the list cannot go stale).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sip", "gateway")

MAX_LINES = 800
MAX_LINES_FOR = {"gateway.app": 599}  # app.py under 600: the process only, nothing per call

# The top of the house: the process and the command-line entry points. They may import
# configuration, the control API and the app; nothing below them may.
TOP = (
    "gateway.app",
    "gateway.cli",
    "gateway.cli_args",
    "gateway.__main__",
    "gateway.doctor*",
    "gateway.softphone",
    "gateway.realtime.simulator.cli",
    "gateway.serve",
    # The translation of the configuration into the values the calls are given (per route):
    # read at the top, handed down; nothing below imports them.
    "gateway.call_settings",
    "gateway.routes",
)

# Whatever the machine imports must be pure: no sockets, tasks, files, clocks or logs (time is an
# input of `step`, so a fake clock drives every test).
MACHINE = "gateway.call.machine"
MACHINE_IO = (
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent",
    "signal",
    "os",
    "pathlib",
    "time",
    "websockets",
    "aiohttp",
    "httpx",
    "http",
    "urllib",
    "logging",
    "gateway.observe",
    "gateway.media.stream",
    "gateway.realtime.client",
    "gateway.live.client",
    "gateway.wsock",
    "sip.transport",
    "sip.useragent",
)


@dataclass(frozen=True)
class Rule:
    importer: str  # pattern
    imported: str  # pattern
    why: str
    allowed: tuple[tuple[str, str], ...] = ()  # (importer pattern, imported pattern) exceptions


RULES: tuple[Rule, ...] = (
    Rule("sip", "gateway", "sip is a library; it knows nothing of the product"),
    Rule(
        "gateway.media",
        "gateway.realtime",
        "media and the voice backends do not know each other; the call object connects them",
    ),
    Rule(
        "gateway.realtime",
        "gateway.media",
        "media and the voice backends do not know each other; the call object connects them",
        allowed=(("gateway.realtime.simulator*", "gateway.media.g711"),),
    ),
    Rule("gateway.media", "gateway.call", "media is below the call object"),
    Rule("gateway.realtime", "gateway.call", "the voice backends are below the call object"),
    # GPT-Live (issue 12), the second voice backend: the same place in the house as Realtime.
    Rule(
        "gateway.media",
        "gateway.live",
        "media and the voice backends do not know each other; the call object connects them",
    ),
    Rule(
        "gateway.live",
        "gateway.media",
        "media and the voice backends do not know each other; the call object connects them",
        allowed=(("gateway.live.simulator*", "gateway.media.g711"),),
    ),
    Rule("gateway.live", "gateway.call", "the voice backends are below the call object"),
    # Issue 12: the call runs whichever backend its settings carry (gateway/voice.py
    # VoiceBackend, chosen in gateway/call_settings.py); no module of the call names one.
    *(
        Rule(
            "gateway.call",
            backend,
            "the call session gets its voice backend in its settings; it imports none",
        )
        for backend in ("gateway.realtime", "gateway.live")
    ),
    # The one simulator process serves both APIs (issue 12): the simulators may share code.
    Rule(
        "gateway.live",
        "gateway.realtime",
        "the voice backends do not know each other",
        allowed=(("gateway.live.simulator*", "gateway.realtime*"),),
    ),
    Rule(
        "gateway.realtime",
        "gateway.live",
        "the voice backends do not know each other",
        allowed=(("gateway.realtime.simulator*", "gateway.live*"),),
    ),
    # The WebSocket machinery both backends share (gateway/wsock.py) sits below both.
    *(
        Rule("gateway.wsock", above, "the shared WebSocket link is below both voice backends")
        for above in (
            "gateway.call",
            "gateway.realtime",
            "gateway.live",
            "gateway.media",
            "gateway.observe",
            "gateway.voice",
        )
    ),
    # The voice link's vocabulary (gateway/voice.py) sits below the call and every backend.
    *(
        Rule(
            "gateway.voice",
            above,
            "the voice vocabulary is below the call and the backends; it imports neither",
        )
        for above in (
            "gateway.call",
            "gateway.realtime",
            "gateway.live",
            "gateway.media",
            "gateway.observe",
            "sip",
        )
    ),
    # The machine and what feeds it speak in call terms; only a backend's link knows its wire.
    *(
        Rule(
            decider,
            backend,
            "the machine decides on the voice link's reports (gateway/voice.py), not on one "
            "backend's wire events",
        )
        for decider in (
            "gateway.call.machine",
            "gateway.call.events",
            "gateway.call.handlers",
            "gateway.call.context",
            "gateway.call.policy",
            "gateway.call.causes",
            "gateway.call.voice_events",
            "gateway.call.conversation",
        )
        for backend in ("gateway.realtime", "gateway.live")
    ),
    Rule(
        "gateway",
        "gateway.app",
        "nothing below the process imports it; pass values down",
        allowed=tuple((top, "gateway.app") for top in TOP),
    ),
    Rule(
        "gateway",
        "gateway.config*",
        "configuration is read at the top and passed down as values",
        allowed=(
            *((top, "gateway.config*") for top in TOP),
            ("gateway.config*", "gateway.config*"),
        ),
    ),
    Rule(
        "gateway",
        "gateway.control",
        "the control API calls into the process, not the other way round; the process returns "
        "error values that the API turns into HTTP",
        allowed=tuple((top, "gateway.control") for top in TOP if top != "gateway.app"),
    ),
    *(
        Rule(
            "gateway",
            translator,
            "the configuration's translation into call values is read at the top only",
            allowed=tuple((top, translator) for top in TOP),
        )
        for translator in ("gateway.call_settings", "gateway.routes")
    ),
)

# (importer, imported) pairs being removed on other branches; empty on main. Sizes: ("size", module).
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


# --------------------------------------------------------------------------------------------
# Collecting the graph


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`


@dataclass
class Graph:
    modules: set[str] = field(default_factory=set)
    edges: list[Edge] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(
    source: str, module: str, is_package: bool, known: set[str]
) -> list[tuple[str, int, bool]]:
    """(imported module, line, type_only) for every import statement anywhere in `source`."""
    tree = ast.parse(source)
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, node.lineno, type_only))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else base, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


def collect(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    files = {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }
    graph = Graph(modules=set(files))
    for name, path in files.items():
        text = path.read_text(encoding="utf-8")
        graph.lines[name] = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        graph.paths[name] = str(path.relative_to(root))
        for imported, line, type_only in imports_of(
            text, name, path.name == "__init__.py", graph.modules
        ):
            graph.edges.append(Edge(name, imported, line, type_only))
    return graph


# --------------------------------------------------------------------------------------------
# Checking it


def matches(name: str, pattern: str) -> bool:
    """`a.b` matches `a.b` and `a.b.*`; a pattern ending in `*` matches by prefix."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern or name.startswith(pattern + ".")


def _ours(graph: Graph, name: str) -> bool:
    return name in graph.modules


def find_cycles(modules: Iterable[str], edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle path (first module repeated at the end) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(start: str) -> None:
        nonlocal counter
        # iterative Tarjan: (node, iterator over its successors)
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    components.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            strongconnect(module)

    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        # shortest way back to `start` inside the component (breadth first)
        previous: dict[str, str] = {}
        frontier = [start]
        path: list[str] = [start, start]
        while frontier:
            nxt = []
            for node in frontier:
                for succ in sorted(edges.get(node, ())):
                    if succ == start:
                        path = [start]
                        back = node
                        while back != start:
                            path.insert(1, back)
                            back = previous[back]
                        path.append(start)
                        frontier = nxt = []
                        break
                    if succ in members and succ not in previous:
                        previous[succ] = node
                        nxt.append(succ)
                else:
                    continue
                break
            frontier = nxt
        cycles.append(path)
    return cycles


def machine_closure(graph: Graph, machine: str = MACHINE) -> dict[str, list[str]]:
    """Every module of ours the machine reaches, with the import chain that reaches it."""
    chains = {machine: [machine]} if machine in graph.modules else {}
    frontier = list(chains)
    while frontier:
        node = frontier.pop()
        for edge in graph.edges:
            if edge.importer == node and _ours(graph, edge.imported):
                if edge.imported not in chains:
                    chains[edge.imported] = [*chains[node], edge.imported]
                    frontier.append(edge.imported)
    return chains


def violations(graph: Graph) -> dict[tuple[str, str], str]:
    """(importer, imported) or ("size"/"cycle", what) -> a message naming the offence."""
    found: dict[tuple[str, str], str] = {}

    for edge in graph.edges:
        if not _ours(graph, edge.importer):
            continue
        for rule in RULES:
            if not (
                matches(edge.importer, rule.importer) and matches(edge.imported, rule.imported)
            ):
                continue
            if matches(edge.importer, rule.imported):
                continue  # a package importing its own parts
            if any(
                matches(edge.importer, a) and matches(edge.imported, b) for a, b in rule.allowed
            ):
                continue
            key = (edge.importer, edge.imported)
            found.setdefault(
                key,
                f"{graph.paths.get(edge.importer, edge.importer)}:{edge.line}: "
                f"{edge.importer} imports {edge.imported} ({rule.why})",
            )

    for module, chain in machine_closure(graph).items():
        for edge in graph.edges:
            if edge.importer != module:
                continue
            if any(matches(edge.imported, io) for io in MACHINE_IO):
                via = " -> ".join(chain)
                found.setdefault(
                    (module, edge.imported),
                    f"{graph.paths.get(module, module)}:{edge.line}: {module} imports "
                    f"{edge.imported}, which does I/O, and the machine reaches it ({via})",
                )

    runtime: dict[str, set[str]] = {}
    for edge in graph.edges:
        if not edge.type_only and _ours(graph, edge.imported) and edge.imported != edge.importer:
            runtime.setdefault(edge.importer, set()).add(edge.imported)
    for cycle in find_cycles(graph.modules, runtime):
        found[("cycle", " -> ".join(cycle))] = "import cycle: " + " -> ".join(cycle)

    for module, count in graph.lines.items():
        limit = MAX_LINES_FOR.get(module, MAX_LINES)
        if count > limit:
            found[("size", module)] = (
                f"{graph.paths[module]} has {count} lines (at most {limit}); split it by job"
            )
    return found


# --------------------------------------------------------------------------------------------
# The real tree


def test_imports_point_down_and_files_stay_small() -> None:
    found = violations(collect())
    unexpected = sorted(message for key, message in found.items() if key not in KNOWN_VIOLATIONS)
    assert not unexpected, "\n".join(unexpected)


def test_known_violations_still_occur() -> None:
    """A listed violation that was fixed must leave the list, so the list cannot hide a new one."""
    found = violations(collect())
    stale = sorted(f"{a} -> {b}" for a, b in KNOWN_VIOLATIONS if (a, b) not in found)
    assert not stale, "fixed, remove from KNOWN_VIOLATIONS: " + ", ".join(stale)


def test_every_module_is_parsed() -> None:
    graph = collect()
    assert "sip.message" in graph.modules
    assert "gateway.call.machine" in graph.modules
    assert any(e.importer == "gateway.cli" for e in graph.edges)


def test_top_patterns_name_the_entry_points() -> None:
    graph = collect()
    for pattern in ("gateway.app", "gateway.cli", "gateway.doctor*", "gateway.softphone"):
        assert any(matches(m, pattern) for m in graph.modules), pattern


# --------------------------------------------------------------------------------------------
# The checker itself, on small fake trees


def _fake_tree(tmp_path: Path, files: Mapping[str, str]) -> Graph:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in PACKAGES:
        init = tmp_path / package / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text("", encoding="utf-8")
    return collect(tmp_path)


def test_checker_reports_a_cycle_with_its_path(tmp_path: Path) -> None:
    graph = _fake_tree(
        tmp_path,
        {
            "gateway/cli.py": "def main():\n    from gateway import doctor\n",
            "gateway/doctor.py": "from gateway.cli import add_config_arguments\n",
        },
    )
    found = violations(graph)
    assert ("cycle", "gateway.cli -> gateway.doctor -> gateway.cli") in found


def test_checker_ignores_type_checking_imports_for_cycles_only(tmp_path: Path) -> None:
    graph = _fake_tree(
        tmp_path,
        {
            "gateway/media/leg.py": "from gateway.media import pacer\n",
            "gateway/media/pacer.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from gateway.media.leg import Leg\n"
                "    from gateway.config import MediaConfig\n"
            ),
            "gateway/config.py": "",
        },
    )
    found = violations(graph)
    assert not any(kind == "cycle" for kind, _ in found)
    assert ("gateway.media.pacer", "gateway.config") in found


def test_checker_reports_upward_imports(tmp_path: Path) -> None:
    graph = _fake_tree(
        tmp_path,
        {
            "sip/message.py": "def f():\n    import gateway.app\n",
            "gateway/app.py": "from gateway.config import GatewayConfig\n",
            "gateway/config.py": "",
            "gateway/control.py": "from gateway.config import GatewayConfig\n",
            "gateway/observe/logs.py": "from ..config import Secret\n",
            "gateway/media/stream.py": "from gateway.realtime import client\n",
            "gateway/realtime/client.py": "from gateway.call.machine import step\n",
            "gateway/realtime/simulator/vad.py": "from gateway.media.g711 import ulaw\n",
            "gateway/realtime/events.py": "from gateway.media.g711 import ulaw\n",
            "gateway/media/g711.py": "",
            "gateway/call/machine.py": "",
        },
    )
    found = violations(graph)
    assert set(found) == {
        ("sip.message", "gateway.app"),
        ("gateway.control", "gateway.config"),  # the control API is below the process
        ("gateway.observe.logs", "gateway.config"),  # relative import resolved
        ("gateway.media.stream", "gateway.realtime.client"),
        ("gateway.realtime.client", "gateway.call.machine"),
        ("gateway.realtime.events", "gateway.media.g711"),
    }
    assert (
        "sip/message.py:2: sip.message imports gateway.app" in found[("sip.message", "gateway.app")]
    )


def test_checker_keeps_the_machine_and_the_voice_vocabulary_backend_neutral(
    tmp_path: Path,
) -> None:
    graph = _fake_tree(
        tmp_path,
        {
            "gateway/voice.py": "from gateway.realtime import events\n",
            "gateway/call/handlers.py": "from gateway.realtime.events import SpeechStarted\n",
            "gateway/call/voice_events.py": "from gateway import voice\n",  # allowed
            "gateway/call/session.py": "from gateway.realtime.link import RealtimeLink\n",
            "gateway/realtime/events.py": "",
            "gateway/realtime/link.py": "from gateway.voice import VoiceLink\n",  # allowed
        },
    )
    found = violations(graph)
    assert set(found) == {
        ("gateway.voice", "gateway.realtime.events"),
        ("gateway.call.handlers", "gateway.realtime.events"),
        # Issue 12: the session gets its backend in its settings.
        ("gateway.call.session", "gateway.realtime.link"),
    }


def test_checker_follows_the_machine_into_what_it_imports(tmp_path: Path) -> None:
    graph = _fake_tree(
        tmp_path,
        {
            "gateway/call/machine.py": "from gateway.call import causes\n",
            "gateway/call/causes.py": "import logging\n",
            "gateway/call/session.py": "import asyncio\n",  # not reached by the machine
        },
    )
    found = violations(graph)
    assert set(found) == {("gateway.call.causes", "logging")}
    assert (
        "gateway.call.machine -> gateway.call.causes" in found[("gateway.call.causes", "logging")]
    )


def test_checker_reports_long_files(tmp_path: Path) -> None:
    graph = _fake_tree(
        tmp_path,
        {"gateway/app.py": "x = 1\n" * 600, "sip/dialog.py": "x = 1\n" * 800},
    )
    found = violations(graph)
    assert set(found) == {("size", "gateway.app")}


@pytest.mark.parametrize(
    ("name", "pattern", "expected"),
    [
        ("gateway.config", "gateway.config*", True),
        ("gateway.config_env", "gateway.config*", True),
        ("gateway.configure", "gateway.config", False),
        ("gateway.media.g711", "gateway.media", True),
        ("gateway.mediation", "gateway.media", False),
    ],
)
def test_patterns(name: str, pattern: str, expected: bool) -> None:
    assert matches(name, pattern) is expected


# --------------------------------------------------------------------------------------------
# `make test`'s serial pass: what tests/tools/serial.py names must exist (or a renamed test or
# fixture would silently move to the parallel pass), and its guard must know the commands.


def _defined_functions(path: Path) -> set[str]:
    """`function` and `Class::function` of every function defined at the top of `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return names


def test_serial_pass_tables_name_existing_tests_and_fixtures() -> None:
    from tests.tools import serial

    missing = [d for d in serial.REALTIME_DIRS if not (ROOT / d).is_dir()]
    for key in serial.REALTIME_TESTS:
        path, _, function = key.partition("::")
        if not (ROOT / path).is_file():
            missing.append(key)
        elif function and function not in _defined_functions(ROOT / path):
            missing.append(key)
    for module, name in serial.REALTIME_FIXTURES:
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.is_file() or name not in _defined_functions(path):
            missing.append(f"{module}.{name}")
    assert not missing, "tests/tools/serial.py names what no longer exists: " + ", ".join(missing)


@pytest.mark.parametrize(
    ("argv", "realtime"),
    [
        (["/x/.venv/bin/python", "-m", "gateway", "run", "--config", "g.toml"], True),
        (["python3.11", "-m", "gateway", "simulator", "--port", "0"], True),
        (["python", "-m", "gateway", "call", "sip:100@127.0.0.1"], True),
        (["python", "-m", "gateway", "run", "--help"], False),
        (["python", "-m", "gateway", "--version"], False),
        (["python", "-m", "gateway", "check", "--config", "g.toml"], False),
        (["sip-realtime-gateway", "run"], True),
        (["python", "-m", "tests.tools.netns", "uac", "10.0.0.1", "5080"], True),
        (["python", "-c", "print(1)"], False),
        (["/usr/bin/sipp", "127.0.0.1:5080", "-sf", "uac.xml"], True),
        (["/usr/sbin/kamailio", "-c", "-f", "k.cfg"], True),
        ("dumpcap -i lo -w x.pcap", True),
        (["baresip", "-f", "dir"], True),
        (["ip", "netns", "add", "t"], True),
        (["sox", "in.wav", "out.ul"], False),
        (["espeak-ng", "-w", "x.wav", "hello"], False),
        (["python", "/r/bench/latency.py", "--one"], True),
        (["python", "/r/bench/new_load_bench.py"], True),  # a new bench is real-time until listed
        (["python", "/r/bench/jitter_ab.py", "--rounds", "2"], False),
        (["git", "show", "HEAD:gateway/media/jitter.py"], False),
    ],
)
def test_serial_pass_guard_classifies_commands(argv: list[str] | str, realtime: bool) -> None:
    from tests.tools import serial

    assert serial.realtime_command(argv) is realtime


def test_serial_pass_guard_stops_a_parallel_test_starting_a_peer(
    request: pytest.FixtureRequest,
) -> None:
    import subprocess

    from tests.tools import serial

    assert subprocess.Popen.__init__.__name__ == "checked_init", "guard not installed"
    guard = serial._Guard()  # not the session's: its violations would fail this test
    guard.item = request.node  # a test of the parallel pass
    guard.check(["python", "-c", "pass"])
    with pytest.raises(serial.RealtimeMisclassified, match="add it to REALTIME_TESTS"):
        guard.check(["sipp", "127.0.0.1:5080"])
    request.node.add_marker(serial.MARK)
    guard.check(["sipp", "127.0.0.1:5080"])  # a test of the serial pass may
    assert len(guard.violations) == 1
