"""Resource quotas: specs/quotas.md."""

from __future__ import annotations

import pytest

from ledger import Code, LedgerDB, Rejected
from ledger.queries import get_account_info
from ledger.quotas import get_pool_info, get_quota_info
from tests.ledger.helpers import (
    ENERGY_PROVIDER,
    WATER_PROVIDER,
    addr,
    assert_rejected,
    commit_block,
    community_genesis,
    council_tx,
    member_add_tx,
    new_ledger,
    nonce_of,
    signed_tx,
)



def quota(db: LedgerDB, i: int, resource: str = "water") -> dict[str, int]:
    info = get_quota_info(db.view(), addr(i), resource)
    assert info is not None
    return info  # type: ignore[return-value]


def trade(db: LedgerDB, seller: int, buyer: int, amount: int, resource: str = "water", price: int = 0) -> bytes:
    fields = {"price": price} if price else {}
    cosigners = (buyer,) if price else ()
    return signed_tx("quota_trade", seller, nonce_of(db, seller), cosigners=cosigners, resource=resource, to=addr(buyer), amount=amount, **fields)


def consume(db: LedgerDB, member: int, amount: int, resource: str = "water", provider: int = WATER_PROVIDER) -> bytes:
    return signed_tx("quota_consume", provider, nonce_of(db, provider), member=addr(member), resource=resource, amount=amount)


def holdings(db: LedgerDB, *people: int) -> list[int]:
    return [quota(db, i)["holding"] for i in people]


def pool(db: LedgerDB, resource: str = "water") -> dict[str, int]:
    return get_pool_info(db.view(), "north", resource)  # type: ignore[return-value]


def worked_example_ledger() -> LedgerDB:
    """specs/quotas.md §7: members A=1, B=2, C=3 of north; water cap 1,000, floor 50%, ceiling 150%."""
    db = new_ledger(community_genesis(north=(1, 2, 3)))
    commit_block(db)  # period 1 opens with 3 members
    return db


def test_worked_example() -> None:
    db = worked_example_ledger()
    a, b, c, d = 1, 2, 3, 4
    p = pool(db)
    assert (p["period"], p["members"], p["allowance"], p["floor"], p["ceiling"]) == (1, 3, 333, 167, 499)

    commit_block(db, (trade(db, a, b, 100),), time_ms=db.head.time_ms + 1)
    assert holdings(db, a, b) == [233, 433] and pool(db)["granted"] == 666

    assert_rejected(db, trade(db, a, b, 67), Code.QUOTA_FLOOR)
    commit_block(db, (trade(db, a, b, 66),), time_ms=db.head.time_ms + 1)
    assert holdings(db, a, b) == [167, 499]

    assert_rejected(db, trade(db, c, b, 1), Code.QUOTA_CEILING)
    commit_block(db, (consume(db, b, 300),), time_ms=db.head.time_ms + 1)
    assert (quota(db, b)["consumed"], quota(db, b)["left"]) == (300, 199)
    assert (pool(db)["granted"], pool(db)["consumed"]) == (666, 300)
    assert_rejected(db, consume(db, b, 200), Code.QUOTA_EXCEEDED)

    commit_block(db, (member_add_tx(d, 0),), time_ms=db.head.time_ms + 1)
    dq = quota(db, d)
    assert (dq["allowance"], dq["floor"], dq["ceiling"], dq["holding"]) == (0, 0, 499, 0)
    commit_block(db, (trade(db, c, d, 100), council_tx("quota_set_cap", 1, resource="water", cap=1_200)), time_ms=db.head.time_ms + 1)
    assert holdings(db, c, d) == [233, 100]
    p = pool(db)
    assert (p["period"], p["cap"], p["next_cap"], p["granted"], p["consumed"]) == (1, 1_000, 1_200, 999, 300)

    commit_block(db)  # period 2
    p = pool(db)
    assert (p["period"], p["members"], p["cap"], p["allowance"], p["floor"], p["ceiling"]) == (2, 4, 1_200, 300, 150, 450)
    assert holdings(db, a, b, c, d) == [300, 300, 300, 300]
    assert quota(db, b)["consumed"] == 0


# rejections (one test each) ---------------------------------------------------------------------------
def test_unknown_resource_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, consume(db, 1, 10, resource="gold"), Code.UNKNOWN_RESOURCE)
    assert_rejected(db, trade(db, 1, 2, 10, resource="gold"), Code.UNKNOWN_RESOURCE)
    assert_rejected(db, council_tx("quota_set_cap", 0, resource="gold", cap=1), Code.UNKNOWN_RESOURCE)
    with pytest.raises(Rejected) as info:
        get_quota_info(db.view(), addr(1), "gold")
    assert info.value.code == Code.UNKNOWN_RESOURCE


def test_consumption_for_a_non_member_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, consume(db, 5, 10), Code.NOT_MEMBER)
    assert get_quota_info(db.view(), addr(5), "water") is None


def test_trade_by_or_to_a_non_member_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, trade(db, 5, 1, 10), Code.NOT_MEMBER)
    assert_rejected(db, trade(db, 1, 5, 10), Code.NOT_MEMBER)


def test_trade_past_the_floor_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, trade(db, 1, 2, 167), Code.QUOTA_FLOOR)  # 333 - 167 = 166 < 167


def test_trade_past_the_ceiling_is_rejected() -> None:
    db = worked_example_ledger()
    commit_block(db, (trade(db, 1, 2, 166),), time_ms=db.head.time_ms + 1)  # B 499 = ceiling
    assert_rejected(db, trade(db, 3, 2, 1), Code.QUOTA_CEILING)


def test_consumption_past_the_quota_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, consume(db, 1, 334), Code.QUOTA_EXCEEDED)


def test_selling_more_than_is_left_is_rejected() -> None:
    db = worked_example_ledger()
    commit_block(db, (trade(db, 2, 1, 150), consume(db, 1, 450)), time_ms=db.head.time_ms + 1)
    assert quota(db, 1)["left"] == 33
    assert_rejected(db, trade(db, 1, 3, 34), Code.QUOTA_EXCEEDED)


def test_consumption_by_a_key_that_is_not_a_provider_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, consume(db, 1, 10, provider=2), Code.NOT_PROVIDER)
    assert_rejected(db, consume(db, 1, 10, provider=ENERGY_PROVIDER), Code.NOT_PROVIDER)  # registered for energy only


def test_a_provider_serves_only_the_node_that_registered_it() -> None:
    db = new_ledger(community_genesis(north=(1,), south=(2,)))
    commit_block(db, (council_tx("provider_remove", 0, node="south", resource="water", provider=addr(WATER_PROVIDER)),))
    assert_rejected(db, consume(db, 2, 10), Code.NOT_PROVIDER)
    commit_block(db, (consume(db, 1, 10),))


def test_trade_between_members_of_different_nodes_is_rejected() -> None:
    db = new_ledger(community_genesis(north=(1,), south=(2,)))
    commit_block(db)
    assert_rejected(db, trade(db, 1, 2, 10), Code.NOT_SAME_NODE)


def test_trade_to_oneself_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, trade(db, 1, 1, 10), Code.SELF_TRANSFER)


def test_a_priced_trade_needs_both_signatures() -> None:
    db = worked_example_ledger()
    unsigned_by_buyer = signed_tx("quota_trade", 1, 0, resource="water", to=addr(2), amount=10, price=5)
    assert_rejected(db, unsigned_by_buyer, Code.UNAUTHORIZED)


def test_a_priced_trade_beyond_the_buyers_balance_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, trade(db, 1, 2, 10, price=10**9), Code.INSUFFICIENT_FUNDS)


def test_cap_outside_genesis_bounds_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, council_tx("quota_set_cap", 0, resource="energy", cap=99), Code.PARAM_OUT_OF_BOUNDS)
    assert_rejected(db, council_tx("quota_set_cap", 0, resource="water", cap=10**9 + 1), Code.PARAM_OUT_OF_BOUNDS)


def test_a_single_council_key_cannot_register_a_provider() -> None:
    db = worked_example_ledger()
    assert_rejected(db, council_tx("provider_add", 0, signers=(901,), resource="water", provider=addr(7)), Code.BELOW_THRESHOLD)


def test_registering_a_provider_twice_is_rejected() -> None:
    db = worked_example_ledger()
    assert_rejected(db, council_tx("provider_add", 0, resource="water", provider=addr(WATER_PROVIDER)), Code.ALREADY_EXISTS)
    assert_rejected(db, council_tx("provider_remove", 0, resource="water", provider=addr(7)), Code.NOT_PROVIDER)


# behaviour -------------------------------------------------------------------------------------------------
def test_a_priced_trade_moves_quota_one_way_and_coins_the_other() -> None:
    db = worked_example_ledger()
    before = [get_account_info(db.view(), addr(i))["balance"] for i in (1, 2)]
    commit_block(db, (trade(db, 1, 2, 50, price=7_000),), time_ms=db.head.time_ms + 1)  # same period
    assert holdings(db, 1, 2) == [283, 383]
    after = [get_account_info(db.view(), addr(i))["balance"] for i in (1, 2)]
    assert after == [before[0] + 7_000, before[1] - 7_000]


def test_newly_registered_provider_records_consumption() -> None:
    db = worked_example_ledger()
    commit_block(db, (council_tx("provider_add", 0, resource="water", provider=addr(7)),))
    commit_block(db, (consume(db, 1, 10, provider=7),))
    assert quota(db, 1)["consumed"] == 10


def test_unused_quota_expires_at_the_end_of_the_period() -> None:
    db = worked_example_ledger()
    commit_block(db, (trade(db, 1, 2, 100), consume(db, 3, 33)), time_ms=db.head.time_ms + 1)
    assert holdings(db, 1, 2, 3) == [233, 433, 333]
    commit_block(db, time_ms=db.head.time_ms + 5 * 10_000)  # several idle periods later
    assert holdings(db, 1, 2, 3) == [333, 333, 333]
    assert [quota(db, i)["consumed"] for i in (1, 2, 3)] == [0, 0, 0]


def test_a_member_who_leaves_loses_its_holdings_and_gets_no_second_allowance_on_rejoining() -> None:
    db = worked_example_ledger()
    commit_block(db, (consume(db, 1, 300),), time_ms=db.head.time_ms + 1)
    commit_block(db, (signed_tx("member_leave", 1, 0), member_add_tx(1, 0)), time_ms=db.head.time_ms + 1)
    q = quota(db, 1)
    assert (q["allowance"], q["holding"], q["consumed"]) == (0, 0, 0)
    assert pool(db)["granted"] == 333  # nothing granted twice
    commit_block(db)  # next period: counted again
    assert quota(db, 1)["allowance"] == 333


def test_allowances_are_fixed_when_the_period_opens_whatever_joins_later() -> None:
    db = new_ledger(community_genesis(north=(1, 2)))
    commit_block(db)  # period 1: 2 members
    commit_block(db, (member_add_tx(3, 0), member_add_tx(4, 1)), time_ms=db.head.time_ms + 1)
    p = pool(db)
    assert (p["members"], p["allowance"]) == (2, 500)  # first touched after the joins, still 2 members
    commit_block(db, (signed_tx("member_leave", 1, 0),), time_ms=db.head.time_ms + 1)
    assert [quota(db, i)["allowance"] for i in (2, 3, 4)] == [500, 0, 0]
    assert pool(db)["granted"] <= pool(db)["cap"]
    commit_block(db)  # period 2 opens with 3 members
    assert pool(db)["allowance"] == 333 and [quota(db, i)["allowance"] for i in (2, 3, 4)] == [333, 333, 333]


def test_a_node_without_members_allots_nothing() -> None:
    db = new_ledger(community_genesis(north=()))
    commit_block(db)
    assert pool(db)["allowance"] == 0


def test_each_resource_has_its_own_pool() -> None:
    db = worked_example_ledger()
    commit_block(db, (consume(db, 1, 200, resource="energy", provider=ENERGY_PROVIDER),))
    energy = quota(db, 1, "energy")
    assert (energy["allowance"], energy["consumed"], energy["floor"], energy["ceiling"]) == (200, 200, 40, 600)
    assert quota(db, 1)["consumed"] == 0
