"""process_tx: wire bytes or a decoded Tx, and the SignatureCache that makes each check happen once."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import LedgerDB, MemoryStore, SignatureCache, decode_tx, process_tx
from ledger import transition
from tests.ledger.helpers import PERIOD_MS, make_genesis, transfer_tx


def test_decoded_and_raw_transactions_apply_identically() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 1_000, 2: 0}))
    raw = transfer_tx(1, 2, 10, 0)
    a, b = db.view(), db.view()
    process_tx(a, raw)
    process_tx(b, decode_tx(raw))
    assert a.changes == b.changes


def test_a_verified_transaction_is_neither_decoded_nor_verified_again() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 1_000, 2: 0}))
    raw = transfer_tx(1, 2, 10, 0)
    cache = SignatureCache()
    process_tx(db.view(), raw, cache)
    assert cache.decoded(raw) is not None and cache.decoded(raw).hash in cache
    with mock.patch.object(transition, "decode_tx", side_effect=AssertionError("decoded twice")), mock.patch.object(
        transition, "verify_tx_signatures", side_effect=AssertionError("verified twice")
    ):
        assert process_tx(db.view(), raw, cache).hash == cache.decoded(raw).hash


def test_other_bytes_never_hit_the_memo() -> None:
    cache = SignatureCache()
    tx = decode_tx(transfer_tx(1, 2, 10, 0))
    cache.remember(tx)
    assert cache.decoded(transfer_tx(1, 2, 11, 0)) is None


def test_remembering_a_kept_transaction_again_changes_nothing() -> None:
    """What the verifier remembered, the mempool remembers again: the order that decides what is
    forgotten first, and the sizes, stay as they were; a new decoding of the same bytes replaces it."""
    cache = SignatureCache(capacity=10, decoded_capacity=4)
    txs = [decode_tx(transfer_tx(1, 2, 10, nonce)) for nonce in range(3)]
    for tx in txs:
        cache.remember(tx)
    before = (list(cache._hashes), list(cache._decoded.items()))
    cache.remember(txs[0])
    assert (list(cache._hashes), list(cache._decoded.items())) == before
    again = decode_tx(txs[0].raw)
    cache.remember(again)
    assert cache.decoded(txs[0].raw) is again and list(cache._hashes) == before[0]


def test_the_cache_is_bounded() -> None:
    cache = SignatureCache(capacity=10, decoded_capacity=4)
    for nonce in range(12):
        cache.remember(decode_tx(transfer_tx(1, 2, 10, nonce)))
    assert len(cache) <= 10
    assert len(cache._decoded) <= 4
    assert cache.decoded(transfer_tx(1, 2, 10, 11)) is not None  # the newest are kept


def test_a_forgotten_decoding_keeps_the_hash_so_the_signature_is_not_checked_again() -> None:
    """What a node does with the transactions it committed (`forget_decoded`): the decoded form
    goes, the hash stays; the same bytes are then decoded, never verified again."""
    db = LedgerDB(MemoryStore(), make_genesis({1: 1_000, 2: 0}))
    cache = SignatureCache()
    kept, committed = (decode_tx(transfer_tx(1, 2, 10, nonce)) for nonce in (0, 1))
    cache.remember(kept)
    cache.remember(committed)
    cache.forget_decoded([committed, decode_tx(transfer_tx(1, 2, 10, 5))])  # one it never held: no matter
    assert cache.decoded(committed.raw) is None and committed.hash in cache
    assert cache.decoded(kept.raw) is kept and len(cache) == 2
    with mock.patch.object(transition, "verify_tx_signatures", side_effect=AssertionError("verified twice")):
        assert process_tx(db.view(), kept.raw, cache) is kept
        view = db.view()
        process_tx(view, kept.raw, cache)
        assert process_tx(view, committed.raw, cache).hash == committed.hash


@settings(max_examples=40, deadline=None)
@given(
    period=st.integers(0, 4),
    heights=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6)),
    amount=st.integers(1, 2_000),
    recipient=st.sampled_from([2, 3, 9]),  # a member, a plain account, an address never seen
)
def test_head_period_only_types_write_the_same_whatever_the_heads_height_and_time(
    period: int, heights: tuple[int, int], amount: int, recipient: int
) -> None:
    """HEAD_PERIOD_ONLY_TYPES (recorded effects rest on it, and so consensus: ledger `effect_holds`,
    used by the mempool's re-check, the proposer's build and validators' execution): a transfer applied
    on heads that differ only in height and time, in the same period, writes the same, whether its
    accounts are settled already or behind by several periods (demurrage and UBI to settle)."""
    from ledger.records import ChainHead
    from ledger.transition import HEAD_PERIOD_ONLY_TYPES

    assert HEAD_PERIOD_ONLY_TYPES == {"transfer"}
    db = LedgerDB(MemoryStore(), make_genesis({1: 10**6, 2: 10**5, 3: 0}, members=(1, 2)))
    raw = transfer_tx(1, recipient, amount, 0)
    writes = []
    for height in heights:
        state = db.view()
        state.set_head(ChainHead(height, period * PERIOD_MS + height % PERIOD_MS, period))
        process_tx(state, raw)
        writes.append({k: v for k, v in state.changes.items() if k != b"c"})
    assert writes[0] == writes[1]
