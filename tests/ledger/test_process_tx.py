"""process_tx: wire bytes or a decoded Tx, and the SignatureCache that makes each check happen once."""

from __future__ import annotations

from unittest import mock

from ledger import LedgerDB, MemoryStore, SignatureCache, decode_tx, process_tx
from ledger import transition
from tests.ledger.helpers import make_genesis, transfer_tx


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


def test_the_cache_is_bounded() -> None:
    cache = SignatureCache(capacity=10, decoded_capacity=4)
    for nonce in range(12):
        cache.remember(decode_tx(transfer_tx(1, 2, 10, nonce)))
    assert len(cache) <= 10
    assert len(cache._decoded) <= 4
    assert cache.decoded(transfer_tx(1, 2, 10, 11)) is not None  # the newest are kept
