"""Mempool admission, bounds, ordering, and the re-check after a commit."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.mempool import AddResult, Mempool, MempoolFull
from ledger.transition import apply_effect_if_holds
from consensus.verifier import prevalidate
from ledger import BlockInput, Rejected, SignatureCache, decode_tx
from ledger.crypto import sha256 as sha
from ledger.records import Account, account_key
from ledger.errors import Code
from tests.ledger.helpers import CHAIN_ID, PERIOD_MS, key, make_genesis, new_ledger, transfer_tx
from tests.node.helpers import collector_off, live_refusals


def make_pool(**bounds: int) -> tuple[Mempool, SignatureCache]:
    ledger = new_ledger(make_genesis({1: 1_000, 2: 1_000}))
    cache = SignatureCache()
    return Mempool(ledger, cache, **bounds), cache


def commit_block(pool: Mempool, cache: SignatureCache, block: BlockInput, recheck_now: int | None = None) -> None:
    """Execute and commit `block` on the pool's ledger, then tell the pool."""
    executed = pool._ledger.execute(block, cache)
    pool._ledger.commit(executed)
    pool.update([tx.hash for tx in executed.txs], recheck_now=recheck_now)


def update_running_every_entry(pool: Mempool, committed: list[bytes]) -> None:
    """The reference the incremental re-check is held to: `update`, with every entry run again
    (no recorded effect trusted, neither by its reads' values nor by the keys the block wrote)."""
    with patch("consensus.mempool.apply_effect_if_holds", return_value=False), patch("consensus.mempool.reads_untouched", return_value=False):
        pool.update(committed)


def test_add_admits_valid_transaction_and_caches_signature() -> None:
    pool, cache = make_pool()
    result, tx_hash = pool.add(transfer_tx(1, 2, 10, 0))
    assert result is AddResult.ADDED
    assert tx_hash in pool and tx_hash in cache and len(pool) == 1


def test_add_deduplicates_by_hash() -> None:
    pool, _ = make_pool()
    raw = transfer_tx(1, 2, 10, 0)
    pool.add(raw)
    assert pool.add(raw)[0] is AddResult.DUPLICATE
    assert len(pool) == 1


def test_add_checks_nonce_and_balance_against_pending() -> None:
    pool, _ = make_pool()
    pool.add(transfer_tx(1, 2, 600, 0))
    with pytest.raises(Rejected) as stale:
        pool.add(transfer_tx(1, 2, 5, 0))
    assert stale.value.code is Code.NONCE_STALE
    with pytest.raises(Rejected) as poor:
        pool.add(transfer_tx(1, 2, 600, 1))  # 1000 - 600 left 400
    assert poor.value.code is Code.INSUFFICIENT_FUNDS
    with pytest.raises(Rejected) as future:
        pool.add(transfer_tx(1, 2, 5, 5))
    assert future.value.code is Code.NONCE_FUTURE
    assert pool.add(transfer_tx(1, 2, 400, 1))[0] is AddResult.ADDED


def test_add_rejects_bad_signature_and_remembers_it() -> None:
    pool, cache = make_pool()
    raw = bytearray(transfer_tx(1, 2, 10, 0))
    raw[-1] ^= 1  # last byte of the signature
    with pytest.raises(Rejected) as bad:
        pool.add(bytes(raw))
    assert bad.value.code is Code.BAD_SIGNATURE
    with pytest.raises(Rejected):
        pool.add(bytes(raw))
    assert len(pool) == 0 and len(cache) == 0


def test_add_refuses_when_full_by_count() -> None:
    pool, _ = make_pool(max_txs=2)
    pool.add(transfer_tx(1, 2, 1, 0))
    pool.add(transfer_tx(1, 2, 1, 1))
    with pytest.raises(MempoolFull, match="mempool full"):
        pool.add(transfer_tx(1, 2, 1, 2))
    assert MempoolFull("x").to_dict()["code"] == "MEMPOOL_FULL"


def test_add_refuses_when_full_by_bytes() -> None:
    raw = transfer_tx(1, 2, 1, 0)
    pool, _ = make_pool(max_bytes=len(raw) + 10)
    pool.add(raw)
    with pytest.raises(MempoolFull):
        pool.add(transfer_tx(2, 1, 1, 0))


def test_reap_returns_oldest_first_within_bounds() -> None:
    pool, _ = make_pool()
    raws = [transfer_tx(1, 2, 1, n) for n in range(5)]
    for raw in raws:
        pool.add(raw)
    assert pool.reap(3, 1 << 20) == raws[:3]
    assert pool.reap(10, len(raws[0]) * 2) == raws[:2]


def test_update_removes_committed_and_rechecks_the_rest() -> None:
    pool, cache = make_pool()
    first, second = transfer_tx(1, 2, 1, 0), transfer_tx(1, 2, 1, 1)
    pool.add(first)
    pool.add(second)
    # Another proposer's block spends nonce 1 differently: our `second` is now stale.
    other = transfer_tx(1, 2, 7, 1)
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (first, other)))
    assert len(pool) == 0 and pool.size_bytes == 0
    assert pool.add(transfer_tx(1, 2, 1, 2))[0] is AddResult.ADDED


def test_update_keeps_transactions_that_still_apply() -> None:
    pool, cache = make_pool()
    a, b = transfer_tx(1, 2, 1, 0), transfer_tx(2, 1, 1, 0)
    pool.add(a)
    pool.add(b)
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (a,)))
    assert pool.reap(10, 1 << 20) == [b]


def test_prevalidate_then_add_verifies_each_signature_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, cache = make_pool()
    raws = [transfer_tx(1, 2, 1, n) for n in range(3)]
    checked = prevalidate(raws + [b"\x00garbage"], CHAIN_ID)
    assert isinstance(checked[-1], Rejected)
    import ledger.transition as transition

    def must_not_verify(*_: object) -> None:
        raise AssertionError("signature verified twice")

    monkeypatch.setattr(transition, "verify_tx_signatures", must_not_verify)
    results = pool.add_prevalidated(checked)
    assert [r[0] for r in results[:3]] == [AddResult.ADDED] * 3  # type: ignore[index]
    assert isinstance(results[3], Rejected)


def test_refusals_the_pool_returns_or_remembers_hold_no_frames() -> None:
    """A refusal kept past its handler has no traceback: one remembered (a stale nonce) would
    otherwise hold the frame of `add_prevalidated` and, through its list of results, every other
    refusal of the batch and the states they were checked on, a cycle only the collector frees.
    The memory keeps a copy that is never raised, so a repeat's refusal hangs no frames on it."""
    pool, cache = make_pool()
    pool.add(spent := transfer_tx(1, 2, 10, 0))
    pool.add(overtaken := transfer_tx(1, 2, 3, 1))
    # another proposer's block spends nonce 1 differently: `overtaken` is evicted on the re-check
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (spent, transfer_tx(1, 2, 4, 1))))
    stale, future = transfer_tx(1, 2, 7, 0), transfer_tx(1, 2, 5, 5)
    checked = prevalidate([stale, future], CHAIN_ID)
    with collector_off():  # what reference counting frees, and nothing else
        before = live_refusals()
        out = pool.add_prevalidated(checked, park=False)
        assert [r.code for r in out] == [Code.NONCE_STALE, Code.NONCE_FUTURE]  # type: ignore[union-attr]
        assert all(r.__traceback__ is None and r.__context__ is None for r in out)  # type: ignore[union-attr]
        del out
        assert live_refusals() == before + 1  # the stale one, remembered; the other is gone
        with pytest.raises(Rejected) as again:  # refused from memory, as before
            pool.add(stale)
        assert again.value.code is Code.NONCE_STALE
        for raw in (stale, overtaken):
            remembered = pool._rejected[sha(raw)]
            assert remembered.code is Code.NONCE_STALE and remembered.__traceback__ is None


def test_the_signature_cache_keeps_decoded_only_what_the_pool_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction the pool refuses, evicts or stops parking keeps its hash in the cache (its
    signatures are never checked again) but not its decoded form: a loaded validator's cache held
    every refused late copy of a committed transaction, tens of thousands after ten minutes."""
    monkeypatch.setattr("consensus.mempool.PARKED_MAX", 1)
    pool, cache = make_pool(max_txs=3)
    pool.add(spent := transfer_tx(1, 2, 10, 0))
    pool.add(overtaken := transfer_tx(1, 2, 3, 1))
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (spent, transfer_tx(1, 2, 4, 1))))  # evicts `overtaken`
    stale, first_parked, second_parked, pending = transfer_tx(1, 2, 7, 0), transfer_tx(1, 2, 5, 5), transfer_tx(1, 2, 5, 6), transfer_tx(2, 1, 1, 0)
    out = pool.add_prevalidated(prevalidate([stale, first_parked, second_parked, pending], CHAIN_ID))
    assert [getattr(r, "code", None) for r in out] == [Code.NONCE_STALE, Code.NONCE_FUTURE, Code.NONCE_FUTURE, None]
    assert list(pool._parked) == [(key(1).address, 6)]  # the bound of one dropped the first
    pool.add(transfer_tx(2, 1, 1, 1))
    pool.add(transfer_tx(2, 1, 1, 2))  # the pool is full now
    (refused,) = pool.add_prevalidated(prevalidate([full := transfer_tx(2, 1, 1, 3)], CHAIN_ID))
    assert isinstance(refused, MempoolFull)
    for raw in (overtaken, stale, first_parked, full):  # (the node forgets what it commits: `spent`)
        assert cache.decoded(raw) is None, raw
    for raw in (overtaken, stale, first_parked, full):
        assert sha(raw) in cache  # checked once, never again
    assert cache.decoded(second_parked) is not None and cache.decoded(pending) is not None
    # another block uses nonces 2 to 6 of account 1: the parked one's nonce is gone
    commit_block(pool, cache, BlockInput(2, PERIOD_MS + 1, tuple(transfer_tx(1, 2, 1, n) for n in range(2, 7))))
    assert not pool._parked and cache.decoded(second_parked) is None and sha(second_parked) in cache
    assert cache.decoded(pending) is not None


def test_peer_transactions_with_future_nonces_wait_for_their_predecessor() -> None:
    pool, _ = make_pool()
    n0, n1, n2 = (transfer_tx(1, 2, 1, n) for n in range(3))
    peer_a, peer_b = b"a" * 32, b"b" * 32
    later = pool.add_prevalidated(prevalidate([n2, n1], CHAIN_ID), source=peer_a)
    assert all(isinstance(r, Rejected) for r in later) and len(pool) == 0
    pool.add_prevalidated(prevalidate([n0], CHAIN_ID), source=peer_b)
    assert pool.reap(10, 1 << 20) == [n0, n1, n2]
    # Gossip learns each one's source, parked ones included, so none is sent back where it came from.
    assert [(a.raw, a.source) for a in pool.drain_added()] == [(n0, peer_b), (n1, peer_a), (n2, peer_a)]
    assert pool.drain_added() == []


def test_a_client_transaction_is_drained_with_no_source() -> None:
    pool, _ = make_pool()
    raw = transfer_tx(1, 2, 1, 0)
    _, tx_hash = pool.add(raw)
    assert [(a.raw, a.hash, a.source) for a in pool.drain_added()] == [(raw, tx_hash, None)]


def test_client_future_nonce_is_refused_not_parked() -> None:
    pool, _ = make_pool()
    with pytest.raises(Rejected):
        pool.add(transfer_tx(1, 2, 1, 1))
    pool.add(transfer_tx(1, 2, 1, 0))
    assert len(pool) == 1


def test_parked_transaction_is_admitted_after_a_commit() -> None:
    pool, cache = make_pool()
    n0, n1 = transfer_tx(1, 2, 1, 0), transfer_tx(1, 2, 1, 1)
    pool.add_prevalidated(prevalidate([n1], CHAIN_ID))
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (n0,)))  # n0 came in another's block
    assert pool.reap(10, 1 << 20) == [n1]


def test_recheck_in_chunks_keeps_order_and_drops_what_no_longer_applies() -> None:
    pool, cache = make_pool()
    mine = [transfer_tx(1, 2, 1, n) for n in range(4)]
    theirs = [transfer_tx(2, 1, 1, n) for n in range(3)]
    for raw in (mine[0], theirs[0], mine[1], theirs[1], mine[2], theirs[2], mine[3]):
        pool.add(raw)
    # Another block spends account 2's nonce 0 differently: our theirs[0] goes stale.
    other = transfer_tx(2, 1, 5, 0)
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (mine[0], other)), recheck_now=0)
    assert pool.rechecking and len(pool) == 6
    # The proposer may take queued ones too (its block build re-applies each).
    assert pool.reap(10, 1 << 20) == [theirs[0], mine[1], theirs[1], mine[2], theirs[2], mine[3]]
    assert pool.recheck_some(2) == 4  # theirs[0] dropped, mine[1] kept
    assert pool.reap(10, 1 << 20) == [mine[1], theirs[1], mine[2], theirs[2], mine[3]]
    assert pool.recheck_some(100) == 0 and not pool.rechecking
    # `other` used account 2's nonce 0, so its nonces 1 and 2 still apply; theirs[0] is gone.
    kept = [mine[1], theirs[1], mine[2], theirs[2], mine[3]]
    assert pool.reap(10, 1 << 20) == kept
    assert pool.size_bytes == sum(len(r) for r in kept)


def test_admission_during_a_recheck_finishes_it_first() -> None:
    pool, cache = make_pool()
    a0, a1 = transfer_tx(1, 2, 1, 0), transfer_tx(1, 2, 1, 1)
    pool.add(a0)
    pool.add(a1)
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, (a0,)), recheck_now=0)
    assert pool.rechecking
    pool.add(transfer_tx(1, 2, 1, 2))  # depends on a1, still queued
    assert not pool.rechecking and len(pool) == 2


# The incremental re-check ------------------------------------------------------------------------------
def _twin_pools(txs: list[bytes]) -> list[Mempool]:
    """Two pools over two ledgers of one genesis (members 1 and 2: UBI and demurrage both move),
    each offered `txs` in order."""
    pools = []
    for _ in range(2):
        ledger = new_ledger(make_genesis({i: 1_000_000 for i in range(1, 6)}, members=(1, 2)))
        pool = Mempool(ledger, SignatureCache())
        for raw in txs:
            try:
                pool.add(raw)
            except Rejected:
                pass
        pools.append(pool)
    return pools


def _pool_state(pool: Mempool) -> tuple[list[bytes], dict[bytes, object]]:
    keys = sorted(set(pool._overlay.changes) | {k for e in pool._entries.values() for k in (e.reads or ())})
    return pool.reap(10_000, 1 << 30), {k: pool._overlay.get(k) for k in keys}


@settings(max_examples=60, deadline=None)
@given(
    offered=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 400_000)), min_size=1, max_size=25),
    in_block=st.lists(st.booleans(), min_size=25, max_size=25),
    foreign=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 400_000)), max_size=4),
    block_time=st.sampled_from([1, PERIOD_MS - 1, PERIOD_MS, 3 * PERIOD_MS]),
)
def test_incremental_recheck_leaves_the_pool_as_a_full_recheck_would(
    offered: list[tuple[int, int, int]], in_block: list[bool], foreign: list[tuple[int, int, int]], block_time: int
) -> None:
    """Whatever the block holds (some of the pool's transactions, others the pool never saw, with
    nonces that collide) and whenever it falls (same period, next, later), re-checking only what the
    block's writes touch leaves the same transactions pending, in the same order, over the same state
    as running every one again."""
    nonces = {i: 0 for i in range(1, 6)}
    txs = []
    for sender, to, amount in offered:
        txs.append(transfer_tx(sender, to, amount, nonces[sender]))
        nonces[sender] += 1
    incremental, full = _twin_pools(txs)
    pending = incremental.reap(10_000, 1 << 30)
    chosen = [raw for raw, take in zip(pending, in_block) if take]
    candidates = _with_foreign(chosen, foreign, {i: 0 for i in range(1, 6)})
    for pool in (incremental, full):
        ledger = pool._ledger
        executed = ledger.build(BlockInput(1, block_time, ()), candidates, SignatureCache())
        ledger.commit(executed)
        committed = [tx.hash for tx in executed.txs]
        pool.update(committed) if pool is incremental else update_running_every_entry(pool, committed)
        assert not pool.rechecking
    assert _pool_state(incremental) == _pool_state(full)


ROUND = st.tuples(
    st.lists(st.booleans(), min_size=12, max_size=12),  # which of the oldest pending the block takes
    st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 400_000)), max_size=2),  # txs the pool never saw
    st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 400_000)), max_size=3),  # admitted after
    st.sampled_from([1, 1, 1, PERIOD_MS // 2, PERIOD_MS]),  # how much later the block is
    st.integers(0, 6),  # entries re-checked at once (the rest wait: the next block may come first)
)


@settings(max_examples=60, deadline=None)
@given(
    offered=st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 400_000)), min_size=1, max_size=20),
    rounds=st.lists(ROUND, min_size=1, max_size=5),
)
def test_over_many_blocks_the_keys_each_block_wrote_leave_the_pool_as_a_full_recheck_would(
    offered: list[tuple[int, int, int]], rounds: list[Any]
) -> None:
    """Block after block (some of the pool's transactions, some it never saw, new ones admitted
    between, a new period now and then, and re-checks cut short so that the next block comes while
    one is under way), the pool that trusts what the block's written keys leave untouched ends with
    the transactions, order and state of one that runs every entry again after every block."""
    ledger_of = lambda: new_ledger(make_genesis({i: 1_000_000 for i in range(1, 9)}, members=(1, 2)))  # noqa: E731
    incremental, full = Mempool(ledger_of(), SignatureCache()), Mempool(ledger_of(), SignatureCache())
    nonces = {i: 0 for i in range(1, 9)}

    def offer(batch: list[tuple[int, int, int]]) -> None:
        for sender, to, amount in batch:
            raw = transfer_tx(sender, to, amount, nonces[sender])
            nonces[sender] += 1
            for pool in (incremental, full):
                try:
                    pool.add(raw)
                except Rejected:
                    pass

    offer(offered)
    time_ms = 0
    for take, foreign, later, later_ms, recheck_now in rounds:
        chain = full._ledger
        time_ms += later_ms
        pending = full.reap(len(take), 1 << 30)
        chosen = [raw for raw, t in zip(pending, take) if t]
        candidates = _with_foreign(chosen, foreign, {i: _nonce_of(chain, i) for i in range(1, 9)})
        block = BlockInput(chain.head.height + 1, time_ms, ())
        executed = chain.build(block, candidates, SignatureCache())
        raws = tuple(tx.raw for tx in executed.txs)
        chain.commit(executed)
        update_running_every_entry(full, [tx.hash for tx in executed.txs])
        other = incremental._ledger.execute(BlockInput(block.height, time_ms, raws), SignatureCache())
        incremental._ledger.commit(other)
        incremental.update([tx.hash for tx in other.txs], recheck_now=recheck_now)
        if later:
            offer(later)  # an admission finishes a re-check under way first
    incremental.recheck_some(len(incremental))
    assert _pool_state(incremental) == _pool_state(full)


def _nonce_of(ledger: Any, i: int) -> int:
    account = ledger.view().get_account(key(i).address)
    return 0 if account is None else account.nonce


def _with_foreign(chosen: list[bytes], foreign: list[tuple[int, int, int]], chain_nonce: dict[int, int]) -> list[bytes]:
    """A block's candidates: `chosen` of the pool's, then transfers the pool never saw, each signed
    with its sender's next nonce as the chain (`chain_nonce`) and `chosen` leave it, so one may take
    the nonce a pending transaction of the pool holds."""
    nonces = dict(chain_nonce)
    for raw in chosen:
        nonces[_sender_of(raw)] += 1
    extra = []
    for sender, to, amount in foreign:
        extra.append(transfer_tx(sender, to, amount, nonces[sender]))
        nonces[sender] += 1
    return chosen + extra


def _sender_of(raw: bytes) -> int:
    sender = decode_tx(raw).sender
    return next(i for i in range(1, 9) if key(i).address == sender)


def test_entries_whose_reads_still_hold_are_kept_without_running_them() -> None:
    pool, cache = make_pool()
    mine = [transfer_tx(1, 2, 1, n) for n in range(4)]
    for raw in mine:
        pool.add(raw)
    commit_block(pool, cache, BlockInput(1, 1, ()))  # an empty block writes only the head
    assert pool.stats["kept_on_recheck"] == 4 and pool.stats["rerun_on_recheck"] == 0
    # The block commits mine[0]: accounts 1 and 2 now hold what mine[1] read in the pool.
    commit_block(pool, cache, BlockInput(2, 2, (mine[0],)))
    assert pool.stats["kept_on_recheck"] == 7 and pool.stats["rerun_on_recheck"] == 0
    assert pool.reap(10, 1 << 20) == mine[1:]
    # A transfer the pool never saw changes both accounts: every entry reads them, every entry runs.
    commit_block(pool, cache, BlockInput(3, 3, (transfer_tx(2, 1, 5, 0),)))
    assert pool.stats["kept_on_recheck"] == 7 and pool.stats["rerun_on_recheck"] == 3
    commit_block(pool, cache, BlockInput(4, PERIOD_MS, ()))  # a new period: all run again
    assert pool.stats["kept_on_recheck"] == 7 and pool.stats["rerun_on_recheck"] == 6
    assert pool.reap(10, 1 << 20) == mine[1:]


def test_entries_whose_keys_the_block_did_not_write_are_kept_without_reading_them() -> None:
    ledger = new_ledger(make_genesis({i: 1_000 for i in range(1, 9)}))
    cache = SignatureCache()
    pool = Mempool(ledger, cache)
    first, *others = [transfer_tx(i, i + 1, 1, 0) for i in (1, 3, 5, 7)]  # disjoint pairs of accounts
    for raw in [first, *others]:
        pool.add(raw)
    compared: list[bytes] = []
    real = apply_effect_if_holds

    def counting(state: Any, entry: Any) -> bool:
        compared.append(entry.tx.raw)
        return real(state, entry)

    with patch("consensus.mempool.apply_effect_if_holds", counting):
        commit_block(pool, cache, BlockInput(1, 1, (first,)))
        assert compared == [] and pool.stats["kept_on_recheck"] == 3  # none read accounts 1 and 2
        assert pool.reap(10, 1 << 20) == others
        touching = transfer_tx(4, 3, 1, 0)  # the pool never saw it: accounts 3 and 4 change
        commit_block(pool, cache, BlockInput(2, 2, (touching,)))
        assert compared == [others[0]]  # 3 -> 4 read what the block wrote: compared (and run again)
        assert pool.stats["rerun_on_recheck"] == 1 and pool.stats["kept_on_recheck"] == 5
        commit_block(pool, cache, BlockInput(3, PERIOD_MS, ()))  # a new period: every read compared
        assert compared == [others[0], *others]


def _pool_with_a_credit_chain() -> tuple[Mempool, SignatureCache, list[bytes]]:
    """3 pays 4, then 4 pays 5 more than it holds without that credit."""
    ledger = new_ledger(make_genesis({i: 1_000 for i in range(1, 9)}))
    cache = SignatureCache()
    pool = Mempool(ledger, cache)
    chain = [transfer_tx(3, 4, 500, 0), transfer_tx(4, 5, 1_400, 0)]
    for raw in chain:
        pool.add(raw)
    return pool, cache, chain


def test_what_an_evicted_entry_wrote_counts_as_changed_for_those_after_it() -> None:
    pool, cache, _ = _pool_with_a_credit_chain()
    commit_block(pool, cache, BlockInput(1, 1, (transfer_tx(3, 6, 1, 0),)))  # takes 3's nonce 0
    # 3 -> 4 is stale, so 4 never gets its credit: 4 -> 5 no longer applies, though the block
    # wrote neither 4 nor 5
    assert len(pool) == 0 and pool.stats["evicted_on_recheck"] == 2


def test_a_block_that_comes_during_a_recheck_adds_to_what_changed() -> None:
    pool, cache, _ = _pool_with_a_credit_chain()
    commit_block(pool, cache, BlockInput(1, 1, (transfer_tx(3, 6, 1, 0),)), recheck_now=0)
    assert pool.rechecking
    commit_block(pool, cache, BlockInput(2, 2, (transfer_tx(7, 8, 1, 0),)))  # writes neither 3, 4 nor 5
    assert len(pool) == 0 and pool.stats["evicted_on_recheck"] == 2
    # a new period during a recheck: the next block's keys are not all that changed
    pool, cache, chain = _pool_with_a_credit_chain()
    commit_block(pool, cache, BlockInput(1, PERIOD_MS, ()), recheck_now=0)
    commit_block(pool, cache, BlockInput(2, PERIOD_MS + 1, (transfer_tx(7, 8, 1, 0),)))
    assert pool.reap(10, 1 << 20) == chain and pool.stats["rerun_on_recheck"] == 2


def test_two_commits_before_one_update_compare_every_entry() -> None:
    """`last_written` is the last block's alone: after two commits the pool cannot know what the
    first one changed, so every entry's reads are compared."""
    pool, cache, chain = _pool_with_a_credit_chain()
    ledger = pool._ledger
    ledger.commit(ledger.execute(BlockInput(1, 1, (transfer_tx(3, 6, 1, 0),)), cache))  # takes 3's nonce 0
    ledger.commit(ledger.execute(BlockInput(2, 2, (transfer_tx(7, 8, 1, 0),)), cache))
    pool.update([])
    assert len(pool) == 0 and pool.stats["evicted_on_recheck"] == 2


def test_keys_only_the_pool_run_of_a_committed_entry_wrote_count_as_changed() -> None:
    """A transaction may write other keys on another state (a housing application granted or
    waitlisted): what a committed entry wrote in the pool and the block's run did not is changed too.
    Transfers always write the same keys, so the pool run's extra write is put in by hand here."""
    cache = SignatureCache()
    pool = Mempool(new_ledger(make_genesis({i: 1_000 for i in range(1, 9)})), cache)
    committed = transfer_tx(3, 4, 10, 0)
    pool.add(committed)
    extra_key = account_key(key(5).address)
    rich = Account(5_000, 0, 0)
    pool._entries[sha(committed)].writes[extra_key] = rich  # as if its pool run had credited 5
    pool._overlay.changes[extra_key] = rich
    later = transfer_tx(5, 6, 4_000, 0)  # applies only on that credit
    pool.add(later)
    commit_block(pool, cache, BlockInput(1, 1, (committed,)))  # the block's run writes 3, 4 and the head
    assert len(pool) == 0 and pool.stats["evicted_on_recheck"] == 1


def test_keys_an_entry_run_again_writes_anew_count_as_changed() -> None:
    """An entry run again may write keys it did not write before; those after it that read them are
    compared. Transfers always write the same keys, so the old run's missing write is taken out by hand."""
    ledger = new_ledger(make_genesis({i: 1_000 for i in range(1, 9)}))
    cache = SignatureCache()
    pool = Mempool(ledger, cache)
    rerun = transfer_tx(3, 4, 100, 0)
    pool.add(rerun)
    four = account_key(key(4).address)
    del pool._entries[sha(rerun)].writes[four]  # as if its first run had not credited 4
    del pool._overlay.changes[four]
    reader = transfer_tx(4, 5, 900, 0)  # reads 4 as the head has it: 1,000
    pool.add(reader)
    commit_block(pool, cache, BlockInput(1, 1, (transfer_tx(8, 3, 1, 0),)))  # changes 3: `rerun` runs again
    assert pool.stats["rerun_on_recheck"] == 2  # and so does `reader`, which read 4 before that credit
    assert pool.pending_view().get_account(key(4).address).balance == 1_000 + 100 - 900


def test_every_typed_read_of_an_overlay_reaches_the_tracker() -> None:
    """The incremental re-check rests on every read an overlay cannot answer itself reaching its
    parent's `get`: a typed read that bypassed it would go unrecorded, and this fails."""
    from consensus.mempool import _ReadTracker
    from ledger.state import State

    pool, _ = make_pool()
    address = key(1).address
    reads = {
        "get_params": (), "get_head": (), "get_totals": (), "get_account": (address,), "get_member": (address,),
        "get_period_record": (0,), "get_validator": (address,),
    }
    typed = {name for name in dir(State) if name.startswith("get_")}
    assert typed <= set(reads), f"a new typed read: add it here: {typed - set(reads)}"
    for name, args in reads.items():
        tracker = _ReadTracker(pool._overlay)
        getattr(State(tracker), name)(*args)
        assert tracker.reads, f"State.{name} read without its parent's get"


def test_the_pool_tracks_what_a_transfer_reads_and_writes() -> None:
    pool, _ = make_pool()
    _, tx_hash = pool.add(transfer_tx(1, 2, 1, 0))
    entry = pool._entries[tx_hash]
    accounts = {account_key(key(1).address), account_key(key(2).address)}
    assert entry.reads is not None and accounts <= set(entry.reads)
    assert all(entry.reads[k] == pool._ledger.get_record(k) for k in accounts), "the values read, from the head"
    assert set(entry.writes) == accounts
    assert entry.reads[b"c"] == pool._ledger.head, "the head record too (the ledger compares its period for transfers)"


def test_an_entry_that_read_what_the_block_committed_is_kept_and_a_rerun_stops_where_values_agree() -> None:
    """A chain of transfers 1->2, 2->3, 3->4, 4->5, each reading the account the one before it
    wrote. A block of the first leaves account 2 as 2->3 read it in the pool: all three are kept.
    A block of a transfer the pool never saw, 6->2, changes account 2: 1->2 and 2->3 run again, and
    2->3 writes account 3 as it did before, so 3->4 and 4->5 are kept."""
    pools = []
    for block_tx in (0, 1):
        ledger = new_ledger(make_genesis({i: 1_000 for i in range(1, 7)}))
        cache = SignatureCache()
        pool = Mempool(ledger, cache)
        chain = [transfer_tx(i, i + 1, 10, 0) for i in range(1, 5)]
        for raw in chain:
            pool.add(raw)
        commit_block(pool, cache, BlockInput(1, 1, (chain[0] if block_tx == 0 else transfer_tx(6, 2, 5, 0),)))
        pools.append((pool, chain))
    (same, chain), (foreign, _) = pools
    assert (same.stats["rerun_on_recheck"], same.stats["kept_on_recheck"]) == (0, 3)
    assert same.reap(10, 1 << 20) == chain[1:]
    assert (foreign.stats["rerun_on_recheck"], foreign.stats["kept_on_recheck"]) == (2, 2)
    assert foreign.reap(10, 1 << 20) == chain


def _offered_txs(offered: list[tuple[int, int, int]], council_at: list[int]) -> list[bytes]:
    """Transfers (sender, to, amount) with each sender's nonces in order, and a council member_add
    before each position in `council_at`."""
    from tests.ledger.helpers import member_add_tx

    nonces = {i: 0 for i in range(1, 7)}
    council_nonce = 0
    txs = []
    for position, (sender, to, amount) in enumerate(offered):
        if position in council_at:
            txs.append(member_add_tx(10 + council_nonce, council_nonce))
            council_nonce += 1
        txs.append(transfer_tx(sender, to, amount, nonces[sender]))
        nonces[sender] += 1
    return txs


# The proposer's build from the pool's recorded effects ----------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    offered=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 400_000)), min_size=1, max_size=25),
    council_at=st.lists(st.integers(0, 25), max_size=2),
    first_block=st.lists(st.booleans(), max_size=25),
    recheck_now=st.sampled_from([0, 3, None]),
    block_time=st.sampled_from([2, PERIOD_MS - 1, PERIOD_MS, 3 * PERIOD_MS]),
    slash=st.booleans(),
)
def test_a_build_from_the_pools_effects_is_the_build_that_runs_every_transaction(
    offered: list[tuple[int, int, int]], council_at: list[int], first_block: list[bool], recheck_now: int | None, block_time: int, slash: bool
) -> None:
    """`LedgerDB.build` given the pool's `known_effects` (which it applies instead of running the
    transactions whose keys nothing changed) builds the very block, state and root it builds running
    every candidate: whether the pool was fully re-checked after a block or only part of it, whether
    the block opens a new period, whether it slashes a validator that also sends transfers, with
    council transactions that read the head's time among the transfers."""
    from consensus.mempool import Mempool

    genesis = make_genesis({i: 1_000_000 for i in range(1, 7)}, members=(1, 2), validators={6: 5_000_000})
    ledger = new_ledger(genesis)
    cache = SignatureCache()
    pool = Mempool(ledger, cache)
    txs = _offered_txs(offered, council_at)
    for raw in txs:
        try:
            pool.add(raw)
        except Rejected:
            pass
    if any(first_block):  # a block of some of them, then a re-check of `recheck_now` (None: all)
        chosen = [raw for raw, take in zip(pool.reap(10_000, 1 << 30), first_block) if take]
        executed = ledger.build(BlockInput(1, 1, ()), chosen, cache)
        ledger.commit(executed)
        pool.update([tx.hash for tx in executed.txs], recheck_now=recheck_now)
    height = ledger.head.height + 1
    block = BlockInput(height, block_time + height, (), (key(6).address,) if slash else ())
    candidates = pool.reap(10_000, 1 << 30)
    reused = ledger.build(block, candidates, cache, pool.known_effects())
    rerun = ledger.build(block, candidates, cache)
    assert reused.block == rerun.block
    assert [tx.hash for tx in reused.txs] == [tx.hash for tx in rerun.txs]
    assert reused.encoded == rerun.encoded and reused.state_root == rerun.state_root


@settings(max_examples=80, deadline=None)
@given(
    offered=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 400_000)), min_size=1, max_size=25),
    order=st.randoms(use_true_random=False),
    council_at=st.lists(st.integers(0, 25), max_size=2),
    first_block=st.lists(st.booleans(), max_size=25),
    block_time=st.sampled_from([2, PERIOD_MS - 1, PERIOD_MS, 3 * PERIOD_MS]),
    slash=st.booleans(),
)
def test_a_validators_execution_from_its_own_pools_effects_is_the_full_execution(
    offered: list[tuple[int, int, int]], order: Any, council_at: list[int], first_block: list[bool], block_time: int, slash: bool
) -> None:
    """A validator's pool received the proposer's transactions in another order (gossip), so its
    recorded effects were made on other intermediate states. Executing the proposer's block with
    them (`LedgerDB.execute(..., known)`) gives the very state and root the proposer built, and a
    full execution gives: after a first block or not, in the same period or a new one, with a slash,
    with council transactions (whose records keep the whole head record) among the transfers."""
    from consensus.mempool import Mempool

    genesis = make_genesis({i: 1_000_000 for i in range(1, 7)}, members=(1, 2), validators={6: 5_000_000})
    txs = _offered_txs(offered, council_at)
    arrival = list(txs)
    order.shuffle(arrival)
    proposer, validator = (Mempool(new_ledger(genesis), SignatureCache()) for _ in range(2))
    for pool, offered_txs in ((proposer, txs), (validator, arrival)):
        for raw in offered_txs:
            try:
                pool.add(raw)
            except Rejected:
                pass  # a nonce ahead of its predecessor, or a balance short: as gossip would have it
    if any(first_block):
        chosen = [raw for raw, take in zip(proposer.reap(10_000, 1 << 30), first_block) if take]
        executed = proposer._ledger.build(BlockInput(1, 1, ()), chosen, proposer._verified, proposer.known_effects())
        for pool in (proposer, validator):
            pool._ledger.commit(pool._ledger.execute(executed.block, pool._verified, pool.known_effects()))
            pool.update([tx.hash for tx in executed.txs])
    height = proposer._ledger.head.height + 1
    block = BlockInput(height, block_time + height, (), (key(6).address,) if slash else ())
    built = proposer._ledger.build(block, proposer.reap(10_000, 1 << 30), proposer._verified, proposer.known_effects())
    reused = validator._ledger.execute(built.block, validator._verified, validator.known_effects())
    full = validator._ledger.execute(built.block, validator._verified)
    assert reused.encoded == full.encoded == built.encoded
    assert reused.state_root == full.state_root == built.state_root
    assert [tx.hash for tx in reused.txs] == [tx.hash for tx in full.txs]


def test_a_build_from_the_pools_effects_runs_only_what_a_slash_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the pool fully checked and the block in the same period, the build applies each
    transfer's recorded writes; only the transfer from the slashed validator's account, which read
    that account before the slash changed it, runs again."""
    import ledger.transition as transition
    from consensus.mempool import Mempool
    from ledger.crypto import sha256

    ledger = new_ledger(make_genesis({i: 1_000_000 for i in range(1, 7)}, validators={6: 5_000_000}))
    cache = SignatureCache()
    pool = Mempool(ledger, cache)
    raws = [transfer_tx(1, 2, 10, 0), transfer_tx(2, 3, 10, 0), transfer_tx(6, 4, 10, 0), transfer_tx(3, 1, 10, 0)]
    for raw in raws:
        pool.add(raw)
    ran: list[bytes] = []
    real = transition.process_tx
    monkeypatch.setattr(transition, "process_tx", lambda state, raw, *args: ran.append(raw) or real(state, raw, *args))
    block = BlockInput(1, 2, (), (key(6).address,))
    executed = ledger.build(block, pool.reap(100, 1 << 20), cache, pool.known_effects())
    assert list(executed.block.txs) == raws
    slashed = ledger.build(BlockInput(1, 2, (), (key(6).address,)), [], cache).state.changes
    changed = {k for k, v in slashed.items() if k != b"c"}
    assert changed, "the slash wrote the validator's account and stake records"
    assert ran == [raw for raw in raws if not changed.isdisjoint(pool._entries[sha256(raw)].reads or ())]
    assert ran == [raws[2]]


def test_an_entry_that_lists_a_prefix_runs_again_and_the_rest_are_judged_by_value() -> None:
    """A validator bond lists the validator set (its reads are None), so every re-check runs it
    again; its writes come out the same, so the transfer queued after it whose accounts the block
    did not change is kept, and the pool equals a fully re-checked one."""
    from ledger.crypto import sha256
    from ledger.tx import encode_body, sign_tx
    from tests.ledger.helpers import CHAIN_ID as CHAIN

    def bond() -> bytes:
        body = encode_body("validator_bond", CHAIN, key(5).address, 0, validator=key(5).address, stake=2_000_000, name="new")
        return sign_tx(CHAIN, body, [key(5), key(6)])

    raws = [bond(), transfer_tx(1, 2, 10, 0), transfer_tx(3, 4, 10, 0)]
    pools = []
    for _ in range(2):
        ledger = new_ledger(make_genesis({i: 10_000_000 for i in range(1, 7)}, validators={6: 5_000_000}))
        pool = Mempool(ledger, SignatureCache())
        for raw in raws:
            pool.add(raw)
        pools.append(pool)
    incremental, full = pools
    assert incremental._entries[sha256(raws[0])].reads is None
    for pool in (incremental, full):
        executed = pool._ledger.execute(BlockInput(1, 1, (raws[1],)), SignatureCache())  # touches 1 and 2 only
        pool._ledger.commit(executed)
        pool.update([sha256(raws[1])]) if pool is incremental else update_running_every_entry(pool, [sha256(raws[1])])
    assert _pool_state(incremental) == _pool_state(full)
    stats = incremental.stats
    assert (stats["rerun_on_recheck"], stats["kept_on_recheck"], stats["evicted_on_recheck"]) == (1, 1, 0)
