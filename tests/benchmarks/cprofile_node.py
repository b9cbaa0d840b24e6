"""Run the `hearth` command under cProfile with a CPU-time clock (a tool of profile_network.py):

    python -m tests.benchmarks.cprofile_node OUT -- node start --home DIR

The statistics go to OUT when the command ends (a node ends cleanly on SIGTERM). The clock is the
main thread's CPU time, not the wall clock: on a machine whose cores are shared by more processes
than it has, a wall-clock profile charges each function for the time its process waited for a core
(a socket write that wakes the reader, say), and names the wrong places. The profiler's own cost
per call is large with this clock, so its times overstate small functions; the call counts are exact.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path

from tests.benchmarks.hearth_in_process import run_hearth, wrapper_main

__all__ = ["calls_per_transfer", "run_profiled"]


def run_profiled(out: Path, args: list[str]) -> None:
    """`hearth ARGS` in this process, profiled; the statistics written to `out` however it ends."""
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        run_hearth(args)
    finally:
        profile.disable()
        profile.dump_stats(str(out))


def calls_per_transfer(stats_path: Path, transfers: int, top: int = 30) -> dict[str, object]:
    """From a profile: calls per transfer in all and of Python functions, and the `top` functions by
    calls per transfer, each with its own profiled CPU µs per transfer."""
    stats = pstats.Stats(str(stats_path))
    rows = []
    for (file, line, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = name if file == "~" else f"{Path(file).name}:{line}({name})"
        rows.append((calls, own, label, file != "~"))
    rows.sort(key=lambda r: -r[0])
    n = max(transfers, 1)
    return {
        "calls_per_transfer": round(sum(r[0] for r in rows) / n, 1),
        "python_calls_per_transfer": round(sum(r[0] for r in rows if r[3]) / n, 1),
        "top": [[round(calls / n, 2), round(own / n * 1e6, 2), label] for calls, own, label, _ in rows[:top]],
    }


if __name__ == "__main__":
    wrapper_main("tests.benchmarks.cprofile_node", run_profiled)
