"""One timed audit replay, shared by the replay benchmark (a chain of blocks of 1,000 transfers) and
the network benchmark (the chain its devnet produced, from a validator's stopped store): the rate as
a fraction of 2 x V, V measured right before and right after it (so that drift in a shared machine's
speed cancels out of the ratio), and the CPU time of the replay's process and of its pool."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

from cli.audit.replay import ReplayResult, replay
from cli.audit.sources import BlockSource
from tests.benchmarks.results import measure_verify_rate_now, verify_rate


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_replay(open_source: Callable[[], BlockSource], jobs: int) -> tuple[ReplayResult, dict[str, Any]]:
    """Replay the source `open_source()` gives (closed afterwards, if it can be) with `jobs`; the
    result, which the caller checks, and the figures of this one run."""
    source = open_source()
    try:
        v_before, v_cpu_before = measure_verify_rate_now(), verify_rate(0.25, time.process_time)
        start, cpu, pool = time.perf_counter(), time.process_time(), _children_cpu()
        result = replay(source, jobs=jobs)
        elapsed = time.perf_counter() - start
        cpu, pool = time.process_time() - cpu, _children_cpu() - pool  # the pool's workers are reaped by now
        v = (v_before + measure_verify_rate_now()) / 2
        v_cpu = (v_cpu_before + verify_rate(0.25, time.process_time)) / 2
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    txs = max(result.txs, 1)
    bound = max(cpu, (cpu + pool) / 2)
    return result, {
        "V_paired_per_s": round(v),
        "tx_per_s": round(result.txs / elapsed),
        "blocks_per_s": round(result.blocks / elapsed, 1),
        "fraction_of_2V": round(result.txs / elapsed / (2 * v), 3),
        # CPU time per transaction: the replay's own process (the in-order path) and its pool
        "main_cpu_us_per_tx": round(cpu / txs * 1e6, 1),
        "pool_cpu_us_per_tx": round(pool / txs * 1e6, 1),
        # with a pool: what that CPU time allows on two otherwise idle cores, for a shared machine
        "cpu_bound_fraction_of_2V": round(result.txs / bound / (2 * v_cpu), 3),
    }
