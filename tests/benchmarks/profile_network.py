"""Profiling harness for the network benchmark (a tool, not a test): the benchmark's devnet and load
generator at offered rates you choose, and what a profile needs beside the latency figures:

    python -m tests.benchmarks.profile_network --rates 2900 --seconds 40
    python -m tests.benchmarks.profile_network --fractions 0.3 --seconds 40 --perf v2
    python -m tests.benchmarks.profile_network --rates 2500,2900 --py-spy v2 --dir /tmp/prof
    python -m tests.benchmarks.profile_network --rates 2500 --seconds 30 --cprofile v2
    python -m tests.benchmarks.profile_network --rates 2500 --seconds 40 --cpu-phases v2
    python -m tests.benchmarks.profile_network --rates 1200,2400,3600,4800 --seconds 60 --census v2

For each step: the load generator's figures (tests/benchmarks/loadgen.py). For each validator over the
whole load: CPU per committed transfer (its signature workers included), its main process's user and
system time, context switches (voluntary, involuntary: preemptions) of the node and its workers, and a
summary of its per-height timeline from the `steps_ms` of its commit lines (`height_segments`): how
long after the height's start the block arrived (or was proposed), the precheck of its signatures,
execution up to the prevote, the wait for the quorum, and the commit. And what its `status` counts over its
life (`node_counters`): signatures checked and answered from its cache (one check per transaction
is the design), its mempool's admissions and re-checks, transactions received from peers. Then, as the benchmark does,
the same block hash and state root on every node and supply conserved.

--cprofile NAME runs that validator under cProfile with a CPU-time clock for the whole load
(tests/benchmarks/cprofile_node.py) and prints calls per committed transfer, in all and per
function: the count of calls is exact, where sampling profilers on an oversubscribed machine charge
functions for the time spent waiting for a core. Its times are not: its own cost per call inflates
small functions several times over. --cpu-phases NAME runs that validator with its main thread's
real CPU time split into phases (tests/benchmarks/cpu_phases_node.py: each event-loop callback, and
a few dozen methods inside them) and prints µs per committed transfer for each, over the last step
alone (the load generator sends it SIGUSR1 snapshots as each step starts and ends): figures that add up.
--census NAME runs that validator with a census of its heap at each step's start and end
(tests/benchmarks/census_node.py: objects by type, count and bytes) and prints the first against
the last: what a node holds after carrying the load. --py-spy NAME (py-spy on PATH: `pip install
py-spy`) or --perf NAME (Debian's linux-perf; cpu-clock samples, so it works without hardware
counters) records that validator's main process for --profile-seconds (at --profile-rate samples a
second), starting --profile-delay seconds into the load; the output lands in --dir.
The devnet and its node logs stay in --dir (default: a new temporary directory, printed).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from devnet.layout import validator_names
from devnet.network import Devnet
from devnet.processes import rpc
from tests.benchmarks.bench_devnet import ACCOUNTS, VALIDATORS, agreement, children, create_bench_devnet, process_cpu_s, tree_cpu_s
from tests.benchmarks.census_node import census_summary
from tests.benchmarks.cprofile_node import calls_per_transfer
from tests.benchmarks.cpu_phases_node import phases_per_transfer
from tests.benchmarks.results import measure_verify_rate

ROOT = Path(__file__).resolve().parents[2]
SEGMENTS = ("arrive", "precheck", "execute", "quorum", "commit", "total")
_COMMIT_LINE = re.compile(r"committed height=(\d+) .*?txs=(\d+) .*?round=(\d+) .*?steps_ms=(\S+)")


def node_counters(status: dict[str, Any]) -> dict[str, Any]:
    """What a validator's `status` counts over its life: signatures checked and answered from its
    cache, its mempool's admissions and re-checks, transactions received from peers."""
    node_stats = status.get("node_stats", {})
    return {
        "signature_checks": status.get("signature_checks"),
        "mempool": status.get("mempool"),
        "txs_received": node_stats.get("txs_received"),
        "tx_batches_dropped": node_stats.get("tx_batches_dropped"),
    }


class Height(NamedTuple):
    """One commit line of a node log."""

    height: int
    txs: int
    round: int
    """The round that decided it: beyond 0 the marks mix rounds (a nil prevote of round 0 may come
    before the block of round 1), so `summarize_heights` counts such heights apart."""
    segments: dict[str, int]


def height_segments(line: str) -> Height | None:
    """The height, transactions, round and milliseconds per segment of a node log's commit line, or
    None for any other line (or a commit with no timeline, from block sync). Segments, from the marks
    the node logs: arrive: start to the block (`proposed` on the proposer, `block_frame` elsewhere);
    precheck: to `block` (its unseen signatures checked); execute: to `prevote`; quorum: to `decided`;
    commit: to `done`; total: start to `done`. A mark the height did not reach counts as the one before it."""
    match = _COMMIT_LINE.search(line)
    if match is None or match.group(4) == "-":
        return None
    marks = {name: int(ms) for name, ms in (pair.split("=") for pair in match.group(4).split(","))}
    arrive = marks.get("proposed", marks.get("block_frame", 0))
    block = marks.get("block", arrive)
    prevote = marks.get("prevote", block)
    decided = marks.get("decided", prevote)
    done = marks.get("done", decided)
    segments = {"arrive": arrive, "precheck": block - arrive, "execute": prevote - block, "quorum": decided - prevote, "commit": done - decided, "total": done}
    return Height(int(match.group(1)), int(match.group(2)), int(match.group(3)), segments)


def summarize_heights(rows: list[Height]) -> dict[str, Any]:
    """Mean, 90th percentile and maximum of each segment over the heights of `rows` decided in round
    0, their mean block size, and how many were decided in a later round."""
    first = [r for r in rows if r.round == 0]
    summary: dict[str, Any] = {"heights": len(first), "later_round_heights": len(rows) - len(first)}
    if not first:
        return summary
    summary["txs_mean"] = round(statistics.mean(r.txs for r in first))
    for name in SEGMENTS:
        values = sorted(r.segments[name] for r in first)
        summary[name] = {"mean": round(statistics.mean(values)), "p90": values[int(0.9 * (len(values) - 1))], "max": values[-1]}
    return summary


def context_switches(pids: list[int]) -> dict[int, tuple[int, int]]:
    """(voluntary, involuntary) context switches of each process in `pids`, its threads and its children."""
    out = {}
    for pid, kids in children(pids).items():
        voluntary = involuntary = 0
        for proc in [pid, *kids]:
            for status in Path(f"/proc/{proc}/task").glob("*/status"):
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("voluntary_ctxt_switches"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            involuntary += int(line.split()[1])
                except OSError:
                    continue
        out[pid] = (voluntary, involuntary)
    return out


def _profiler(kind: str, pid: int, seconds: float, output: Path, rate: int) -> list[str]:
    if kind == "py-spy":
        return ["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate), "-f", "raw", "-o", str(output), "--nonblocking"]
    return ["perf", "record", "-F", str(rate), "-e", "cpu-clock", "-g", "-p", str(pid), "-o", str(output), "--", "sleep", str(seconds)]


def _restart_profiled(net: Devnet, name: str, stats: Path, wrapper: str = "cprofile_node") -> None:
    """Validator `name` again, under `wrapper` (cprofile_node, cpu_phases_node or census_node; its
    command line still names its home, so the devnet stops it as any other), caught up with the
    others before the load starts."""
    net.stop(name)
    entry = net.reload().validator(name)
    with open(Path(entry.home) / "node.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"tests.benchmarks.{wrapper}", str(stats), "--", "node", "start", "--home", entry.home],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    net.manifest = net.reload().with_pid(name, process.pid)
    net.manifest.save()
    net.wait_answering(name)
    others = [e for e in net.reload().validators if e.name != name]
    net.wait_for_height(max(rpc(e, "status")["height"] for e in others), timeout_s=60, names=[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rates = parser.add_mutually_exclusive_group(required=True)
    rates.add_argument("--rates", help="offered transfers/s, comma-separated")
    rates.add_argument("--fractions", help="offered rates as fractions of L = 2V/4, comma-separated")
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds per step")
    parser.add_argument("--dir", type=Path, help="where the devnet and profiles go (default: a new temporary directory)")
    parser.add_argument("--tx-index", action="store_true", help="validators keep the transaction indexes (the benchmark's do not)")
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--py-spy", metavar="NAME", help="record validator NAME with py-spy")
    profile.add_argument("--perf", metavar="NAME", help="record validator NAME with perf")
    profile.add_argument("--cprofile", metavar="NAME", help="run validator NAME under cProfile with a CPU-time clock, for the whole load")
    profile.add_argument("--cpu-phases", metavar="NAME", help="run validator NAME with its main thread's CPU time split into phases, over the last step")
    profile.add_argument("--census", metavar="NAME", help="run validator NAME with a census of its heap as each step starts and ends")
    parser.add_argument("--profile-delay", type=float, default=8.0)
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--profile-rate", type=int, help="samples per second (default: py-spy 50, perf 499)")
    args = parser.parse_args()
    kind, target = ("py-spy", args.py_spy) if args.py_spy else ("perf", args.perf) if args.perf else (None, None)
    if kind is not None and shutil.which(kind) is None:
        parser.error(f"{kind} is not on PATH")
    wrapped = args.cprofile or args.cpu_phases or args.census
    for name in (target, wrapped):
        if name is not None and name not in validator_names(VALIDATORS):
            parser.error(f"no validator {name!r}: the devnet's are {', '.join(validator_names(VALIDATORS))}")
    out_dir = args.dir or Path(tempfile.mkdtemp(prefix="hearth-profile-"))
    if (out_dir / "net").exists():
        parser.error(f"{out_dir / 'net'} exists: give a new --dir")
    out_dir.mkdir(parents=True, exist_ok=True)

    v = measure_verify_rate()
    limit = 2 * v / VALIDATORS
    offered = args.rates if args.rates else ",".join(str(round(float(f) * limit)) for f in args.fractions.split(","))
    print(f"V {v:.0f}/s, L {limit:.0f}/s, offered {offered}/s, {args.seconds:.0f} s a step; devnet in {out_dir / 'net'}", flush=True)
    net = create_bench_devnet(out_dir / "net", tx_index=args.tx_index)
    generator = recorder = None
    try:
        net.start_all()
        net.wait_for_height(3, timeout_s=60)
        if wrapped is not None:
            output_name, wrapper = (
                ("cprofile.stats", "cprofile_node") if args.cprofile else ("cpu-phases.json", "cpu_phases_node") if args.cpu_phases else ("census.json", "census_node")
            )
            _restart_profiled(net, wrapped, out_dir / output_name, wrapper)
        entries = net.reload().validators
        pids = [e.pid for e in entries if e.pid is not None]
        by_pid = {e.pid: e for e in entries}
        heights_before = {e.name: rpc(e, "status")["height"] for e in entries}
        cpu_before, user_sys_before, switches_before = tree_cpu_s(pids), {p: process_cpu_s(p) for p in pids}, context_switches(pids)
        steps = len(offered.split(","))
        signalled = args.cpu_phases or args.census
        phased = next((e.pid for e in entries if e.name == signalled), None) if signalled else None
        window = ["--window-pid", str(phased)] if phased is not None else []  # its snapshots (or censuses): each step's start and end
        generator = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.loadgen", "--devnet", str(out_dir / "net"), "--accounts", str(ACCOUNTS),
             "--seconds", str(args.seconds), "--rates", offered, "--out", str(out_dir / "loadgen.json"), "--no-half", *window],
            cwd=ROOT,
        )
        output = out_dir / ("py-spy.txt" if kind == "py-spy" else "perf.data")
        if kind is not None:
            time.sleep(args.profile_delay)
            pid = next(p for p, e in by_pid.items() if e.name == target)
            recorder = subprocess.Popen(_profiler(kind, pid, args.profile_seconds, output, args.profile_rate or (50 if kind == "py-spy" else 499)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if generator.wait(timeout=steps * (args.seconds + 130) + 120) != 0:
            raise SystemExit(f"the load generator failed (exit {generator.returncode}); see its output above")
        profiled = None
        if recorder is not None:
            _, errors = recorder.communicate(timeout=args.profile_seconds + 60)
            profiled = output if recorder.returncode == 0 and output.exists() else f"{kind} failed (exit {recorder.returncode}): {errors.strip()[-500:]}"
        cpu_after, switches_after = tree_cpu_s(pids), context_switches(pids)
        result = json.loads((out_dir / "loadgen.json").read_text())
        committed = sum(step["committed"] for step in result["steps"])
        for step in result["steps"]:
            print(json.dumps({k: step[k] for k in ("offered_per_s", "committed_per_s", "kept_up", "latency_p50_s", "latency_p99_s", "latency_max_s", "refused", "generator_cpu_s")}))
        for pid in pids:
            user, system = (now - then for now, then in zip(process_cpu_s(pid), user_sys_before[pid]))
            voluntary, involuntary = (now - then for now, then in zip(switches_after[pid], switches_before[pid]))
            entry = by_pid[pid]
            log = Path(entry.home) / "node.log"
            rows = [r for r in map(height_segments, log.read_text().splitlines()) if r is not None and r.height > heights_before[entry.name]]
            print(json.dumps({
                "validator": entry.name,
                "cpu_us_per_committed_tx": round((cpu_after[pid] - cpu_before[pid]) / max(committed, 1) * 1e6),
                "main_process_user_s": round(user, 2), "main_process_system_s": round(system, 2),
                "context_switches_voluntary": voluntary, "context_switches_involuntary": involuntary,
                "heights_ms": summarize_heights(rows),
                "node": node_counters(rpc(entry, "status")),
            }))
        print(json.dumps(agreement(net.reload().validators)))
        if kind is not None:
            print(f"{kind} profile of {target}: {profiled}")
        if args.cprofile is not None:
            net.stop(args.cprofile)  # SIGTERM: the node ends cleanly, and the profile is written
            stats = out_dir / "cprofile.stats"
            summary = calls_per_transfer(stats, committed) if stats.exists() else "no profile written"
            print(json.dumps({"cprofile_of": args.cprofile, "stats": str(stats), **(summary if isinstance(summary, dict) else {"error": summary})}))
        if args.cpu_phases is not None:
            net.stop(args.cpu_phases)  # SIGTERM: the node ends cleanly, and its phases are written
            phases = out_dir / "cpu-phases.json"
            last = result["steps"][-1]  # the window between the last two snapshots is the last step's
            found = phases_per_transfer(phases, last["committed"]) if phases.exists() else {"error": "no phases written"}
            print(json.dumps({"cpu_phases_of": args.cpu_phases, "step_offered_per_s": last["offered_per_s"], "file": str(phases), **found}))
        if args.census is not None:
            net.stop(args.census)  # SIGTERM: the node ends cleanly, and its censuses are written
            censuses = out_dir / "census.json"
            found = census_summary(censuses) if censuses.exists() else {"error": "no census written"}
            print(json.dumps({"census_of": args.census, "file": str(censuses), **found}))
    finally:
        for process in (recorder, generator):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        net.stop_all()


if __name__ == "__main__":
    main()
