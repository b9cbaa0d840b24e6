"""`apply_known_effect` (ledger/transition.py): a recorded effect is applied, in a proposer's build and in
a validator's execution alike, only where it holds: recorded for these very bytes, listing no prefix,
its transaction's signatures verified, and every key it read still holding the value it read (for a
transfer, the head record only its period).

The records here carry deliberately wrong writes (balance 7 each), so where the rule applies one the
result differs from running the transaction, and where it must not, the result is the run's.
(tests/node/test_mempool.py checks, with hypothesis, that the records a real mempool keeps give the
very block and state a full run gives.)"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgpack
import pytest

from ledger import BlockInput, Rejected, SignatureCache, decode_tx, encoding
from ledger.errors import Code
from ledger.records import Account, account_key
from tests.ledger.helpers import key, make_genesis, new_ledger, transfer_tx


@dataclass
class Record:
    tx: Any
    reads: dict[bytes, Any] | None
    writes: dict[bytes, Any]


def _setup(raws: list[bytes]) -> tuple[Any, SignatureCache]:
    ledger = new_ledger(make_genesis({i: 1_000_000 for i in range(1, 7)}, validators={6: 5_000_000}))
    cache = SignatureCache()
    for raw in raws:
        cache.remember(decode_tx(raw))
    return ledger, cache


HEAD = b"c"


def _lie(ledger: Any, raw: bytes, *accounts: int) -> Record:
    """A record of `raw` that read the head and `accounts` as the ledger holds them now, and wrote
    the accounts wrong."""
    keys = [account_key(key(i).address) for i in accounts]
    reads = {HEAD: ledger.head, **{k: ledger.get_record(k) for k in keys}}
    return Record(decode_tx(raw), reads, {k: Account(7, 9, 0) for k in keys})


def _forged(raw: bytes) -> bytes:
    """`raw` with one bit of its signature flipped: well formed, but the signature fails."""
    body_bytes, signatures = msgpack.unpackb(raw)
    (public_key, signature), = signatures
    return encoding.encode_fast([body_bytes, [[public_key, signature[:-1] + bytes([signature[-1] ^ 1])]]])


def _by_hash(*records: Record) -> dict[bytes, Record]:
    return {r.tx.hash: r for r in records}


def test_a_record_whose_reads_hold_is_applied_by_a_build_and_by_an_execution() -> None:
    raw = transfer_tx(1, 2, 10, 0)
    ledger, cache = _setup([raw])
    known = _by_hash(_lie(ledger, raw, 1, 2))
    truth = ledger.build(BlockInput(1, 2, ()), [raw], cache)
    built = ledger.build(BlockInput(1, 2, ()), [raw], cache, known)
    executed = ledger.execute(BlockInput(1, 2, (raw,)), cache, known)
    lie = Account(7, 9, 0)
    for result in (built, executed):
        assert result.state.changes[account_key(key(1).address)] == lie and result.state_root != truth.state_root
    assert list(built.block.txs) == [raw] and [tx.hash for tx in executed.txs] == [decode_tx(raw).hash]


def test_a_record_is_run_where_a_key_it_read_changed_before_it() -> None:
    """The slash writes validator 6's account, which 6->4 read; 6->4 then writes account 4, which
    4->1 read: both run, and the block is the one a full run makes."""
    first, second, third = transfer_tx(6, 4, 10, 0), transfer_tx(4, 1, 10, 0), transfer_tx(2, 3, 10, 0)
    ledger, cache = _setup([first, second, third])
    known = _by_hash(_lie(ledger, first, 6, 4), _lie(ledger, second, 4, 1))
    block = BlockInput(1, 2, (first, second, third), (key(6).address,))
    truth = ledger.execute(block, cache)
    assert ledger.execute(block, cache, known).encoded == truth.encoded
    built = ledger.build(BlockInput(1, 2, (), block.slashes), list(block.txs), cache, known)
    assert built.block == truth.block and built.encoded == truth.encoded


def test_a_record_that_now_fails_is_run_and_refused() -> None:
    """Its record says it applied, but a transfer before it in the block spent the balance it read."""
    spend, late = transfer_tx(1, 2, 1_000_000, 0), transfer_tx(1, 3, 500, 1)
    ledger, cache = _setup([spend, late])
    record = _lie(ledger, late, 1, 3)
    built = ledger.build(BlockInput(1, 2, ()), [spend, late], cache, _by_hash(record))
    assert list(built.block.txs) == [spend]
    assert built.encoded == ledger.build(BlockInput(1, 2, ()), [spend, late], cache).encoded


def test_records_of_another_period_listing_a_prefix_of_other_bytes_without_a_cache_or_forged_are_not_used() -> None:
    raw, other = transfer_tx(1, 2, 10, 0), transfer_tx(1, 2, 11, 0)
    ledger, cache = _setup([raw, other])
    truth = ledger.build(BlockInput(1, 2, ()), [raw], cache)
    other_period = _lie(ledger, raw, 1, 2)
    other_period.reads = {**other_period.reads, HEAD: replace(ledger.head, period=ledger.head.period + 1)}
    prefix = _lie(ledger, raw, 1, 2)
    prefix.reads = None
    other_bytes = _lie(ledger, other, 1, 2)  # filed under raw's hash below: a record of other bytes
    for record in (other_period, prefix):
        assert ledger.build(BlockInput(1, 2, ()), [raw], cache, _by_hash(record)).state_root == truth.state_root
        assert ledger.execute(BlockInput(1, 2, (raw,)), cache, _by_hash(record)).state_root == truth.state_root
    record = _lie(ledger, raw, 1, 2)
    new_period = BlockInput(1, 10**9, (raw,))  # the block opens a later period than the record's
    assert ledger.execute(new_period, cache, _by_hash(record)).state_root == ledger.execute(new_period, cache).state_root
    # an execution checks every transaction's signatures before any runs: one not yet verified is
    # verified then (and its record may be used), one whose signature fails is refused, record or not
    unverified = SignatureCache()
    assert ledger.execute(BlockInput(1, 2, (raw,)), unverified, _by_hash(record)).state.changes[account_key(key(1).address)] == Account(7, 9, 0)
    assert decode_tx(raw).hash in unverified
    assert ledger.execute(BlockInput(1, 2, (raw,)), None, _by_hash(record)).state_root == truth.state_root  # no cache: no records
    forged = _forged(raw)
    with pytest.raises(Rejected, match="BAD_SIGNATURE"):
        ledger.execute(BlockInput(1, 2, (forged,)), SignatureCache(), _by_hash(Record(decode_tx(forged), record.reads, record.writes)))
    assert ledger.build(BlockInput(1, 2, ()), [forged], SignatureCache(), _by_hash(Record(decode_tx(forged), record.reads, record.writes))).block.txs == ()
    misfiled = {decode_tx(raw).hash: other_bytes}
    assert ledger.execute(BlockInput(1, 2, (raw,)), cache, misfiled).state_root == truth.state_root


def test_a_heads_height_and_time_count_for_other_types_but_only_its_period_for_transfers() -> None:
    """The record read the head at height 0; the block's head is at height 1, same period."""
    raw = transfer_tx(1, 2, 10, 0)
    ledger, cache = _setup([raw])
    record = _lie(ledger, raw, 1, 2)
    lie = Account(7, 9, 0)
    assert ledger.execute(BlockInput(1, 2, (raw,)), cache, _by_hash(record)).state.changes[account_key(key(1).address)] == lie
    record.tx = replace(record.tx, body={**record.tx.body, "type": "member_add"})  # as if another type read that head
    assert ledger.execute(BlockInput(1, 2, (raw,)), cache, {decode_tx(raw).hash: record}).state_root == ledger.execute(BlockInput(1, 2, (raw,)), cache).state_root


def test_a_record_that_read_a_missing_account_is_run_once_the_account_exists() -> None:
    """1 -> 9 read account 9 as missing (None); a transfer before it in the block creates it."""
    funding, raw = transfer_tx(2, 9, 500, 0), transfer_tx(1, 9, 10, 0)
    ledger, cache = _setup([funding, raw])
    record = _lie(ledger, raw, 1, 9)
    assert record.reads[account_key(key(9).address)] is None
    alone = ledger.execute(BlockInput(1, 2, (raw,)), cache, _by_hash(record))
    assert alone.state.changes[account_key(key(9).address)] == Account(7, 9, 0), "where it holds, it is applied"
    block = BlockInput(1, 2, (funding, raw))
    assert ledger.execute(block, cache, _by_hash(record)).encoded == ledger.execute(block, cache).encoded


def test_an_execution_refuses_a_block_whose_recorded_transaction_now_fails_or_repeats() -> None:
    spend, late = transfer_tx(1, 2, 1_000_000, 0), transfer_tx(1, 3, 500, 1)
    ledger, cache = _setup([spend, late])
    known = _by_hash(_lie(ledger, spend, 1, 2), _lie(ledger, late, 1, 3))
    for txs in ((spend, late), (spend, spend)):
        with pytest.raises(Rejected) as refused:
            ledger.execute(BlockInput(1, 2, txs), cache, known)
        assert refused.value.code is Code.BLOCK_INVALID and "transaction 1" in refused.value.message


def test_a_record_made_on_an_older_head_holds_where_its_reads_are_unchanged() -> None:
    """Heights do not matter, values do: a block of other accounts between the record and its use."""
    raw, other = transfer_tx(1, 2, 10, 0), transfer_tx(3, 4, 10, 0)
    ledger, cache = _setup([raw, other])
    record = _lie(ledger, raw, 1, 2)
    ledger.commit(ledger.execute(BlockInput(1, 2, (other,)), cache))
    executed = ledger.execute(BlockInput(2, 3, (raw,)), cache, _by_hash(record))
    assert executed.state.changes[account_key(key(2).address)] == Account(7, 9, 0)
    stale = _lie(ledger, other, 3, 4)  # read 3 and 4 as committed now...
    stale.reads = {k: v if k == HEAD else Account(1_000_000, 0, 0) for k, v in stale.reads.items()}  # ...but claims genesis values
    follow = transfer_tx(3, 4, 10, 1)
    stale.tx = decode_tx(follow)
    cache.remember(stale.tx)
    block = BlockInput(2, 3, (follow,))
    assert ledger.execute(block, cache, _by_hash(stale)).encoded == ledger.execute(block, cache).encoded
