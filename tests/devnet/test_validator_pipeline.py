"""The offline validator pipeline tool (tests/benchmarks/validator_pipeline.py): every block it
signs is admitted, executed and committed, the pool ends empty, and each phase is timed; the
`--copies` form runs that many at once; bad arguments are refused before any work."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.validator_pipeline import PHASES, run_pipeline

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def test_every_block_is_admitted_executed_and_committed(tmp_path: Path) -> None:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    result = run_pipeline(blocks=3, block_txs=40, accounts=300, directory=tmp_path / "db")
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, frozen)  # the test process as it was
    assert result["executed_txs"] == 120  # every transfer applied: admitted ones hold their recorded effects
    assert result["height"] == 3
    assert result["pending_after"] == 0  # each block's transactions leave the pool at its commit
    phases = result["us_per_transfer"]
    assert tuple(phases) == PHASES and all(us > 0 for us in phases.values())
    assert result["us_per_transfer_all"] == pytest.approx(sum(phases.values()), abs=0.05)


def test_copies_run_at_once_and_each_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.validator_pipeline", "--blocks", "2", "--block-txs", "20", "--accounts", "300", "--copies", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["copies"] == 2 and len(result["each"]) == 2
    assert all(copy["executed_txs"] == 40 and copy["pending_after"] == 0 for copy in result["each"])


@pytest.mark.parametrize("argument", ["--blocks", "--block-txs", "--accounts", "--copies"])
def test_a_count_below_one_is_refused(argument: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.validator_pipeline", argument, "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert f"{argument} must be at least 1" in done.stderr
