"""The benchmarks' results file (tests/benchmarks/results.py): each figure is recorded beside V and
P, the fixed pure-Python reference that tells a machine effect apart from a change in the code, and
M, the reference whose reads miss the caches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks import results


def test_record_writes_v_p_and_their_ratio_beside_the_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "RESULTS", tmp_path / "bench-results.json")
    monkeypatch.setattr(results, "_MEASURED", {"V": 20_000.0, "P": 50_000.0, "M": 700.0})
    results.record("ledger_apply", {"apply_tx_per_s": 9_740})
    results.record("validator_memory", {"peak_rss_mib": 734})
    data = json.loads((tmp_path / "bench-results.json").read_text())
    assert data["V_verify_per_s_one_core"] == 20_000
    assert data["P_python_reference_rounds_per_s_one_core"] == 50_000
    assert data["V_over_P"] == 0.4
    assert data["M_memory_reference_rounds_per_s_one_core"] == 700
    assert data["ledger_apply"] == {"apply_tx_per_s": 9_740} and data["validator_memory"] == {"peak_rss_mib": 734}


def test_the_python_reference_is_a_fixed_workload() -> None:
    """The same round does the same work every time (so P measures the machine, not the input)."""
    keys = [bytes([i]) * 32 for i in range(64)]
    table: dict[bytes, results._Record] = {}
    first, second = results._python_round(table, keys), results._python_round(table, keys)
    assert first == 64 * 8 + 64 * 1 and second == 64 * 8 + 64 * 2  # each key's nonce goes up by one a round
    assert {record.balance for record in table.values()} == {998}
    assert results.python_rate(0.02) > 0


def test_the_memory_reference_reads_every_entry_once_in_64_rounds_of_scattered_keys() -> None:
    table, rounds = results._memory_table()
    keys = [key for round_keys in rounds for key in round_keys]
    assert len(table) == results._MEMORY_TABLE_KEYS and len(rounds) == 64
    assert all(len(round_keys) == results._MEMORY_ROUND_KEYS for round_keys in rounds)
    assert sorted(keys) == sorted(table)  # every entry, once
    first = sorted(int.from_bytes(k[:4], "big") for k in rounds[0])
    assert first[-1] - first[0] > results._MEMORY_TABLE_KEYS // 2  # one round is spread over the table, not one corner
    expected = sum(int.from_bytes(k[:4], "big") for k in rounds[0])  # each record's balance is its index, nonce 0
    assert results._memory_round(table, rounds[0]) == expected == results._memory_round(table, rounds[0])
    assert results.memory_rate(0.05) > 0
