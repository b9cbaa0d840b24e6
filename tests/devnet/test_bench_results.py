"""The benchmarks' results file (tests/benchmarks/results.py): each figure is recorded beside V and
P, the fixed pure-Python reference that tells a machine effect apart from a change in the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks import results


def test_record_writes_v_p_and_their_ratio_beside_the_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "RESULTS", tmp_path / "bench-results.json")
    monkeypatch.setattr(results, "_V", 20_000.0)
    monkeypatch.setattr(results, "_P", 50_000.0)
    results.record("ledger_apply", {"apply_tx_per_s": 9_740})
    results.record("validator_memory", {"peak_rss_mib": 734})
    data = json.loads((tmp_path / "bench-results.json").read_text())
    assert data["V_verify_per_s_one_core"] == 20_000
    assert data["P_python_reference_rounds_per_s_one_core"] == 50_000
    assert data["V_over_P"] == 0.4
    assert data["ledger_apply"] == {"apply_tx_per_s": 9_740} and data["validator_memory"] == {"peak_rss_mib": 734}


def test_the_python_reference_is_a_fixed_workload() -> None:
    """The same round does the same work every time (so P measures the machine, not the input)."""
    keys = [bytes([i]) * 32 for i in range(64)]
    table: dict[bytes, results._Record] = {}
    first, second = results._python_round(table, keys), results._python_round(table, keys)
    assert first == 64 * 8 + 64 * 1 and second == 64 * 8 + 64 * 2  # each key's nonce goes up by one a round
    assert {record.balance for record in table.values()} == {998}
    assert results.python_rate(0.02) > 0
