"""Shared by benchmarks: the physical limit V (PyNaCl ed25519 verifications/s on one core) and the
results file `bench-results.json`, which records V, each figure, and each figure's fraction of its limit.

Beside V it records P, a fixed pure-Python workload's rate on one core (`python_rate`): the targets
are fractions of V, which assumes the interpreter and libsodium change speed together from one machine
to another, and they need not (one VM measured V 20% higher than another at the same interpreter
speed, so every Python-bound figure fell as a fraction of V). V/P in two runs tells such a machine
effect apart from a change in the code. M, a reference that reads a table larger than a core's
own caches (`memory_rate`), is meant to show the other machine effect seen: the shared cache and
memory slowed by other tenants."""

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
_MEASURED: dict[str, float] = {}
"""V, P and M for the whole run, by name: each measured once, on first use."""


def _measured_once(name: str, measure: Callable[[float], float], seconds: float) -> float:
    if name not in _MEASURED:
        _MEASURED[name] = measure(seconds)
    return _MEASURED[name]


def verify_rate(seconds: float, clock: Callable[[], float] = time.perf_counter) -> float:
    """PyNaCl ed25519 verifications per second of `clock` (wall time by default; give
    time.process_time for V per CPU second), on transfer-sized messages, over `seconds`."""
    key = nacl.signing.SigningKey(b"\x07" * 32)
    verify_key = key.verify_key
    signed = [(m, key.sign(m).signature) for m in (bytes([i]) * 150 for i in range(64))]

    def verify_all(_: int) -> int:
        for m, sig in signed:
            verify_key.verify(m, sig)
        return len(signed)

    return _per_second(verify_all, seconds, clock)


def _per_second(step: Callable[[int], int], seconds: float, clock: Callable[[], float]) -> float:
    """Units per second of `clock` of `step` (given how many units are done, it does some and says
    how many), repeated for `seconds`."""
    count, start = 0, clock()
    while clock() - start < seconds:
        count += step(count)
    return count / (clock() - start)


def measure_verify_rate(seconds: float = 2.0) -> float:
    """V for the whole run: measured once (over `seconds`), then cached."""
    return _measured_once("V", verify_rate, seconds)


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

    def one_round(_: int) -> int:
        _python_round(table, keys)
        return 1

    return _per_second(one_round, seconds, clock)


_MEMORY_TABLE_KEYS = 1 << 18
"""Entries of the memory reference's table: with their records some 60 MB, more than a core's own
caches hold, as the ledger's state, caches and Merkle levels are."""
_MEMORY_ROUND_KEYS = 4096


def _memory_table() -> tuple[dict[bytes, _Record], list[list[bytes]]]:
    """The memory reference's table, and the keys of its rounds: 64 rounds of 4,096 keys that
    between them read every entry once, each key far in memory from the one before."""
    table = {i.to_bytes(4, "big") * 8: _Record(i, 0) for i in range(_MEMORY_TABLE_KEYS)}
    step = 40_503  # odd, so i * step mod 2**18 visits every entry once
    order = [((i * step) % _MEMORY_TABLE_KEYS).to_bytes(4, "big") * 8 for i in range(_MEMORY_TABLE_KEYS)]
    return table, [order[i : i + _MEMORY_ROUND_KEYS] for i in range(0, _MEMORY_TABLE_KEYS, _MEMORY_ROUND_KEYS)]


def _memory_round(table: dict[bytes, _Record], keys: list[bytes]) -> int:
    """One round of the memory reference: a read of each key's record and of its fields (the shape
    of the ledger's state reads, each far from the last in memory). Fixed forever, as P's round."""
    total = 0
    for key in keys:
        record = table[key]
        total += record.balance - record.nonce
    return total


def memory_rate(seconds: float, clock: Callable[[], float] = time.perf_counter) -> float:
    """M: rounds per second of `_memory_round`, the rounds in turn, so that every 64 of them read
    the whole 60 MB table (its reads come from the processor's shared last-level cache or from
    memory, not from a core's own caches), on `clock`. P runs in a core's first-level cache and V
    nearly so. On a shared VM, other tenants' use of the shared cache and memory can slow the
    ledger's Python (its state is tens of MB) while V and P stay put: this session's VM ran the
    ledger benchmark 25% slower within an hour at the same V and P. M is meant to show that."""
    table, rounds = _memory_table()

    def next_round(done: int) -> int:
        _memory_round(table, rounds[done % len(rounds)])
        return 1

    return _per_second(next_round, seconds, clock)


def measure_memory_rate(seconds: float = 2.0) -> float:
    """M for the whole run: measured once (over `seconds`), then cached."""
    return _measured_once("M", memory_rate, seconds)


def measure_python_rate(seconds: float = 2.0) -> float:
    """P for the whole run: measured once (over `seconds`), then cached."""
    return _measured_once("P", python_rate, seconds)


def record(name: str, figures: dict[str, Any]) -> None:
    data: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "python": platform.python_version()}
    data["V_verify_per_s_one_core"] = round(measure_verify_rate())
    data["P_python_reference_rounds_per_s_one_core"] = round(measure_python_rate())
    data["V_over_P"] = round(measure_verify_rate() / measure_python_rate(), 3)
    data["M_memory_reference_rounds_per_s_one_core"] = round(measure_memory_rate())
    data[name] = figures
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n{name}:")
    for k, v in figures.items():
        print(f"  {k:<40} {v}")
