"""A validator's peak memory with 1,000,000 accounts in its store (issue 9 item 4).

A fresh process (so nothing else in the test session counts) builds the ledger a validator opens:
genesis with HEARTH_BENCH_ACCOUNTS accounts (default 1,000,000) into a LevelDB store, then executes
and commits blocks of 1,000 signed transfers spread over the accounts; its peak RSS (ru_maxrss)
is the figure. Target: <= 1 GiB. Recorded, not asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.results import record

ROOT = Path(__file__).resolve().parents[2]
TARGET_MIB = 1024

pytestmark = pytest.mark.timeout(1900)

_CHILD = """
import json, resource, sys
from pathlib import Path

import pytest
from tests.benchmarks.test_bench_ledger import _run
accounts = int(sys.argv[1])
times = _run(Path(sys.argv[2]), accounts, 8)
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "blocks": len(times)}))
"""


def test_validator_peak_rss(tmp_path: Path) -> None:
    accounts = int(os.environ.get("HEARTH_BENCH_ACCOUNTS", "1000000"))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(accounts), str(tmp_path)], cwd=ROOT, check=True, timeout=1800, capture_output=True, text=True)
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    record(
        "validator_memory",
        {
            "accounts": accounts,
            "peak_rss_mib": round(peak),
            "peak_rss_fraction_of_target": round(peak / TARGET_MIB, 3),
            "target_rss_mib_max": TARGET_MIB,
        },
    )
