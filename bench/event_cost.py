"""What the voice session's inbound events cost (issue 14): CPU µs per server event, by type,
from the bytes of a WebSocket message to the playout queue, for one call.

The path is the product's: `RealtimeClient._on_message` (what gateway/wsock.py's read callback
calls with each complete message) -> `ServerEventParser.parse` -> the event sink
`CallSession._on_client_event` -> `RealtimeLink.translate` -> (an audio delta that moves no
state: `CallSession._bot_audio` -> `machine.steady_bot_audio`; any other event:
`VoiceEvents._on_report` -> `CallSession.dispatch` -> `machine.step` -> `CallSession._execute`)
-> `PlayoutQueue.enqueue`, with the product's JSON logging (to /dev/null) and its metrics observer
(gateway/call/accounting.py `on_session_event` on a real `Metrics`). What the call sends back
(a barge-in's truncate) goes through the client's synchronous write path into a stand-in
transport, as bench/wsock_ab.py does; no socket, no event loop iteration per event.

The input is one call's server events as the Realtime simulator sends them (its event shapes:
gateway/realtime/simulator/responses.py, input_audio.py, items.py), on a virtual clock:
caller turns (speech_started, speech_stopped, committed, item added/done, the input
transcription), each answered by a response (created, output item and content part added,
`response.output_audio.delta` every `--delta-ms` of audio paced in real time, each followed by
one transcript delta while words remain, then the done events, response.done and
rate_limits.updated); `--barge-ins` of the replies are interrupted halfway by the caller's
next turn (the simulator's turn_detected cancel). Between events the playout queue is drained
in 20 ms ticks up to the event's time (`next_frame` + `on_output_tick`, not timed), so the
states, barge-in snapshots and drains are the ones a call goes through.

Each event is timed with `time.process_time_ns` around `_on_message`, less the cost of the
timer itself (measured); a round replays the whole call on a fresh session; figures are the
median over rounds. "per call per 20 ms" is the stream's total CPU divided by its length in
20 ms ticks: what these events add to the issue's CPU-per-call-per-20-ms figure.

    .venv/bin/python bench/event_cost.py                      # this tree
    .venv/bin/python bench/event_cost.py --rev HEAD~4         # that revision, then this tree
    .venv/bin/python bench/event_cost.py --rev A --after B    # two revisions
    .venv/bin/python bench/event_cost.py --json               # one JSON object

With `--rev` the revision's tree is exported (`git archive`) to a temporary directory and the
two trees run in alternating child processes (A B, B A, ...) on the same stream, so both see
the same machine load: on a shared machine compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._standins import StandInControl, StandInTransport  # noqa: E402
from bench._wsconn import handshaken_connection, server_frame  # noqa: E402

TICK_MS = 20
BYTES_PER_MS = 8  # G.711

DELTA = "response.output_audio.delta"


# -- the stream ---------------------------------------------------------------------------------


class _Ids:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new(self, prefix: str) -> str:
        return f"{prefix}_{next(self._n):06d}SIM"


def _item_wire(item_id: str, role: str, status: str, transcript: str | None) -> dict[str, Any]:
    """gateway/realtime/simulator/items.py `Item.wire()` of an audio message."""
    part_type = "output_audio" if role == "assistant" else "input_audio"
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": role,
        "content": [{"type": part_type, "transcript": transcript}],
    }


def _response_wire(
    response_id: str, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """gateway/realtime/simulator/responses.py `_response_wire`."""
    details: dict[str, Any] | None = None
    if status == "cancelled":
        details = {"type": "cancelled", "reason": "turn_detected"}
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": details,
        "output": output,
        "conversation_id": "conv_sim",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "metadata": None,
        "usage": usage,
    }


def call_stream(
    seconds: float = 40.0,
    barge_ins: int = 7,
    delta_ms: int = 100,
    speech_ms: int = 1500,
    reply_ms: int = 2400,
    words: int = 12,
    burst_ms: int | None = None,
) -> list[tuple[int, str, bytes]]:
    """One call's server events: (virtual ms, type, JSON bytes), in order. `burst_ms`: a
    reply's deltas `burst_ms` apart (the whole reply, then its done events, as the service
    and the simulator's default send them, far faster than real time), the caller's
    interruption at the same point of the playout as paced; None: paced in real time."""
    ids = _ids = _Ids()
    out: list[tuple[int, str, bytes]] = []
    seq = itertools.count(1)

    def send(t: float, event: dict[str, Any]) -> None:
        event = {"event_id": f"event_{next(seq):07d}", **event}
        out.append((int(t), event["type"], json.dumps(event, separators=(",", ":")).encode()))

    t = 500.0
    audio_ms = 0  # the caller's input audio time (the server VAD's clock)
    previous: str | None = None
    turn = 0
    barged = 0
    total = int(seconds * 1000)
    # About 5 s per turn (caller 1.5 s, the reply 2.4 s, pauses): the barge-ins are spread
    # evenly over the turns that fit in the call.
    turns = max(1, total // 5000)
    while t < total:
        turn += 1
        user_item = ids.new("item")
        send(t, {"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_ms,
                 "item_id": user_item})  # fmt: skip
        t += speech_ms
        audio_ms += speech_ms
        send(t, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_ms,
                 "item_id": user_item})  # fmt: skip
        send(t, {"type": "input_audio_buffer.committed", "item_id": user_item,
                 "previous_item_id": previous})  # fmt: skip
        wire = _item_wire(user_item, "user", "completed", f"caller turn {turn}")
        for phase in ("added", "done"):
            send(t, {"type": f"conversation.item.{phase}", "item": wire,
                     "previous_item_id": previous})  # fmt: skip
        send(t, {"type": "conversation.item.input_audio_transcription.completed",
                 "item_id": user_item, "content_index": 0, "transcript": f"caller turn {turn}",
                 "usage": {"type": "duration", "seconds": speech_ms / 1000}})  # fmt: skip
        previous = user_item
        t += 300  # the model's first audio
        response_id = ids.new("resp")
        send(t, {"type": "response.created",
                 "response": _response_wire(response_id, "in_progress", [], None)})  # fmt: skip
        bot_item = ids.new("item")
        ids_ = {"response_id": response_id, "item_id": bot_item, "output_index": 0,
                "content_index": 0}  # fmt: skip
        wire = _item_wire(bot_item, "assistant", "in_progress", "")
        send(t, {"type": "response.output_item.added", "response_id": response_id,
                 "output_index": 0, "item": wire})  # fmt: skip
        send(t, {"type": "conversation.item.added", "item": wire, "previous_item_id": previous})
        send(t, {"type": "response.content_part.added", **ids_,
                 "part": {"type": "audio", "transcript": ""}})  # fmt: skip
        interrupted = barged < barge_ins and (turn * barge_ins) // turns > barged
        played_ms = reply_ms // 2 if interrupted else reply_ms
        # Bursts: the whole reply is sent (and done) before the caller cuts in.
        sent_ms = reply_ms if burst_ms is not None else played_ms
        text = [f"word{i}" for i in range(words)]
        spoken: list[str] = []
        offset = 0
        start = t
        at = start
        while offset < sent_ms:
            chunk = min(delta_ms, sent_ms - offset)
            at = start + offset if burst_ms is None else start + burst_ms * (offset // delta_ms)
            audio = bytes([0x7F - (offset // 20) % 64]) * (chunk * BYTES_PER_MS)
            send(at, {"type": DELTA, **ids_, "delta": base64.b64encode(audio).decode()})
            if len(spoken) < len(text):
                word = text[len(spoken)]
                send(at, {"type": "response.output_audio_transcript.delta", **ids_,
                          "delta": ("" if not spoken else " ") + word})  # fmt: skip
                spoken.append(word)
            offset += chunk
        if burst_ms is not None:
            # The reply ends right after its last delta; the interruption (a truncate of
            # the item being heard, nothing left to cancel) comes after its done events.
            t = at
            cut = interrupted
            interrupted = False
        if interrupted:
            barged += 1
            t = start + played_ms
            next_item = ids.new("item")
            send(t, {"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_ms,
                     "item_id": next_item})  # fmt: skip
            status = "cancelled"
        else:
            t = start + played_ms if burst_ms is None else at
            status = "completed"
        transcript = " ".join(spoken)
        send(t, {"type": "response.output_audio.done", **ids_})
        send(t, {"type": "response.output_audio_transcript.done", **ids_,
                 "transcript": transcript})  # fmt: skip
        send(t, {"type": "response.content_part.done", **ids_,
                 "part": {"type": "audio", "transcript": transcript}})  # fmt: skip
        wire = _item_wire(bot_item, "assistant",
                          "incomplete" if interrupted else "completed", transcript)  # fmt: skip
        send(t, {"type": "response.output_item.done", "response_id": response_id,
                 "output_index": 0, "item": wire})  # fmt: skip
        send(t, {"type": "conversation.item.done", "item": wire, "previous_item_id": previous})
        out_tokens = played_ms // 50
        usage = {"total_tokens": 60 + out_tokens, "input_tokens": 60,
                 "output_tokens": out_tokens,
                 "input_token_details": {"text_tokens": 40, "audio_tokens": 20,
                                         "image_tokens": 0, "cached_tokens": 0},
                 "output_token_details": {"text_tokens": 0, "audio_tokens": out_tokens}}  # fmt: skip
        send(t, {"type": "response.done",
                 "response": _response_wire(response_id, status, [wire], usage)})  # fmt: skip
        send(t, {"type": "rate_limits.updated", "rate_limits": [
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
            {"name": "tokens", "limit": 40000, "remaining": 39940, "reset_seconds": 0.5}]})  # fmt: skip
        previous = bot_item
        if burst_ms is not None:
            t = start + played_ms
            if cut:
                barged += 1
                interrupted = True
                next_item = ids.new("item")
                send(t, {"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_ms,
                         "item_id": next_item})  # fmt: skip
        if interrupted:
            # The interrupting speech is the next turn: it already started.
            t += speech_ms
            audio_ms += played_ms + speech_ms
            send(t, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_ms,
                     "item_id": next_item})  # fmt: skip
            send(t, {"type": "input_audio_buffer.committed", "item_id": next_item,
                     "previous_item_id": previous})  # fmt: skip
            previous = next_item
            t += 600  # the caller's reply to nothing: a pause, then the next turn
        else:
            audio_ms += played_ms + 800
            t += 800
    del _ids
    return [event for event in out if event[0] < total]


# -- one call ---------------------------------------------------------------------------------


def _timer_cost_ns() -> float:
    clock = time.process_time_ns
    samples = []
    for _ in range(50):
        start = clock()
        for _ in range(200):
            a = clock()
            b = clock()
        samples.append((clock() - start) / 200)
        del a, b
    # One timed event pays one pair of clock reads; the loop's own cost is not subtracted
    # (it would make the figure smaller than the truth).
    return statistics.median(samples) / 2


async def _one_call(
    stream: list[tuple[int, str, bytes]], timer_ns: float, logged: list[Any], wire: bool = False
) -> dict[str, Any]:
    """Replay `stream` as one call. What the call did (client events sent, log records,
    bot audio played, states) goes into the result's `fingerprint`, so two revisions can be
    shown to behave the same on the stream."""
    from websockets.protocol import State

    from gateway.call import accounting
    from gateway.call import machine as m
    from gateway.call.session import CallSession, SessionSettings
    from gateway.media.playout import PlayoutQueue
    from gateway.observe.metrics import Metrics
    from gateway.realtime import protocol
    from gateway.realtime.backend import RealtimeBackend, RealtimeConnection
    from gateway.realtime.client import Endpoint, RealtimeClient

    clients: list[RealtimeClient] = []
    sent: list[str] = []
    played = hashlib.sha256()

    class Backend(RealtimeBackend):
        async def open(self, endpoint: Any, config: Any, history: Any, timeout: float) -> Any:  # noqa: ASYNC109
            client = RealtimeClient(endpoint)
            client._ws = SimpleNamespace(  # type: ignore[assignment]
                transport=StandInTransport(),
                protocol=SimpleNamespace(state=State.OPEN, expect_continuation_frame=False),
            )
            clients.append(client)
            connection = RealtimeConnection(client)
            send = connection.send

            def recorded_send(event: dict[str, Any]) -> None:
                sent.append(json.dumps(event, sort_keys=True))
                send(event)

            connection.send = recorded_send  # type: ignore[method-assign]
            return connection

    metrics = Metrics()
    live = SimpleNamespace(services=SimpleNamespace(metrics=metrics), record=None)
    config = protocol.SessionConfig(turn_detection=protocol.ServerVad())
    settings = SessionSettings(
        Endpoint.custom("ws://127.0.0.1:9/v1/realtime"),
        config,
        m.CallPolicy(),
        backend=Backend(),
    )
    control = StandInControl()
    queue = PlayoutQueue()
    session = CallSession(
        "bench-call",
        settings,
        control,  # type: ignore[arg-type]
        queue,
        observe=lambda kind, fields: accounting.on_session_event(live, kind, fields),  # type: ignore[arg-type]
    )
    session.start()
    for _ in range(100):
        if control.answered:
            break
        await asyncio.sleep(0)
    if not control.answered:
        raise SystemExit("event_cost: the bench call was not answered")
    session.on_ack()
    logged.clear()  # setup lines carry timings (connect_ms); the fingerprint starts here
    on_message = clients[0]._on_message
    if wire:
        # From the socket: each message framed as the server sends it and handed to a real
        # connection's read callback (websockets' parse, or the read fast path where the
        # tree has it), which calls the client's `_on_message`.
        on_message = handshaken_connection(on_message).data_received
        stream = [(at_ms, kind, server_frame(data)) for at_ms, kind, data in stream]
    clock = time.process_time_ns
    next_frame = queue.next_frame
    tick = session.on_output_tick
    now_ms = 0
    spent: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for at_ms, kind, data in stream:
        while now_ms + TICK_MS <= at_ms:
            now_ms += TICK_MS
            frame = next_frame()
            if frame is not None:
                played.update(frame.payload)
            tick()
        start = clock()
        on_message(data)
        spent[kind] += clock() - start - timer_ns
        counts[kind] += 1
    stats = session.stats
    # The lines other than call.state compared as logged; the states through the
    # session's transitions (issue 14 logs the turn-taking call.state lines at DEBUG,
    # so a revision before it logs more of them at INFO for the same states).
    lines = [
        (head, fields)
        for head, fields in zip(logged[::2], logged[1::2], strict=True)
        if head[1] != "call.state"
    ]
    result = {
        "ns": dict(spent),
        "counts": dict(counts),
        "barge_ins": stats.barge_ins,
        "illegal_events": stats.illegal_events,
        "malformed": clients[0].parser.malformed,
        "state": session.ctx.state.value,
        "fingerprint": hashlib.sha256(
            repr(
                (sent, lines, played.hexdigest(), [state for _, state in session.transitions])
            ).encode()
        ).hexdigest(),
    }
    await session.close()
    return result


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """`--rounds` calls on this process's gateway package; per round, µs per event by type."""
    import logging

    from gateway.observe.logs import configure_logging

    devnull = open(os.devnull, "w")  # open for the process's lifetime
    configure_logging("INFO", "json", devnull)
    logged: list[Any] = []

    class Record(logging.Filter):
        """Counts the lines and keeps what they say (not when) for the fingerprint."""

        def filter(self, record: logging.LogRecord) -> bool:
            logged.append((record.levelname, getattr(record, "event", None), record.msg))
            logged.append(getattr(record, "fields", None))
            return True

    logging.getLogger().handlers[0].addFilter(Record())
    stream = call_stream(args.seconds, args.barge_ins, args.delta_ms, burst_ms=args.burst_ms)
    timer_ns = _timer_cost_ns()
    asyncio.run(
        _one_call(stream, timer_ns, [], args.wire)
    )  # warm-up: first-call costs are not the figure
    rounds = []
    for _ in range(args.rounds):
        gc.collect()
        logged.clear()
        result = asyncio.run(_one_call(stream, timer_ns, logged, args.wire))
        result["log_lines"] = len(logged) // 2
        rounds.append(result)
    return {"timer_ns": timer_ns, "seconds": args.seconds, "rounds": rounds}


# -- figures ----------------------------------------------------------------------------------


def summarise(rounds: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    counts = rounds[0]["counts"]
    per_type = {
        kind: statistics.median(r["ns"][kind] / counts[kind] / 1000 for r in rounds)
        for kind in counts
    }
    totals = [sum(r["ns"].values()) / 1000 for r in rounds]
    ticks = seconds * 1000 / TICK_MS
    return {
        "us_per_event": per_type,
        "events_per_call": counts,
        "us_per_call": statistics.median(totals),
        "us_per_call_best": min(totals),
        "us_per_call_per_20ms": statistics.median(totals) / ticks,
        "us_per_event_all": statistics.median(totals) / sum(counts.values()),
        "log_lines_per_call": rounds[0]["log_lines"],
        "barge_ins": rounds[0]["barge_ins"],
        "illegal_events": rounds[0]["illegal_events"],
        "malformed": rounds[0]["malformed"],
        "fingerprints": sorted({r["fingerprint"] for r in rounds}),
    }


def print_table(named: dict[str, dict[str, Any]]) -> None:
    names = list(named)
    first = named[names[0]]
    kinds = sorted(first["events_per_call"], key=lambda k: -first["events_per_call"][k])
    print("| event type | per call | " + " | ".join(f"µs/event {n}" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kind in kinds:
        cells = " | ".join(f"{named[n]['us_per_event'].get(kind, float('nan')):.2f}" for n in names)
        print(f"| {kind} | {first['events_per_call'][kind]} | {cells} |")
    for label, key, fmt in (
        ("all events, µs per event", "us_per_event_all", "{:.2f}"),
        ("µs per call (the whole stream), median", "us_per_call", "{:.0f}"),
        ("µs per call, best round", "us_per_call_best", "{:.0f}"),
        ("**µs per call per 20 ms**", "us_per_call_per_20ms", "{:.2f}"),
        ("log lines per call", "log_lines_per_call", "{}"),
        ("barge-ins (flushes) per call", "barge_ins", "{}"),
    ):
        cells = " | ".join(fmt.format(named[n][key]) for n in names)
        print(f"| {label} | | {cells} |")


def _child_cmd(tree: Path, args: argparse.Namespace, rounds: int) -> list[str]:
    return [
        sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree),
        "--rounds", str(rounds), "--seconds", str(args.seconds),
        "--barge-ins", str(args.barge_ins), "--delta-ms", str(args.delta_ms),
        *(["--burst-ms", str(args.burst_ms)] if args.burst_ms is not None else []),
        *(["--wire"] if args.wire else []),
    ]  # fmt: skip


def _run(
    tree: Path, args: argparse.Namespace, rounds: int, prefix: tuple[str, ...] = ()
) -> dict[str, Any]:
    # The same string hashes on both sides: dict and set layouts do not differ by chance.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [*prefix, *_child_cmd(tree, args, rounds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"event_cost: the child for {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def callgrind_instructions(tree: Path, args: argparse.Namespace, calls: int) -> float:
    """Instructions per replayed call, counted by valgrind's callgrind: blind to the machine's
    load, where CPU time on a shared machine is not. Two children under callgrind, one
    replaying 1 call and one 1 + `calls` (the same warm-up and start-up in both): the
    difference, per call. That is the whole call as a round runs it (a fresh loop, session
    and metrics, the events, ~2000 playout ticks between them, the close, a gc.collect()),
    not the events alone: compare revisions by the difference."""
    counts = []
    for rounds in (1, 1 + calls):
        with tempfile.TemporaryDirectory(prefix="event_cost_cg_") as out:
            prefix = (
                "valgrind", "--tool=callgrind", "--cache-sim=no",
                f"--callgrind-out-file={out}/cg.out",
            )  # fmt: skip
            _run(tree, args, rounds, prefix)
            with open(f"{out}/cg.out") as data:
                totals = [line for line in data if line.startswith(("summary:", "totals:"))]
            counts.append(int(totals[-1].split()[1]))
    return (counts[1] - counts[0]) / calls


def export_revision(rev: str) -> Path:
    """`rev`'s tree in a temporary directory, with this tree's compiled extensions (not in
    git) so both sides import the same jitter buffer and WebSocket read path (a revision
    that does not call a newer function of gateway._wsframe is not changed by its presence)."""
    target = Path(tempfile.mkdtemp(prefix="event_cost_"))
    archive = subprocess.run(
        ["git", "archive", rev], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for built in (ROOT / "gateway" / "media").glob("_*.so"):
        shutil.copy2(built, target / "gateway" / "media" / built.name)
    for built in (ROOT / "gateway").glob("_*.so"):
        shutil.copy2(built, target / "gateway" / built.name)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", help="also measure this git revision (A/B, alternating)")
    parser.add_argument("--after", help="with --rev: this revision instead of the working tree")
    parser.add_argument("--rounds", type=int, default=9, help="calls replayed per side")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the call")
    parser.add_argument("--barge-ins", type=int, default=7, help="interrupted replies per call")
    parser.add_argument("--delta-ms", type=int, default=100, help="audio per output delta")
    parser.add_argument(
        "--burst-ms",
        type=int,
        metavar="MS",
        help="send each reply's deltas MS apart, far faster than real time, as the service "
        "and the simulator's default (2 ms) do, instead of paced in real time: the playout "
        "queue then holds the reply's audio between deltas",
    )
    parser.add_argument(
        "--wire",
        action="store_true",
        help="start from the socket: each message framed and fed to the connection's read "
        "callback (websockets' parse or the read fast path) instead of `_on_message`",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--callgrind",
        type=int,
        metavar="CALLS",
        help="instead of timing, count the instructions of CALLS replayed calls per side "
        "under valgrind (load-blind; about a minute per side)",
    )
    parser.add_argument("--verbose", action="store_true", help="each child's figure on stderr")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(args.tree))
        print(json.dumps(run_child(args)))
        return 0
    sides: dict[str, list[dict[str, Any]]] = {}
    ratios: list[float] = []
    tmp: Path | None = None
    exported: list[Path] = []
    try:
        if args.rev:
            tmp = export_revision(args.rev)
            after: Path = ROOT
            if args.after:
                after = export_revision(args.after)
                exported.append(after)
            trees = {f"before ({args.rev})": tmp, f"after ({args.after or 'this tree'})": after}
        else:
            trees = {"this tree": ROOT}
        if args.callgrind:
            ticks = args.seconds * 1000 / TICK_MS
            counted = {}
            for name, tree in trees.items():
                per_call = callgrind_instructions(tree, args, args.callgrind)
                counted[name] = per_call
                print(f"{name}: {per_call / 1e6:.3f} M instructions per round (callgrind)")
            if len(counted) == 2:
                before_count, after_count = counted.values()
                events = len(
                    call_stream(args.seconds, args.barge_ins, args.delta_ms, burst_ms=args.burst_ms)
                )
                saved = before_count - after_count
                print(
                    f"after - before: {-saved / 1e6:+.3f} M instructions per call, "
                    f"{-saved / events:+.0f} per event ({events} events), "
                    f"{-saved / ticks:+.0f} per call per 20 ms"
                )
            return 0
        # Alternate the sides, a few calls per child: A B, B A, ...
        per_child = 3
        for r in range((args.rounds + per_child - 1) // per_child):
            order = list(trees.items())
            if r % 2:
                order.reverse()
            pair: dict[str, float] = {}
            for name, tree in order:
                rounds = _run(tree, args, per_child)["rounds"]
                sides.setdefault(name, []).extend(rounds)
                pair[name] = statistics.median(sum(x["ns"].values()) for x in rounds)
                if args.verbose:
                    print(f"{name}: {pair[name] / 1000:.0f} µs per call", file=sys.stderr)
            if len(pair) == 2:
                before_ns, after_ns = (pair[name] for name in trees)
                ratios.append(after_ns / before_ns)
    finally:
        for path in [tmp, *exported]:
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
    named = {name: summarise(rounds, args.seconds) for name, rounds in sides.items()}
    for name, figures in named.items():
        if figures["illegal_events"] or figures["malformed"]:
            raise SystemExit(f"event_cost: {name}: the stream did not go through cleanly")
    fingerprints = {fp for figures in named.values() for fp in figures["fingerprints"]}
    if len(fingerprints) != 1:
        seen = {name: figures["fingerprints"] for name, figures in named.items()}
        raise SystemExit(
            "event_cost: the calls did not all do the same (client events sent, log lines, "
            f"audio played, states): {seen}"
        )
    if args.json:
        print(json.dumps(named, indent=1))
        return 0
    load = os.getloadavg()
    print(
        f"bench/event_cost.py: one {args.seconds:.0f} s call, {args.barge_ins} barge-ins, "
        f"{args.delta_ms} ms per delta"
        f"{f', sent {args.burst_ms} ms apart' if args.burst_ms is not None else ''}; "
        f"{args.rounds} calls per side; "
        f"{'from the socket (--wire); ' if args.wire else ''}"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print_table(named)
    print(
        "identical client events, log lines, played audio and states on every call"
        + (" of both sides" if len(named) == 2 else "")
    )
    if ratios:
        print(
            f"after / before (µs per call), median of {len(ratios)} paired children: "
            f"{statistics.median(ratios):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
