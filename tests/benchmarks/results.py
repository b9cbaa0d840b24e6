"""Shared by benchmarks: the physical limit V (PyNaCl ed25519 verifications/s on one core) and the
results file `bench-results.json`, which records V, each figure, and each figure's fraction of its limit.

Beside V it records P, a fixed pure-Python workload's rate on one core (`python_rate`): the targets
are fractions of V, which assumes the interpreter and libsodium change speed together from one machine
to another, and they need not (one VM measured V 20% higher than another at the same interpreter
speed, so every Python-bound figure fell as a fraction of V). V/P in two runs tells such a machine
effect apart from a change in the code."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing

RESULTS = Path(__file__).resolve().parents[2] / "bench-results.json"
_V: float | None = None


def verify_rate(seconds: float, clock: Callable[[], float] = time.perf_counter) -> float:
    """PyNaCl ed25519 verifications per second of `clock` (wall time by default; give
    time.process_time for V per CPU second), on transfer-sized messages, over `seconds`."""
    key = nacl.signing.SigningKey(b"\x07" * 32)
    verify_key = key.verify_key
    signed = [(m, key.sign(m).signature) for m in (bytes([i]) * 150 for i in range(64))]
    count, start = 0, clock()
    while clock() - start < seconds:
        for m, sig in signed:
            verify_key.verify(m, sig)
        count += len(signed)
    return count / (clock() - start)


def measure_verify_rate(seconds: float = 2.0) -> float:
    """V for the whole run: measured once (over `seconds`), then cached."""
    global _V
    if _V is None:
        _V = verify_rate(seconds)
    return _V


def measure_verify_rate_now(seconds: float = 0.25) -> float:
    """V over a short window, uncached: paired with the work measured right next to it, so that
    drift in this machine's speed (a shared VM's steal time) cancels out of their ratio."""
    return verify_rate(seconds)


class _Record:
    __slots__ = ("balance", "nonce")

    def __init__(self, balance: int, nonce: int) -> None:
        self.balance = balance
        self.nonce = nonce


def _python_round(table: dict[bytes, _Record], keys: list[bytes]) -> int:
    """One round of the reference: the kinds of work the ledger's hot path does in the interpreter
    (dict reads and writes, attribute access, calls, integer arithmetic, tuples, bytes slicing).
    Fixed forever: P is only comparable between runs while this stays the same."""
    total = 0
    for key in keys:
        record = table.get(key)
        if record is None:
            record = table[key] = _Record(1_000, 0)
        pair = (record.balance - 1, record.nonce + 1)
        table[key] = _Record(*pair)
        total += len(key[:8]) + pair[1]
    return total


def python_rate(seconds: float, clock: Callable[[], float] = time.perf_counter) -> float:
    """P: rounds per second of `_python_round` over 64 keys, on `clock` (wall time by default)."""
    keys = [bytes([i]) * 32 for i in range(64)]
    table: dict[bytes, _Record] = {}
    count, start = 0, clock()
    while clock() - start < seconds:
        _python_round(table, keys)
        count += 1
    return count / (clock() - start)


_P: float | None = None


def measure_python_rate(seconds: float = 2.0) -> float:
    """P for the whole run: measured once (over `seconds`), then cached."""
    global _P
    if _P is None:
        _P = python_rate(seconds)
    return _P


def record(name: str, figures: dict[str, Any]) -> None:
    data: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "python": platform.python_version()}
    data["V_verify_per_s_one_core"] = round(measure_verify_rate())
    data["P_python_reference_rounds_per_s_one_core"] = round(measure_python_rate())
    data["V_over_P"] = round(measure_verify_rate() / measure_python_rate(), 3)
    data[name] = figures
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n{name}:")
    for k, v in figures.items():
        print(f"  {k:<40} {v}")
