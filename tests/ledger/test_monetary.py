"""The monetary rules at the ledger level: UBI without a claim, accrual on joining and leaving,
demurrage to the pool, queries that write nothing, slashing into the pool."""

from __future__ import annotations

from ledger import BlockInput, LedgerDB, MemoryStore
from ledger.constants import RATE_SCALE
from ledger.monetary import compute_settlement, compute_ubi_per_member
from ledger.queries import get_account_info, get_supply
from tests.ledger.helpers import PERIOD_MS, commit_block, key, make_genesis, member_add_tx, member_remove_tx, transfer_tx


def balance(db: LedgerDB, i: int) -> int:
    return get_account_info(db.view(), key(i).address)["balance"]


def test_members_receive_ubi_each_period_without_any_transaction() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 0, 2: 0}, commons_pool=1_000_000, members=(1, 2), demurrage_rate=0))
    commit_block(db, time_ms=3 * PERIOD_MS)  # opens periods 1, 2, 3; nobody transacts
    # 10% of the pool each period, split between two members: 50,000 then 45,000 then 40,500
    assert balance(db, 1) == balance(db, 2) == 50_000 + 45_000 + 40_500
    assert get_supply(db.view())["commons_pool"] == 1_000_000 - 2 * 135_500


def test_a_new_member_accrues_from_the_period_after_joining_and_keeps_it_after_leaving() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 0, 3: 0}, commons_pool=1_000_000, members=(1,), demurrage_rate=0))
    commit_block(db, (member_add_tx(3, 0),), time_ms=PERIOD_MS + 1)  # joins in period 1
    assert balance(db, 3) == 0
    commit_block(db, time_ms=2 * PERIOD_MS)  # period 2: pool 900,000 -> 10% over two members
    assert balance(db, 3) == 45_000
    commit_block(db, (member_remove_tx(3, 1),), time_ms=2 * PERIOD_MS + 1)
    commit_block(db, time_ms=5 * PERIOD_MS)
    assert balance(db, 3) == 45_000  # nothing after leaving, nothing lost
    assert db.view().get_account(key(3).address).balance == 45_000  # credited at leaving


def test_idle_demurrage_moves_to_the_pool_when_the_account_is_touched() -> None:
    rate = RATE_SCALE // 100
    db = LedgerDB(MemoryStore(), make_genesis({1: 1_000_000, 2: 0}, commons_pool=0, demurrage_rate=rate, ubi_fraction=0))
    commit_block(db, time_ms=3 * PERIOD_MS)
    assert balance(db, 1) == 970_299
    assert get_supply(db.view())["commons_pool"] == 0  # owed, not yet settled
    commit_block(db, (transfer_tx(1, 2, 1, 0),), time_ms=3 * PERIOD_MS + 1)
    supply = get_supply(db.view())
    assert supply["commons_pool"] == supply["demurrage_collected"] == 29_701
    assert balance(db, 1) == 970_298


def test_a_long_idle_gap_settles_exactly_as_the_recurrence() -> None:
    rate = RATE_SCALE // 10_000
    db = LedgerDB(MemoryStore(), make_genesis({1: 10**12}, commons_pool=0, demurrage_rate=rate, ubi_fraction=0))
    commit_block(db, time_ms=10_000 * PERIOD_MS)
    expected = 10**12
    for _ in range(10_000):
        expected -= expected * rate // RATE_SCALE
    assert balance(db, 1) == expected == compute_settlement(10**12, 0, 10_000, rate, None, lambda q: 0)[0]


def test_queries_write_nothing() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 1_000_000}, members=(1,)))
    commit_block(db, time_ms=4 * PERIOD_MS)
    stored = dict(db.store._data)  # type: ignore[attr-defined]
    root = db.state_root
    info = get_account_info(db.view(), key(1).address)
    assert info["pending_ubi"] > 0 and info["pending_demurrage"] > 0
    assert info["balance"] == info["stored_balance"] - info["pending_demurrage"] + info["pending_ubi"]
    assert db.store._data == stored and db.state_root == root  # type: ignore[attr-defined]


def test_slashing_moves_the_fraction_to_the_pool_and_returns_the_rest() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 0}, commons_pool=0, validators={5: 2_000_000}, ubi_fraction=0))
    db.commit(db.execute(BlockInput(1, 1, (), (key(5).address,))))
    supply = get_supply(db.view())
    assert supply["bonded"] == 0
    assert supply["commons_pool"] == supply["slashed"] == 100_000  # 5%
    assert balance(db, 5) == 1_900_000
    assert db.view().get_validator(key(5).address) is None
    db.commit(db.execute(BlockInput(2, 2, (), (key(5).address,))))  # repeated evidence slashes nothing more
    assert get_supply(db.view())["slashed"] == 100_000


def test_a_block_after_a_very_long_gap_opens_periods_in_bounded_work() -> None:
    db = LedgerDB(MemoryStore(), make_genesis({1: 0, 2: 0}, commons_pool=1_000_000, members=(1, 2), demurrage_rate=0))
    executed = db.execute(BlockInput(1, 10_000_000 * PERIOD_MS))
    records = [k for k in executed.state.changes if k[:1] == b"p"]
    # 10% of the pool each period: UBI per member reaches 0 after a few hundred periods, and later
    # periods pay 0 without a record
    assert 0 < len(records) < 500
    db.commit(executed)
    supply = get_supply(db.view())
    assert supply["commons_pool"] + supply["ubi_reserve"] == 1_000_000
    assert compute_ubi_per_member(supply["commons_pool"], RATE_SCALE // 10, 2) == 0
