"""The capacity-over-time tool (tests/benchmarks/capacity_over_time.py) end to end, at a rate any
machine keeps up with: two steps on one bench devnet, the validators restarted in between, and the
second step's transfers admitted and committed (its generator took the nonces the first one used
from the chain: `loadgen --resume`; without that every one of them is refused as stale)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.bench_devnet import VALIDATORS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def test_two_steps_around_a_restart_are_both_kept_up(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.capacity_over_time", "--rate", "200", "--seconds", "2", "--restart", "--dir", str(tmp_path / "cap")],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"step"')]
    assert [(s["step"], s["restarted_before"]) for s in steps] == [(0, False), (1, True)]
    for step in steps:
        assert step["kept_up"] and step["committed_per_s"] == 200.0
        assert len(step["cpu_us_per_committed_tx"]) == VALIDATORS and all(us > 0 for us in step["cpu_us_per_committed_tx"])
    assert json.loads((tmp_path / "cap" / "step1.json").read_text())["steps"][0]["refused"] == 0
