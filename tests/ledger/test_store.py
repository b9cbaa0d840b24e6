"""Storage: atomic per-block writes, reopening, and refusing a store of another genesis."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import BlockInput, Code, InvariantViolation, LedgerDB, LevelDBStore, MemoryStore, Rejected
from ledger.records import account_key
from ledger.state import STATE_PREFIX
from tests.ledger.helpers import commit_block, key, make_genesis, new_ledger, transfer_tx


def test_reopened_leveldb_store_has_the_same_head_and_root(tmp_path: Path) -> None:
    genesis = make_genesis()
    store = LevelDBStore(str(tmp_path / "db"))
    db = LedgerDB(store, genesis)
    commit_block(db, (transfer_tx(1, 2, 100, 0),))
    commit_block(db, (transfer_tx(2, 1, 7, 0),))
    head, root = db.head, db.state_root
    store.close()
    reopened = LedgerDB(LevelDBStore(str(tmp_path / "db")), genesis)
    assert reopened.head == head
    assert reopened.state_root == root
    assert reopened.root_at(2) == root


def test_a_store_of_another_genesis_is_refused(tmp_path: Path) -> None:
    store = LevelDBStore(str(tmp_path / "db"))
    LedgerDB(store, make_genesis())
    store.close()
    with pytest.raises(Rejected) as err:
        LedgerDB(LevelDBStore(str(tmp_path / "db")), make_genesis(commons_pool=5))
    assert err.value.code is Code.GENESIS_INVALID


class CrashingStore(MemoryStore):
    """Dies in the middle of writing a batch: nothing of the batch is applied (LevelDB batches are atomic)."""

    crash = False

    def write_batch(self, changes, sync=True):  # type: ignore[no-untyped-def]
        if self.crash:
            raise OSError("power cut")
        super().write_batch(changes, sync)


def test_a_crash_during_commit_leaves_the_last_committed_state_whole() -> None:
    genesis = make_genesis()
    store = CrashingStore()
    db = LedgerDB(store, genesis)
    commit_block(db, (transfer_tx(1, 2, 100, 0),))
    before = dict(store._data)
    store.crash = True
    with pytest.raises(OSError):
        commit_block(db, (transfer_tx(1, 2, 5, 1),))
    assert store._data == before
    store.crash = False
    recovered = LedgerDB(store, genesis)  # a restart reads only what was committed
    assert recovered.head.height == 1
    assert recovered.state_root == LedgerDB(_replay(genesis), genesis).state_root


def _replay(genesis):  # type: ignore[no-untyped-def]
    store = MemoryStore()
    db = LedgerDB(store, genesis)
    commit_block(db, (transfer_tx(1, 2, 100, 0),), time_ms=10_000)
    return store


def test_state_keys_live_under_the_state_prefix() -> None:
    store = MemoryStore()
    LedgerDB(store, make_genesis())
    assert any(k.startswith(STATE_PREFIX) for k in store._data)


def test_a_half_written_genesis_is_cleared_and_written_again() -> None:
    """A crash while writing genesis leaves state entries without the genesis mark; reopening clears
    them (they might even be of another genesis) and writes the genesis whole."""
    genesis = make_genesis()
    clean = MemoryStore()
    LedgerDB(clean, genesis)
    store = MemoryStore()
    store.write_batch({STATE_PREFIX + b"a" + b"\x07" * 32: b"\x93\x05\x00\x00"})  # a stray entry, no mark
    db = LedgerDB(store, genesis)
    assert store._data == clean._data
    assert db.state_root == LedgerDB(clean, genesis).state_root


def test_a_genesis_read_from_a_file_keeps_its_hash_but_not_its_document(tmp_path: Path) -> None:
    import json

    from ledger import Genesis
    from ledger.crypto import sha256
    from ledger.encoding import encode

    built = make_genesis()
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(built.document))
    loaded = Genesis.from_file(str(path))
    assert loaded.document is None
    assert loaded.hash == built.hash == sha256(encode(built.document))


@pytest.mark.parametrize("key", [STATE_PREFIX + b"a" + bytes(32), b"meta/head"])
def test_extra_records_may_not_write_the_ledgers_own_keys(key: bytes) -> None:
    """A block's extra records (the block store's) go in the same batch; one under the state or
    meta prefix would bypass the state root, so the commit refuses and writes nothing."""
    store = MemoryStore()
    db = LedgerDB(store, make_genesis())
    before = dict(store._data)
    executed = db.execute(BlockInput(1, 1_000, ()))
    with pytest.raises(InvariantViolation, match="extra records"):
        db.commit(executed, extra={b"b/1": b"ok", key: b"forged"})
    assert store._data == before and db.head.height == 0
    db.commit(executed, extra={b"b/1": b"ok"})
    assert store._data[b"b/1"] == b"ok" and db.head.height == 1


def test_commit_records_the_state_keys_its_block_wrote() -> None:
    ledger = new_ledger(make_genesis({1: 1_000, 2: 1_000, 3: 1_000}))
    assert ledger.last_written is None
    executed = ledger.execute(BlockInput(1, 1, (transfer_tx(1, 2, 5, 0),)))
    ledger.commit(executed)
    assert ledger.last_written == (1, frozenset(executed.state.changes))
    assert {account_key(key(1).address), account_key(key(2).address), b"c"} <= ledger.last_written[1]
    assert account_key(key(3).address) not in ledger.last_written[1]
    ledger.commit(ledger.execute(BlockInput(2, 2, ())))
    assert ledger.last_written == (2, frozenset({b"c"}))  # an empty block writes the head alone
