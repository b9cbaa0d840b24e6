"""Ledger apply rate on one core (issue 3, issue 9 item 1 and 4).

Targets (V = PyNaCl verifications/s on one core, measured in the same run):
- signed transfers applied per second, blocks of 1,000, signatures verified, state root and one
  LevelDB batch per block included: >= 0.60 V
- per-block time with 1,000,000 accounts in the store within 1.5x of the time with 10,000.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from ledger import BlockInput, Genesis, LedgerDB, LevelDBStore, make_tx
from ledger.constants import RATE_SCALE
from ledger.crypto import Keypair
from tests.benchmarks.results import measure_verify_rate, measure_verify_rate_now, record

CHAIN = "hearth-bench"
BLOCK_TXS = 1_000
SENDERS = 2_000


def _genesis(accounts: int, senders: list[Keypair]) -> Genesis:
    """`accounts` funded accounts; the first 200 senders are members of one city-state node, so
    settlement pays UBI as well as demurrage."""
    council = [Keypair.from_seed(bytes([0xC0 + i]) * 32) for i in range(3)]
    entries = [{"address": kp.address.hex(), "balance": 10**9} for kp in senders]
    entries += [{"address": (i.to_bytes(8, "big") * 4).hex(), "balance": 1} for i in range(accounts - len(senders))]
    total = sum(e["balance"] for e in entries) + 10**12
    doc = {
        "chain_id": CHAIN,
        "genesis_time_ms": 0,
        "params": {"period_seconds": 60, "demurrage_rate": RATE_SCALE // 10_000, "ubi_fraction": RATE_SCALE // 100, "slash_fraction": 0},
        "total_supply": total,
        "commons_pool": 10**12,
        "accounts": entries,
        "validators": [],
        "resources": [],
        "housing": {},
        "nodes": [
            {
                "id": "bench",
                "council": {"keys": [kp.address.hex() for kp in council], "threshold": 2},
                "members": [kp.address.hex() for kp in senders[:200]],
                "caps": {},
                "providers": [],
                "units": [],
            }
        ],
    }
    return Genesis.from_document(doc, keep_document=False)  # as a node loads it: from_file keeps no document


def _blocks(senders: list[Keypair], count: int, recipients: int, block_txs: int = BLOCK_TXS) -> list[list[bytes]]:
    """Pre-signed transfers: each sender sends in turn, to recipients spread over the state."""
    nonces = [0] * len(senders)
    blocks, n = [], 0
    for _ in range(count):
        txs = []
        for _ in range(block_txs):
            s = n % len(senders)
            to = ((n * 7919) % recipients).to_bytes(8, "big") * 4
            txs.append(make_tx(CHAIN, "transfer", senders[s], nonces[s], to=to, amount=1 + n % 1000))
            nonces[s] += 1
            n += 1
        blocks.append(txs)
    return blocks


def _run(tmp: Path, accounts: int, block_count: int, paired_v: list[float] | None = None) -> list[float]:
    """Apply `block_count` blocks; return each block's time. With `paired_v`, V is measured just
    before each block and appended there."""
    senders = [Keypair.from_seed(i.to_bytes(32, "big")) for i in range(1, SENDERS + 1)]
    db = LedgerDB(LevelDBStore(tempfile.mkdtemp(prefix=f"db{accounts}-", dir=tmp)), _genesis(accounts, senders))  # a new store per run
    blocks = _blocks(senders, block_count, accounts)
    times = []
    for i, txs in enumerate(blocks):
        if paired_v is not None:
            paired_v.append(measure_verify_rate_now())
        start = time.perf_counter()
        executed = db.execute(BlockInput(i + 1, (i + 1) * 7_000, tuple(txs)))  # a new period every few blocks
        db.commit(executed)
        times.append(time.perf_counter() - start)
    db.store.close()
    return times


def test_apply_rate_and_scale(tmp_path: Path) -> None:
    v = measure_verify_rate()
    paired_v: list[float] = []
    small = _run(tmp_path, 10_000, 12, paired_v)
    rate = BLOCK_TXS / statistics.median(small)
    # each block's rate against the V measured right before it: machine drift cancels
    fractions = [BLOCK_TXS / t / pv for t, pv in zip(small, paired_v)]
    big_accounts = int(os.environ.get("HEARTH_BENCH_ACCOUNTS", "1000000"))
    big = _run(tmp_path, big_accounts, 12)
    ratio = statistics.median(big) / statistics.median(small)
    record(
        "ledger_apply",
        {
            "V_verify_per_s": round(v),
            "apply_tx_per_s": round(rate),
            "apply_fraction_of_V": round(statistics.median(fractions), 3),
            "apply_fraction_of_V_per_block_min_max": [round(min(fractions), 3), round(max(fractions), 3)],
            "apply_target_fraction": 0.60,
            "block_ms_10k_accounts": round(1000 * statistics.median(small), 1),
            f"block_ms_{big_accounts}_accounts": round(1000 * statistics.median(big), 1),
            "scale_ratio": round(ratio, 2),
            "scale_target_ratio_max": 1.5,
        },
    )
