"""Where a devnet's capacity goes once it has carried load (a tool, not a test): two steps of the
network benchmark's load at one rate on one bench devnet, with the validators restarted between them
(same stores, new processes) or not, and each step's latency and CPU per committed transfer:

    python -m tests.benchmarks.capacity_over_time --rate 4800 --restart --dir /tmp/cap-restart
    python -m tests.benchmarks.capacity_over_time --rate 4800 --dir /tmp/cap-same

A second step that costs more than the first without the restart and as much as it with one puts
the cost in the nodes' processes (their heaps and caches), not in their stores. README.md
"Capacity over time" has the figures. The second step's generator reads the nonces the first one
used from the chain (`loadgen --resume`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from devnet.processes import rpc
from tests.benchmarks.bench_devnet import ACCOUNTS, create_bench_devnet, tree_cpu_s

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, required=True, help="offered transfers/s of both steps")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per step")
    parser.add_argument("--restart", action="store_true", help="restart the validators between the steps")
    parser.add_argument("--dir", type=Path, required=True, help="a new directory for the devnet and the steps' results")
    args = parser.parse_args()
    if args.dir.exists():
        parser.error(f"{args.dir} exists: give a new --dir")
    args.dir.mkdir(parents=True)
    net = create_bench_devnet(args.dir / "net")
    try:
        net.start_all()
        net.wait_for_height(3, timeout_s=60)
        for step in range(2):
            restarted = bool(step and args.restart)
            if restarted:
                net.stop_all()
                net.start_all()
                head = rpc(net.reload().validators[0], "status")["height"]
                net.wait_for_height(head + 3, timeout_s=120)
            pids = [e.pid for e in net.reload().validators if e.pid is not None]
            before = tree_cpu_s(pids)
            out = args.dir / f"step{step}.json"
            subprocess.run(
                [sys.executable, "-m", "tests.benchmarks.loadgen", "--devnet", str(args.dir / "net"), "--accounts", str(ACCOUNTS),
                 "--seconds", str(args.seconds), "--rates", str(args.rate), "--out", str(out), "--no-half", *(["--resume"] if step else [])],
                cwd=ROOT, check=True, timeout=args.seconds + 600,
            )
            after = tree_cpu_s(pids)
            result = json.loads(out.read_text())["steps"][0]
            print(json.dumps({
                "step": step, "restarted_before": restarted, "committed_per_s": result["committed_per_s"], "kept_up": result["kept_up"],
                "latency_p50_s": result["latency_p50_s"], "latency_p99_s": result["latency_p99_s"], "blocks": result["blocks"],
                "cpu_us_per_committed_tx": [round((after[p] - before[p]) / max(result["committed"], 1) * 1e6) for p in pids],
            }), flush=True)
    finally:
        net.stop_all()


if __name__ == "__main__":
    main()
