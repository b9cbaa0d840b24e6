"""Proofs against past state roots, from the blocks' undo logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import HistoryUnavailable, LedgerDB, LevelDBStore, MemoryStore
from ledger.merkle import verify_proof
from ledger.records import account_key
from tests.ledger.helpers import commit_block, key, make_genesis, transfer_tx


def build_chain(db: LedgerDB, transfers: list[tuple[int, int, int]]) -> dict[int, dict[int, bytes | None]]:
    """Commit one block per transfer; return, per height, each account's committed value bytes."""
    nonces = {i: 0 for i in range(1, 6)}
    seen: dict[int, dict[int, bytes | None]] = {0: {i: db.prove(account_key(key(i).address))[0] for i in range(1, 6)}}
    for a, b, amount in transfers:
        commit_block(db, (transfer_tx(a, b, amount, nonces[a]),) if a != b else ())
        if a != b:
            nonces[a] += 1
        seen[db.head.height] = {i: db.prove(account_key(key(i).address))[0] for i in range(1, 6)}
    return seen


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 50)), min_size=1, max_size=8))
def test_every_past_height_proves_the_value_it_had(transfers: list[tuple[int, int, int]]) -> None:
    db = LedgerDB(MemoryStore(), make_genesis({i: 1_000 for i in range(1, 6)}))
    seen = build_chain(db, transfers)
    for height, values in seen.items():
        root = db.root_at(height)
        for i, expected in values.items():
            k = account_key(key(i).address)
            value, proof = db.prove(k, height)
            assert value == expected
            assert verify_proof(root, k, value, proof)
            if height < db.head.height and expected != seen[db.head.height][i]:
                assert not verify_proof(db.state_root, k, value, proof)


def test_heights_past_the_history_window_are_refused(tmp_path: Path) -> None:
    db = LedgerDB(LevelDBStore(str(tmp_path / "db")), make_genesis(), history_heights=3)
    build_chain(db, [(1, 2, 1)] * 6)
    assert db.head.height == 6
    db.prove(account_key(key(1).address), 3)  # the oldest kept
    with pytest.raises(HistoryUnavailable):
        db.prove(account_key(key(1).address), 2)
    with pytest.raises(HistoryUnavailable):
        db.prove(account_key(key(1).address), 7)
    assert db.store.get(b"meta/undo/" + (2).to_bytes(8, "big")) is None  # pruned in the commit batch
