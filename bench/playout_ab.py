"""A/B micro-benchmark: `PlayoutQueue.next_frame` of this tree against the one of a git revision.

The outbound tick of one call (`pacer.CallOutput.tick` asks the queue for one 20 ms frame per
tick): a scripted bot that speaks in turns (items of `--speech-frames` frames delivered in
100 ms deltas, then `--silence-frames` idle ticks), a start delay, comfort noise or silence
while idle and a DTMF pause now and then. Both revisions of gateway/media/playout.py get the same
script; the frames they return and their statistics must be identical, then they are timed in
alternating rounds (A B, B A, ...), so both see the same machine load: on a shared machine
compare the ratio, not the absolute figures.

    .venv/bin/python bench/playout_ab.py                    # HEAD vs the working tree
    .venv/bin/python bench/playout_ab.py --idle-policy comfort_noise --rounds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ab  # noqa: E402
from gateway.media import playout as current  # noqa: E402

FRAME = 160


def drive(module: ModuleType, args: argparse.Namespace, keep: bool) -> tuple[list, dict]:
    queue = module.PlayoutQueue(
        idle_policy=module.IdlePolicy[args.idle_policy.upper()], start_delay_frames=2
    )
    out: list = []
    delta = bytes(range(1, 101)) * 8  # 100 ms of bot audio
    turn = args.speech_frames + args.silence_frames
    item = 0
    for tick in range(args.ticks):
        phase = tick % turn
        if phase == 0:
            item += 1
        item_id = f"item_{item}"
        if phase < args.speech_frames and phase % 5 == 0:
            queue.enqueue(item_id, delta)
            if phase + 5 >= args.speech_frames:
                queue.end_of_item(item_id)
        if tick % 997 == 10:
            queue.pause_for_dtmf()
        elif tick % 997 == 20:
            queue.resume_after_dtmf()
        frame = queue.next_frame()
        if keep:
            # The kind by value: each loaded revision has its own FrameKind class.
            out.append(None if frame is None else (*frame[:3], frame.kind.value))
    return out, dataclasses.asdict(queue.stats)


def time_once(module: ModuleType, args: argparse.Namespace) -> float:
    """Process CPU µs per tick for one pass."""
    start = time.process_time_ns()
    drive(module, args, keep=False)
    return (time.process_time_ns() - start) / 1000 / args.ticks


def main() -> None:
    parser = ab.parser(__doc__)
    parser.add_argument("--ticks", type=int, default=50000)
    parser.add_argument("--speech-frames", type=int, default=100, help="ticks the bot speaks")
    parser.add_argument("--silence-frames", type=int, default=150, help="then silent ticks")
    parser.add_argument("--idle-policy", default="silence", choices=("silence", "comfort_noise"))
    args = parser.parse_args()
    before = ab.load_revision(args.rev, "gateway/media/playout.py")
    if drive(before, args, True) != drive(current, args, True):
        sys.exit("playout_ab: frames or statistics differ")
    times = ab.alternate(args.rounds, before, current, lambda module: time_once(module, args))
    load = os.getloadavg()[0]
    print(
        f"playout_ab: {args.ticks} ticks x {args.rounds} rounds, bot speaks "
        f"{args.speech_frames} of every {args.speech_frames + args.silence_frames} ticks, idle "
        f"{args.idle_policy}; before = {args.rev}, after = working tree; load {load:.2f}; "
        "identical frames and statistics"
    )
    ab.print_times("µs CPU per tick (enqueue share + next_frame)", times)


if __name__ == "__main__":
    main()
