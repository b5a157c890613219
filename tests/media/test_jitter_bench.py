"""bench/jitter_ab.py --c-vs-python: the compiled and the pure buffer on the same jittered,
lossy packets; it exits non-zero when their frames or statistics differ."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.media.jitter_impls import require_extension

ROOT = Path(__file__).resolve().parents[2]


def test_c_vs_python_bench_runs_and_finds_identical_output() -> None:
    require_extension()
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "jitter_ab.py"), "--c-vs-python", "--packets", "500",
         "--rounds", "2", "--jitter-ms", "30", "--loss", "0.02"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical frames" in result.stdout and "after = compiled" in result.stdout
