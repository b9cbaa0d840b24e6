"""`select_block_txs` with `KnownEffects` (ledger/transition.py): a recorded effect is applied only
where nothing before it may have changed what it read, and a candidate that now does something else
than recorded makes every later record that touches its keys run again.

The records here are deliberately wrong where the rule must not trust them: a build that applied one
of them would differ from the build that runs every candidate. (tests/node/test_mempool.py checks,
with hypothesis, that the records a real mempool keeps give the very block a full build gives.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger import BlockInput, SignatureCache, decode_tx
from ledger.records import Account, account_key
from ledger.transition import KnownEffects
from tests.ledger.helpers import key, make_genesis, new_ledger, transfer_tx


@dataclass
class Record:
    tx: Any
    keys: frozenset[bytes] | None
    writes: dict[bytes, Any]


def _setup(raws: list[bytes]) -> tuple[Any, SignatureCache]:
    ledger = new_ledger(make_genesis({i: 1_000_000 for i in range(1, 7)}, validators={6: 5_000_000}))
    cache = SignatureCache()
    for raw in raws:
        cache.remember(decode_tx(raw))
    return ledger, cache


def _lie(raw: bytes, *accounts: int) -> Record:
    """A record of `raw` touching `accounts`, whose writes are wrong (balance 7 each)."""
    keys = frozenset(account_key(key(i).address) for i in accounts)
    return Record(decode_tx(raw), keys, {k: Account(7, 9, 0) for k in keys})


def _builds(raws: list[bytes], records: list[Record]) -> tuple[Any, Any]:
    ledger, cache = _setup(raws)
    block = BlockInput(1, 2, (), (key(6).address,))  # the slash writes validator 6's account
    head = ledger.head
    known = KnownEffects(head.height, head.period, records)
    return ledger.build(block, raws, cache, known), ledger.build(block, raws, cache)


def test_a_rerun_that_writes_otherwise_makes_later_records_touching_its_keys_run_again() -> None:
    first = transfer_tx(6, 4, 10, 0)  # touches 6, which the slash wrote: runs, writes otherwise than recorded
    second = transfer_tx(4, 1, 10, 0)  # its record is a lie; account 4 was written otherwise just before
    reused, rerun = _builds([first, second], [_lie(first, 6, 4), _lie(second, 4, 1)])
    assert reused.state_root == rerun.state_root and reused.encoded == rerun.encoded


def test_a_candidate_that_now_fails_makes_later_records_touching_its_recorded_keys_run_again() -> None:
    first = transfer_tx(6, 4, 10**12, 0)  # more than 6 holds: fails, though its record says it applied
    second = transfer_tx(4, 1, 10, 0)
    reused, rerun = _builds([first, second], [_lie(first, 6, 4), _lie(second, 4, 1)])
    assert list(rerun.block.txs) == [second]
    assert reused.block == rerun.block and reused.state_root == rerun.state_root


def test_records_of_another_head_or_a_new_period_are_not_used() -> None:
    raw = transfer_tx(1, 2, 10, 0)
    ledger, cache = _setup([raw])
    head = ledger.head
    truth = ledger.build(BlockInput(1, 2, ()), [raw], cache)
    for known in (KnownEffects(head.height + 1, head.period, [_lie(raw, 1, 2)]), KnownEffects(head.height, head.period + 1, [_lie(raw, 1, 2)])):
        assert ledger.build(BlockInput(1, 2, ()), [raw], cache, known).state_root == truth.state_root
    new_period = BlockInput(1, 10**9, ())
    assert ledger.build(new_period, [raw], cache, KnownEffects(head.height, head.period, [_lie(raw, 1, 2)])).state_root == ledger.build(new_period, [raw], cache).state_root
    applied = ledger.build(BlockInput(1, 2, ()), [raw], cache, KnownEffects(head.height, head.period, [_lie(raw, 1, 2)]))
    assert applied.state_root != truth.state_root  # the same record on its own head is applied as it is
