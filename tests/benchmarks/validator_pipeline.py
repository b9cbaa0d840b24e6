"""A validator's per-transfer work without the network (a tool, not a test): what a non-proposing
validator does with each transfer between receiving it and committing it, offline and in one
process, timed in phases of CPU time:

- checks: `prevalidate` (decoding and libsodium's signature check, once each);
- admission: `Mempool.add_prevalidated` (each transaction run on the pool's overlay);
- execution: `LedgerDB.execute` of the block with the pool's recorded effects;
- commit: `LedgerDB.commit` (one LevelDB batch, synced: the wait is not CPU time, the kernel's work is);
- update: the mempool's `update` and re-check, and the SignatureCache's forgetting.

Block i's transfers are admitted while block i-1 waits to be executed, as on a loaded node. The
blocks are the ledger benchmark's kind (tests/benchmarks/test_bench_ledger.py): transfers among
`--accounts` accounts, 2,000 senders, 200 of them members (settlement pays UBI too).

    python -m tests.benchmarks.validator_pipeline --blocks 40
    python -m tests.benchmarks.validator_pipeline --blocks 40 --copies 4

`--copies 4` runs four at once, as the network benchmark's four validators share the machine's two
cores; against one copy alone, it shows what that sharing costs each phase. The network's own
figures, with its RPC, gossip and consensus, come from `profile_network --cpu-phases`; this one is
steadier run to run (no network, no queue), for an A/B of a change to the ledger or the mempool.
tests/benchmarks/README.md has what it measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

PHASES = ("checks", "admission", "execution", "commit", "update")
SENDERS = 2_000


def run_pipeline(blocks: int, block_txs: int, accounts: int, directory: Path) -> dict[str, Any]:
    """Run `blocks` blocks through the pipeline over a new store in `directory`; µs of CPU per
    transfer in each phase, and what the ledger ends at."""
    from consensus.node import GC_THRESHOLDS
    from ledger import LedgerDB, LevelDBStore
    from ledger.crypto import Keypair
    from tests.benchmarks.test_bench_ledger import _blocks, _genesis

    senders = [Keypair.from_seed(i.to_bytes(32, "big")) for i in range(1, min(SENDERS, accounts) + 1)]
    db = LedgerDB(LevelDBStore(str(directory)), _genesis(accounts, senders))
    txs_by_block = _blocks(senders, blocks, accounts, block_txs)  # the ledger benchmark's kind of block
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.collect()
    gc.freeze()  # as a node does once loaded (consensus/node.py, tune_garbage_collection)
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return _timed(db, txs_by_block, blocks, block_txs, accounts)
    finally:  # the caller's process as it was (a test's)
        gc.set_threshold(*thresholds)
        if not frozen:  # else what the caller froze would thaw with what this froze
            gc.unfreeze()
        db.store.close()


def _timed(db: Any, txs_by_block: list[list[bytes]], blocks: int, block_txs: int, accounts: int) -> dict[str, Any]:
    from consensus.mempool import Mempool
    from consensus.verifier import prevalidate
    from ledger import BlockInput
    from ledger.tx import SignatureCache, Tx
    from tests.benchmarks.test_bench_ledger import CHAIN

    cache = SignatureCache()
    pool = Mempool(db, cache)
    clock = time.process_time
    spent = dict.fromkeys(PHASES, 0.0)
    waiting: list[bytes] | None = None
    executed_txs = 0
    for raws in txs_by_block + [[]]:  # an empty turn at the end executes the last block
        start = clock()
        checked = prevalidate(raws, CHAIN)
        for tx in checked:  # as the node's InlineChecks does; the pool's remember is then a lookup
            if type(tx) is Tx:
                cache.remember(tx)
        checks_done = clock()
        pool.add_prevalidated(checked)
        pool.drain_added()  # what gossip would take
        admitted = clock()
        spent["checks"] += checks_done - start
        spent["admission"] += admitted - checks_done
        if waiting is not None:
            head = db.head
            block = BlockInput(head.height + 1, (head.height + 1) * 1_000, tuple(waiting))
            start = clock()
            executed = db.execute(block, cache, pool.known_effects())
            done_executing = clock()
            db.commit(executed)
            committed = clock()
            pool.update([tx.hash for tx in executed.txs])
            cache.forget_decoded(executed.txs)
            updated = clock()
            spent["execution"] += done_executing - start
            spent["commit"] += committed - done_executing
            spent["update"] += updated - committed
            executed_txs += len(executed.txs)
        waiting = raws
    transfers = blocks * block_txs
    return {
        "blocks": blocks,
        "block_txs": block_txs,
        "accounts": accounts,
        "executed_txs": executed_txs,
        "height": db.head.height,
        "pending_after": len(pool),
        "us_per_transfer": {name: round(spent[name] / transfers * 1e6, 2) for name in PHASES},
        "us_per_transfer_all": round(sum(spent.values()) / transfers * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--block-txs", type=int, default=900, help="transfers a block (a loaded devnet's: 900-3,000; the figures in tests/benchmarks/README.md are of 900)")
    parser.add_argument("--accounts", type=int, default=10_000, help="the network benchmark's 10,000 by default")
    parser.add_argument("--copies", type=int, default=1, help="pipelines run at once, each its own process")
    args = parser.parse_args()
    for name in ("blocks", "block_txs", "accounts", "copies"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.copies == 1:
        with tempfile.TemporaryDirectory(prefix="hearth-pipeline-") as directory:
            print(json.dumps(run_pipeline(args.blocks, args.block_txs, args.accounts, Path(directory))))
        return
    command = [sys.executable, "-m", "tests.benchmarks.validator_pipeline", "--blocks", str(args.blocks),
               "--block-txs", str(args.block_txs), "--accounts", str(args.accounts)]
    copies = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(args.copies)]
    results = []
    try:
        for copy in copies:
            out, _ = copy.communicate(timeout=3_600)
            if copy.returncode != 0:
                raise SystemExit(f"a copy failed with exit code {copy.returncode}")
            results.append(json.loads(out))
    finally:  # a failed or timed-out copy leaves none of the others running
        for copy in copies:
            if copy.poll() is None:
                copy.kill()
                copy.wait()
    print(json.dumps({"copies": args.copies, "each": results}))


if __name__ == "__main__":
    main()
