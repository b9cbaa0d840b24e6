"""Housing units, allocation and irrevocable rights: specs/housing.md."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import BlockInput, Code, LedgerDB, Rejected
from ledger.monetary import compute_settlement_with_fee
from ledger.housing import get_application_info, get_housing_queue, get_right_info, get_unit_info
from ledger.queries import get_account_info
from ledger.records import node_key
from tests.ledger.helpers import (
    HOUSING,
    addr,
    assert_rejected,
    commit_block,
    community_genesis,
    council_nonce,
    council_tx,
    member_add_tx,
    member_remove_tx,
    new_ledger,
    nonce_of,
    signed_tx,
)

DISABILITY, CHILDREN, ELDERLY = (1 << HOUSING["need_flags"].index(f) for f in ("disability", "children", "elderly"))



def apply(db: LedgerDB, i: int, household: int, needs: int = 0) -> bytes:
    return signed_tx("housing_apply", i, nonce_of(db, i), household=household, needs=needs)


def by_holder(db: LedgerDB, i: int, tx_type: str, unit: str, node: str = "north", cosigners: tuple[int, ...] = (), **fields: Any) -> bytes:
    return signed_tx(tx_type, i, nonce_of(db, i), cosigners=cosigners, node=node, unit=unit, **fields)


def unit_add(nonce: int, unit: str, capacity: int, node: str = "north", **kw: Any) -> bytes:
    return council_tx("unit_add", nonce, node, unit=unit, capacity=capacity, attributes=bytes(32), **kw)


def holder_of(db: LedgerDB, unit: str, node: str = "north") -> bytes | None:
    right = get_unit_info(db.view(), node, unit)["right"]
    return None if right is None else bytes.fromhex(right["holder"])


def holders(db: LedgerDB, *units: str) -> dict[str, int | None]:
    """unit -> the person index holding it (None if vacant)."""
    people = {addr(i): i for i in range(1, 10)}
    return {u: people.get(holder_of(db, u) or b"") for u in units}


def housed_ledger(**kw: Any) -> LedgerDB:
    """north members 1..5; unit a (capacity 3) held by 1 since period 1; unit b (capacity 2) vacant."""
    db = new_ledger(community_genesis(north=(1, 2, 3, 4, 5), units=(("a", 3), ("b", 1)), **kw))
    commit_block(db, (apply(db, 1, 3),))
    assert holders(db, "a", "b") == {"a": 1, "b": None}
    return db


# the worked example (specs/housing.md §8) ------------------------------------------------------------
def test_worked_example() -> None:
    db = new_ledger(community_genesis(north=(1, 2, 3, 4, 5, 6, 7)))
    commit_block(db, (apply(db, 1, 2), apply(db, 2, 4, CHILDREN), apply(db, 3, 1, DISABILITY | ELDERLY)))  # period 1
    commit_block(db, (apply(db, 4, 2, CHILDREN), apply(db, 5, 3, CHILDREN)))  # period 2
    queue = get_housing_queue(db.view(), "north")
    assert [(q["address"], q["need_level"], q["applied_period"], q["seq"]) for q in queue] == [
        (addr(3).hex(), 2, 1, 2), (addr(2).hex(), 1, 1, 1), (addr(4).hex(), 1, 2, 3), (addr(5).hex(), 1, 2, 4), (addr(1).hex(), 0, 1, 0)
    ]

    commit_block(db, (unit_add(0, "a", 3),))  # period 3
    assert holders(db, "a") == {"a": 3}  # the most needs, though the worst fit
    commit_block(db, (unit_add(1, "b", 3),), time_ms=db.head.time_ms + 1)
    assert holders(db, "b") == {"b": 5}  # same level and period as 4; the best fit
    commit_block(db, (unit_add(2, "c", 4), unit_add(3, "d", 2)), time_ms=db.head.time_ms + 1)
    assert holders(db, "c", "d") == {"c": 2, "d": 4}  # c: waiting since period 1; d: need before waiting
    assert [q["address"] for q in get_housing_queue(db.view(), "north")] == [addr(1).hex()]

    commit_block(db, (apply(db, 6, 1),))  # period 4
    assert get_application_info(db.view(), addr(6))["seq"] == 5  # type: ignore[index]
    commit_block(db, (by_holder(db, 3, "housing_release", "a"),), time_ms=db.head.time_ms + 1)
    assert holders(db, "a") == {"a": 1}  # waiting since period 1, before 6

    commit_block(db, (unit_add(4, "e", 4),))  # period 5
    assert holders(db, "e") == {"e": 6}
    commit_block(db, (unit_add(5, "f", 2), unit_add(6, "g", 1)), time_ms=db.head.time_ms + 1)
    assert holders(db, "f", "g") == {"f": None, "g": None}
    commit_block(db, (apply(db, 7, 1),), time_ms=db.head.time_ms + 1)
    assert holders(db, "f", "g") == {"f": None, "g": 7}  # the smallest that fits

    right = get_right_info(db.view(), addr(5))
    assert right is not None
    assert (right["unit"], right["household"], right["needs"], right["applied_period"], right["application_seq"]) == ("b", 3, CHILDREN, 2, 4)
    assert (right["granted_period"], right["role"], right["history"][0]["event"]) == (3, "holder", "granted")
    released = get_unit_info(db.view(), "north", "a")
    assert released["rights_granted"] == 2 and released["right"]["grant"] == 1


# rejections (one test each) ---------------------------------------------------------------------------
def test_unknown_unit_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 1, "housing_release", "zz"), Code.UNKNOWN_UNIT)
    with pytest.raises(Rejected) as info:
        get_unit_info(db.view(), "north", "zz")
    assert info.value.code == Code.UNKNOWN_UNIT


def test_unknown_node_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 1, "housing_release", "a", node="west"), Code.UNKNOWN_NODE)


def test_non_member_cannot_apply() -> None:
    db = housed_ledger()
    assert_rejected(db, apply(db, 8, 1), Code.NOT_MEMBER)


def test_applying_twice_is_rejected() -> None:
    db = housed_ledger()
    commit_block(db, (apply(db, 2, 2),))  # nothing fits: waits
    assert_rejected(db, apply(db, 2, 1), Code.ALREADY_APPLIED)


def test_a_holder_cannot_apply() -> None:
    db = housed_ledger()
    assert_rejected(db, apply(db, 1, 1), Code.ALREADY_HOUSED)


def test_releasing_someone_elses_right_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 2, "housing_release", "a"), Code.NOT_HOLDER)
    assert_rejected(db, by_holder(db, 2, "housing_release", "b"), Code.NOT_HOLDER)  # a vacant unit


def test_the_council_cannot_release_a_right() -> None:
    db = housed_ledger()
    council = council_tx("housing_release", 0, unit="a")  # from the council account, m of n signatures
    assert_rejected(db, council, Code.UNAUTHORIZED)


def test_the_council_cannot_remove_a_holders_membership() -> None:
    db = housed_ledger()
    assert_rejected(db, member_remove_tx(1, 0), Code.HOLDER_MEMBERSHIP)


def test_withdrawing_without_an_application_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, signed_tx("housing_withdraw", 2, 0), Code.NOT_APPLIED)


def test_household_larger_than_any_unit_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, apply(db, 2, 17), Code.HOUSEHOLD_TOO_LARGE)


def test_unknown_need_flag_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, apply(db, 2, 1, 0b1000), Code.UNKNOWN_NEED_FLAG)


def test_adding_a_coholder_needs_the_coholders_signature() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 1, "housing_coholder_add", "a", coholder=addr(2)), Code.UNAUTHORIZED)


def test_only_the_holder_adds_coholders() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 3, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)), Code.NOT_HOLDER)


def test_a_housed_or_waiting_coholder_is_rejected() -> None:
    db = housed_ledger()
    commit_block(db, (apply(db, 2, 2), by_holder(db, 1, "housing_coholder_add", "a", cosigners=(3,), coholder=addr(3))))
    assert_rejected(db, by_holder(db, 1, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)), Code.ALREADY_APPLIED)
    commit_block(db, (council_tx("unit_add", 0, unit="c", capacity=2, attributes=bytes(32)),))
    assert holder_of(db, "c") == addr(2)
    assert_rejected(db, by_holder(db, 1, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)), Code.ALREADY_HOUSED)


def test_coholders_beyond_the_capacity_are_rejected() -> None:
    db = housed_ledger()
    commit_block(db, (
        by_holder(db, 1, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)),
        signed_tx("housing_coholder_add", 1, 2, cosigners=(3,), node="north", unit="a", coholder=addr(3)),
    ))
    assert_rejected(db, by_holder(db, 1, "housing_coholder_add", "a", cosigners=(4,), coholder=addr(4)), Code.HOUSEHOLD_TOO_LARGE)


def test_removing_a_non_coholder_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 1, "housing_coholder_remove", "a", coholder=addr(2)), Code.NOT_CO_HOLDER)


def test_a_modification_outside_the_guidelines_is_rejected_with_the_reason() -> None:
    db = housed_ledger()
    assert_rejected(db, by_holder(db, 1, "housing_modify", "a", kind="pool", area_delta=1), Code.MODIFICATION_KIND)
    assert_rejected(db, by_holder(db, 1, "housing_modify", "a", kind="extension", area_delta=21), Code.MODIFICATION_OUT_OF_BOUNDS)
    assert_rejected(db, by_holder(db, 1, "housing_modify", "a", kind="extension", area_delta=-21), Code.MODIFICATION_OUT_OF_BOUNDS)
    assert_rejected(db, by_holder(db, 2, "housing_modify", "a", kind="extension", area_delta=1), Code.NOT_HOLDER)


def test_a_modification_past_the_units_total_bound_is_rejected() -> None:
    db = housed_ledger()
    commit_block(db, (
        by_holder(db, 1, "housing_modify", "a", kind="extension", area_delta=20),
        signed_tx("housing_modify", 1, 2, node="north", unit="a", kind="extension", area_delta=20),
    ))
    assert get_unit_info(db.view(), "north", "a")["area_delta"] == 40
    with pytest.raises(Rejected) as info:
        db.check_tx(by_holder(db, 1, "housing_modify", "a", kind="accessibility", area_delta=1))
    assert info.value.code == Code.MODIFICATION_OUT_OF_BOUNDS and "total 41" in info.value.message


def test_a_unit_too_large_or_taken_is_rejected() -> None:
    db = housed_ledger()
    assert_rejected(db, unit_add(0, "z", 17), Code.PARAM_OUT_OF_BOUNDS)
    assert_rejected(db, unit_add(0, "a", 2), Code.ALREADY_EXISTS)
    assert_rejected(db, council_tx("unit_add", 0, signers=(900,), unit="z", capacity=2, attributes=bytes(32)), Code.BELOW_THRESHOLD)


# rights ----------------------------------------------------------------------------------------------------
def test_accepted_modifications_are_recorded_on_the_history() -> None:
    db = housed_ledger()
    commit_block(db, (
        by_holder(db, 1, "housing_modify", "a", kind="accessibility", area_delta=0),
        signed_tx("housing_modify", 1, 2, node="north", unit="a", kind="extension", area_delta=-5),
    ))
    history = get_right_info(db.view(), addr(1))["history"]  # type: ignore[index]
    assert [(h["event"], h["kind"], h["area_delta"]) for h in history] == [
        ("granted", "", 0), ("modified", "accessibility", 0), ("modified", "extension", -5)
    ]
    assert get_unit_info(db.view(), "north", "a")["area_delta"] == -5


def test_release_returns_the_unit_to_the_next_applicant() -> None:
    db = housed_ledger()
    commit_block(db, (apply(db, 2, 3), apply(db, 3, 2, CHILDREN)))
    commit_block(db, (by_holder(db, 1, "housing_release", "a"),))
    assert holder_of(db, "a") == addr(3)  # need level 1 before 0
    assert get_right_info(db.view(), addr(1)) is None
    assert get_application_info(db.view(), addr(2)) is not None
    commit_block(db, (signed_tx("housing_withdraw", 2, 1),))
    assert get_housing_queue(db.view(), "north") == []


def test_a_released_unit_nobody_fits_becomes_vacant_and_the_holder_may_apply_again() -> None:
    db = housed_ledger()
    commit_block(db, (by_holder(db, 1, "housing_release", "a"), signed_tx("housing_apply", 1, 2, household=1, needs=0)))
    assert holders(db, "a", "b") == {"a": None, "b": 1}  # the best fit of the two vacant units


def test_coholders_join_and_leave_the_household() -> None:
    db = housed_ledger()
    commit_block(db, (by_holder(db, 1, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)),))
    assert get_right_info(db.view(), addr(2))["role"] == "co_holder"  # type: ignore[index]
    commit_block(db, (by_holder(db, 2, "housing_coholder_remove", "a", coholder=addr(2)),))  # leaves on its own
    assert get_right_info(db.view(), addr(2)) is None
    assert get_right_info(db.view(), addr(1))["co_holders"] == []  # type: ignore[index]


def test_when_the_holder_leaves_the_right_passes_to_the_first_member_coholder() -> None:
    db = housed_ledger()
    commit_block(db, (
        by_holder(db, 1, "housing_coholder_add", "a", cosigners=(6,), coholder=addr(6)),  # 6 is not a member
        signed_tx("housing_coholder_add", 1, 2, cosigners=(2,), node="north", unit="a", coholder=addr(2)),
    ))
    commit_block(db, (signed_tx("member_leave", 1, 3),))
    right = get_right_info(db.view(), addr(2))
    assert right is not None and right["role"] == "holder" and right["co_holders"] == [addr(6).hex()]
    assert right["history"][-1]["event"] == "succession" and right["granted_period"] == 1
    assert get_right_info(db.view(), addr(1)) is None


def test_a_coholder_who_moved_to_another_node_does_not_succeed() -> None:
    db = housed_ledger()
    commit_block(db, (
        by_holder(db, 1, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)),
        signed_tx("member_leave", 2, 0),
        member_add_tx(2, 0, node="south"),
    ))
    commit_block(db, (apply(db, 3, 2), signed_tx("member_leave", 1, 2)))
    assert holder_of(db, "a") == addr(3)  # released, then allocated to the waiting 3
    assert get_right_info(db.view(), addr(2)) is None


def test_a_rejected_block_leaves_every_right_as_it_was() -> None:
    db = housed_ledger()
    before = get_right_info(db.view(), addr(1))
    head = db.head
    with pytest.raises(Rejected):
        db.execute(BlockInput(head.height + 1, head.time_ms, (by_holder(db, 2, "housing_release", "a"),)))
    assert get_right_info(db.view(), addr(1)) == before


# usage fee ---------------------------------------------------------------------------------------------------
def ubi(db: LedgerDB, q: int) -> int:
    return db.view().get_period_record(q).ubi_per_member


def test_usage_fee_is_taken_only_from_ubi_from_the_period_after_the_grant() -> None:
    db = housed_ledger(housing_fee=300, demurrage_rate=0)  # granted in period 1
    for _ in range(4):
        commit_block(db)  # periods 2..5
    balance = get_account_info(db.view(), addr(1))["balance"]
    credits = [ubi(db, q) for q in range(1, 6)]
    fees = [min(300, u) for u in credits[1:]]
    assert balance == 1_000_000 + sum(credits) - sum(fees)
    assert get_account_info(db.view(), addr(2))["balance"] == 1_000_000 + sum(credits)  # no right, no fee
    commit_block(db, (signed_tx("transfer", 1, 1, to=addr(2), amount=1),), time_ms=db.head.time_ms)  # settles 1
    assert db.totals().usage_fees == sum(fees)


def test_usage_fee_never_exceeds_the_ubi_credit() -> None:
    db = housed_ledger(housing_fee=10_000, demurrage_rate=0, ubi_fraction=10**15)  # UBI well below the fee
    for _ in range(3):
        commit_block(db)
    credits = [ubi(db, q) for q in range(1, 5)]
    assert 0 < max(credits) < 10_000
    assert get_account_info(db.view(), addr(1))["balance"] == 1_000_000 + credits[0]  # every later credit went to the fee


def eager_balance(db: LedgerDB, i: int, fees: dict[int, int], granted_period: int) -> int:
    """The holder's balance settled one period at a time with the ledger's own PeriodRecords and
    the fee schedule `fees` (period -> fee in force), as specs/housing.md §7 states it."""
    balance, rate = 1_000_000, db.view().get_params().demurrage_rate
    for q in range(1, db.head.period + 1):
        fee = (lambda p: fees[p]) if q > granted_period else None
        balance = compute_settlement_with_fee(balance, q - 1, q, rate, 0, lambda p: ubi(db, p), fee)[0]
    return balance


@pytest.mark.parametrize("touch_every_period", [True, False])
def test_fee_changes_keep_settlement_path_independent(touch_every_period: bool) -> None:
    """The holder is touched every period (an accepted modification of area 0) or never; either
    way its balance is the per-period recurrence over the fees in force each period."""
    db = housed_ledger(housing_fee=100)  # granted in period 1
    schedule = [250, 250, 5, 5, 7_000, 0]  # set in periods 2..7, in force from 3..8
    for fee in schedule:
        txs = [council_tx("node_set_params", council_nonce(db), housing_fee=fee)]
        if touch_every_period:
            txs.append(by_holder(db, 1, "housing_modify", "a", kind="accessibility", area_delta=0))
        commit_block(db, tuple(txs))
    commit_block(db)  # period 8
    fees = {1: 100, 2: 100} | {p + 3: fee for p, fee in enumerate(schedule)}
    assert get_account_info(db.view(), addr(1))["balance"] == eager_balance(db, 1, fees, granted_period=1)


def test_fee_changes_take_effect_from_the_next_period() -> None:
    db = housed_ledger(housing_fee=100, demurrage_rate=0)  # granted in period 1
    commit_block(db, (council_tx("node_set_params", 0, housing_fee=250),))  # period 2: still 100
    commit_block(db)  # period 3: 250
    credits = {q: ubi(db, q) for q in (1, 2, 3)}
    expected = 1_000_000 + sum(credits.values()) - min(100, credits[2]) - min(250, credits[3])
    assert get_account_info(db.view(), addr(1))["balance"] == expected
    assert db.view().get(node_key("north")).fee_epochs == 2


def test_succession_moves_the_fee_to_the_successor() -> None:
    db = housed_ledger(housing_fee=300, demurrage_rate=0)
    commit_block(db, (by_holder(db, 1, "housing_coholder_add", "a", cosigners=(2,), coholder=addr(2)),))  # period 2
    commit_block(db, (signed_tx("member_leave", 1, 2),))  # period 3: 2 holds from now
    commit_block(db)  # period 4
    credits = {q: ubi(db, q) for q in range(1, 5)}
    assert get_account_info(db.view(), addr(2))["balance"] == 1_000_000 + sum(credits.values()) - min(300, credits[4])
    assert get_account_info(db.view(), addr(1))["balance"] == 1_000_000 + sum(credits[q] for q in (1, 2, 3)) - sum(
        min(300, credits[q]) for q in (2, 3)
    )


def test_queue_query_for_an_unknown_node_is_rejected() -> None:
    db = housed_ledger()
    with pytest.raises(Rejected) as info:
        get_housing_queue(db.view(), "west")
    assert info.value.code == Code.UNKNOWN_NODE
