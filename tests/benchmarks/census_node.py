"""Run the `hearth` command with a census of its heap at each SIGUSR1 (a tool of profile_network.py):

    python -m tests.benchmarks.census_node OUT -- node start --home DIR

A census counts every object reachable from the modules, the threads' frames and the objects the
collector lists (so also what a node froze once it was loaded, `tune_garbage_collection`, and the
bytes, str and int objects no collector tracks), by type, with their sizes (`sys.getsizeof`, each
object once), beside `sys.getallocatedblocks()`, the frozen objects' count and the process's RSS.
profile_network has the load generator send SIGUSR1 as each step starts and ends, so the first
census is of a node that has carried no load yet and the last of one that carried it all: where
what a long-loaded node holds goes. A census of a loaded node takes seconds, in which the node does
nothing else: a tool for memory, not for timing (use cpu_phases_node for that). The censuses go to
OUT as JSON when the command ends; `census_summary` compares the first and the last.
"""

from __future__ import annotations

import gc
import json
import resource
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.benchmarks.hearth_in_process import run_hearth, wrapper_main

__all__ = ["census", "census_summary", "run_with_census"]


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__


def census() -> dict[str, Any]:
    """Objects by type: count and bytes (see the module docstring)."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    frames = []
    for frame in sys._current_frames().values():
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
    todo: list[object] = [*gc.get_objects(), *sys.modules.values(), *frames]  # the frozen ones are not listed: reached from these
    del frames
    seen = {id(obj) for obj in todo}
    seen.add(id(todo))
    while todo:
        obj = todo.pop()
        name = _type_name(obj)
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
        for ref in gc.get_referents(obj):
            if id(ref) not in seen:
                seen.add(id(ref))
                todo.append(ref)
    return {
        "frozen": gc.get_freeze_count(),
        "allocated_blocks": sys.getallocatedblocks(),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "objects": sum(counts.values()),
        "types": {name: [counts[name], sizes[name]] for name in counts},
    }


def run_with_census(out: Path, args: list[str]) -> None:
    """`hearth ARGS` in this process, a census at each SIGUSR1; the censuses written to `out`
    however it ends."""
    censuses: list[dict[str, Any]] = []
    signal.signal(signal.SIGUSR1, lambda *_: censuses.append(census()))
    try:
        run_hearth(args)
    finally:
        out.write_text(json.dumps(censuses))


def census_summary(path: Path, top: int = 30) -> dict[str, Any]:
    """The first and the last census of a result: totals, and the `top` types by bytes in the
    last, each with [count, bytes] in the first and in the last."""
    censuses = json.loads(path.read_text())
    if not censuses:
        return {"error": "no census taken"}
    first, last = censuses[0], censuses[-1]
    rows = sorted(last["types"].items(), key=lambda item: -item[1][1])[:top]
    return {
        "censuses": len(censuses),
        "objects": [first["objects"], last["objects"]],
        "frozen": [first["frozen"], last["frozen"]],
        "allocated_blocks": [first["allocated_blocks"], last["allocated_blocks"]],
        "max_rss_mib": [first["max_rss_mib"], last["max_rss_mib"]],
        "types_first_last": {name: [first["types"].get(name, [0, 0]), counts] for name, counts in rows},
    }


if __name__ == "__main__":
    wrapper_main("tests.benchmarks.census_node", run_with_census)
