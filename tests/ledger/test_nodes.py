"""Nodes, councils and membership: specs/membership.md."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import Code, Genesis, Rejected
from ledger.authorization import compute_council_address
from ledger.nodes import get_member_info, get_node_info
from ledger.queries import get_account_info
from ledger.records import Member, node_key
from tests.ledger.helpers import (
    CHAIN_ID,
    HOUSING,
    NODE_COUNCILS,
    PERIOD_MS,
    WATER,
    addr,
    assert_rejected,
    commit_block,
    community_genesis,
    council_nonce,
    council_tx,
    key,
    make_genesis,
    member_add_tx,
    member_remove_tx,
    new_ledger,
    node_doc,
    nonce_of,
    signed_tx,
)


# genesis --------------------------------------------------------------------------------------------
def test_genesis_registers_members_with_their_home_node() -> None:
    db = new_ledger(community_genesis(north=(1, 2), south=(3,)))
    view = db.view()
    assert view.get_member(addr(1)) == Member(0, "north")
    assert view.get_member(addr(3)) == Member(0, "south")
    assert view.get_member(addr(4)) is None
    assert view.get_totals().member_count == 3
    north = view.get(node_key("north"))
    assert (north.member_count, north.threshold, len(north.council_keys)) == (2, 2, 3)
    assert north.council_keys == tuple(sorted(addr(i) for i in NODE_COUNCILS["north"]))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"registrar": "00" * 32}, "no longer a genesis field"),
        ({"members": ["00" * 32]}, "no longer a genesis field"),
        ({"nodes": [node_doc("north", members=(1,)), node_doc("south", members=(1,))]}, "more than one node"),
        ({"nodes": [node_doc("north"), node_doc("north")]}, "repeat an id"),
        ({"nodes": [node_doc("north", threshold=4)]}, "threshold"),
        ({"nodes": [node_doc("north", threshold=0)]}, "threshold"),
        ({"nodes": [node_doc("north", caps={"gold": 1})]}, "unknown resource"),
        ({"nodes": [node_doc("north", caps={"water": 10**10})]}, "water"),
        ({"nodes": [node_doc("north", housing_fee=10**6)]}, "housing_fee"),
        ({"nodes": [node_doc("north", units=(("a", 17),))]}, "capacity"),
        ({"nodes": [node_doc("north", units=(("a", 1), ("a", 2)))]}, "repeats a unit"),
        ({"nodes": [dict(node_doc("north"), id="North")]}, "id must be"),
        ({"resources": [WATER, WATER]}, "repeats the id"),
        ({"resources": [dict(WATER, floor_percent=101)]}, "floor_percent"),
        ({"housing": dict(HOUSING, need_flags=[f"f{i}" for i in range(9)])}, "need_flags"),
    ],
)
def test_genesis_rejects_invalid_community_sections(change: dict[str, Any], message: str) -> None:
    doc = make_genesis(resources=[WATER], housing=HOUSING).document | change
    with pytest.raises(Rejected) as info:
        Genesis.from_document(doc)
    assert info.value.code == Code.GENESIS_INVALID
    assert message in info.value.message


# councils ------------------------------------------------------------------------------------------
def test_council_majority_registers_a_member_from_the_council_account() -> None:
    db = new_ledger(community_genesis())
    commit_block(db, (member_add_tx(4, 0),))
    view = db.view()
    assert view.get_member(addr(4)) == Member(1, "north")
    assert view.get(node_key("north")).member_count == 4
    assert council_nonce(db) == 1
    assert view.get_account(compute_council_address("north")).nonce == 1


def test_any_threshold_of_council_keys_may_act() -> None:
    db = new_ledger(community_genesis())
    a, b, c = NODE_COUNCILS["north"]
    commit_block(db, (
        council_tx("member_add", 0, signers=(b, c), member=addr(4)),
        council_tx("member_add", 1, signers=(a, b, c), member=addr(5)),
    ))
    assert db.view().get(node_key("north")).member_count == 5


def test_below_threshold_signatures_are_rejected() -> None:
    db = new_ledger(community_genesis())
    single = council_tx("member_add", 0, signers=NODE_COUNCILS["north"][:1], member=addr(4))
    assert_rejected(db, single, Code.BELOW_THRESHOLD)


def test_a_non_council_signer_is_unauthorized_even_with_a_majority() -> None:
    db = new_ledger(community_genesis())
    a, b, _ = NODE_COUNCILS["north"]
    assert_rejected(db, council_tx("member_add", 0, signers=(a, b, 7), member=addr(4)), Code.UNAUTHORIZED)
    # another node's council keys cannot act for north
    assert_rejected(db, council_tx("member_add", 0, signers=NODE_COUNCILS["south"][:2], member=addr(4)), Code.UNAUTHORIZED)


def test_a_council_action_must_come_from_the_named_nodes_council_account() -> None:
    db = new_ledger(community_genesis())
    # a member sends it from its own account, signed by two council keys
    from ledger.tx import encode_body, sign_tx

    body = encode_body("member_add", CHAIN_ID, addr(1), 0, node="north", member=addr(4))
    raw = sign_tx(CHAIN_ID, body, [key(i) for i in NODE_COUNCILS["north"][:2]])
    assert_rejected(db, raw, Code.UNAUTHORIZED)
    # a validator (any key) cannot act for a council
    assert_rejected(db, signed_tx("member_add", 8, 0, node="north", member=addr(4)), Code.UNAUTHORIZED)


def test_unknown_node_is_rejected() -> None:
    db = new_ledger(community_genesis())
    from ledger.tx import encode_body, sign_tx

    body = encode_body("member_add", CHAIN_ID, compute_council_address("west"), 0, node="west", member=addr(4))
    raw = sign_tx(CHAIN_ID, body, [key(i) for i in NODE_COUNCILS["north"][:2]])
    assert_rejected(db, raw, Code.UNKNOWN_NODE)


def test_council_nonces_are_per_council_and_replays_are_stale() -> None:
    db = new_ledger(community_genesis())
    tx = member_add_tx(4, 0)
    commit_block(db, (tx, member_add_tx(5, 0, node="south")))
    assert (council_nonce(db, "north"), council_nonce(db, "south")) == (1, 1)
    assert_rejected(db, tx, Code.NONCE_STALE)


# membership -----------------------------------------------------------------------------------------
def test_an_account_is_a_member_of_at_most_one_node() -> None:
    db = new_ledger(community_genesis(north=(1,), south=(2,)))
    assert_rejected(db, member_add_tx(2, 0), Code.ALREADY_MEMBER)
    assert_rejected(db, member_add_tx(1, 0), Code.ALREADY_MEMBER)


def test_council_removes_only_its_own_members() -> None:
    db = new_ledger(community_genesis(north=(1,), south=(2,)))
    assert_rejected(db, member_remove_tx(2, 0), Code.NOT_MEMBER)
    assert_rejected(db, member_remove_tx(4, 0), Code.NOT_MEMBER)
    commit_block(db, (member_remove_tx(1, 0),))
    assert db.view().get_member(addr(1)) is None
    assert db.view().get(node_key("north")).member_count == 0


def test_non_member_cannot_leave() -> None:
    db = new_ledger(community_genesis(north=(1,)))
    assert_rejected(db, signed_tx("member_leave", 4, 0), Code.NOT_MEMBER)


def test_moving_is_leave_then_join_by_the_new_council() -> None:
    db = new_ledger(community_genesis(north=(1, 2), south=(3,)))
    commit_block(db, (signed_tx("member_leave", 1, 0), member_add_tx(1, 0, node="south")))
    view = db.view()
    assert view.get_member(addr(1)) == Member(1, "south")
    assert (view.get(node_key("north")).member_count, view.get(node_key("south")).member_count) == (1, 2)
    assert view.get_totals().member_count == 3


def test_ubi_accrues_only_while_a_member() -> None:
    """1 is a member throughout; 4 joins in period 1 and leaves in period 3; 5 never joins."""
    db = new_ledger(community_genesis(north=(1,), demurrage_rate=0))
    commit_block(db, (member_add_tx(4, 0),))  # period 1
    commit_block(db)  # period 2
    commit_block(db, (signed_tx("member_leave", 4, 0),))  # period 3
    commit_block(db)  # period 4
    view = db.view()
    ubi = {q: view.get_period_record(q).ubi_per_member for q in range(1, 5)}
    assert view.get_period_record(2).member_count == 2 and view.get_period_record(4).member_count == 1
    assert get_account_info(db.view(), addr(1))["balance"] == 1_000_000 + sum(ubi.values())
    assert get_account_info(db.view(), addr(4))["balance"] == 1_000_000 + ubi[2] + ubi[3]
    assert get_account_info(db.view(), addr(5))["balance"] == 1_000_000


def test_leaving_and_rejoining_in_one_period_accrues_from_the_next() -> None:
    db = new_ledger(community_genesis(north=(1,), demurrage_rate=0))
    commit_block(db)  # period 1
    commit_block(db, (signed_tx("member_leave", 1, 0), member_add_tx(1, 0)))  # period 2
    assert db.view().get_member(addr(1)) == Member(2, "north")
    commit_block(db)  # period 3
    view = db.view()
    ubi = {q: view.get_period_record(q).ubi_per_member for q in range(1, 4)}
    assert get_account_info(db.view(), addr(1))["balance"] == 1_000_000 + ubi[1] + ubi[2] + ubi[3]


def test_member_count_at_period_start_is_kept_lazily() -> None:
    db = new_ledger(community_genesis(north=(1, 2, 3)))
    commit_block(db, (member_add_tx(4, 0), member_add_tx(5, 1), member_remove_tx(1, 2)))  # period 1
    north = db.view().get(node_key("north"))
    assert (north.member_count, north.members_at_start_of(1), north.members_at_start_of(2)) == (4, 3, 4)
    commit_block(db, (member_remove_tx(2, 3),))  # period 2
    north = db.view().get(node_key("north"))
    assert (north.member_count, north.members_at_start_of(2), north.members_at_start_of(3)) == (3, 4, 3)


# parameters -------------------------------------------------------------------------------------------
def test_node_parameters_change_within_genesis_bounds() -> None:
    db = new_ledger(community_genesis(housing_fee=100))
    commit_block(db, (council_tx("node_set_params", 0, housing_fee=250, area_delta_max=5),))
    info = get_node_info(db.view(), "north")
    assert (info["housing_fee"], info["next_housing_fee"]) == (100, 250)  # the fee from the next period
    assert (info["area_delta_max"], info["area_total_max"]) == (5, HOUSING["area_total_max"])  # guidelines at once
    commit_block(db)
    info = get_node_info(db.view(), "north")
    assert (info["housing_fee"], info["next_housing_fee"]) == (250, 250)
    assert_rejected(db, council_tx("node_set_params", 1, housing_fee=HOUSING["fee_max"] + 1), Code.PARAM_OUT_OF_BOUNDS)
    assert_rejected(db, council_tx("node_set_params", 1, area_total_max=41), Code.PARAM_OUT_OF_BOUNDS)
    assert_rejected(db, council_tx("node_set_params", 1), Code.TX_MISSING_FIELD)
    assert_rejected(db, council_tx("node_set_params", 1, signers=(900,), housing_fee=1), Code.BELOW_THRESHOLD)


def test_fee_changed_twice_in_a_period_keeps_the_last() -> None:
    db = new_ledger(community_genesis(housing_fee=100))
    commit_block(db, (council_tx("node_set_params", 0, housing_fee=250), council_tx("node_set_params", 1, housing_fee=300)))
    assert db.view().get(node_key("north")).fee_epochs == 2
    assert get_node_info(db.view(), "north")["next_housing_fee"] == 300


# queries -----------------------------------------------------------------------------------------------
def test_node_and_member_queries() -> None:
    db = new_ledger(community_genesis(north=(1, 2), units=(("a", 2),)))
    commit_block(db, (member_add_tx(4, 0), signed_tx("housing_apply", 1, 0, household=2, needs=0)))
    info = get_node_info(db.view(), "north")
    assert info["council"]["address"] == compute_council_address("north").hex()
    assert info["council"]["nonce"] == 1 and info["council"]["threshold"] == 2
    assert (info["member_count"], info["members_at_period_start"]) == (3, 2)
    assert info["quotas"]["water"]["allowance"] == 500 and info["quotas"]["energy"]["allowance"] == 300
    assert (info["waiting"], info["vacant"]) == (0, 0)
    member = get_member_info(db.view(), addr(1))
    assert member is not None and member["node"] == "north" and member["residence"] == {"node": "north", "unit": "a", "role": "holder"}
    assert get_member_info(db.view(), addr(5)) is None
    with pytest.raises(Rejected) as rejected:
        get_node_info(db.view(), "west")
    assert rejected.value.code == Code.UNKNOWN_NODE


def test_a_block_with_a_rejected_council_action_is_invalid_as_a_whole() -> None:
    db = new_ledger(community_genesis())
    from ledger import BlockInput

    head = db.head
    bad = council_tx("member_add", 1, signers=(900,), member=addr(5))
    with pytest.raises(Rejected) as info:
        db.execute(BlockInput(head.height + 1, head.time_ms + PERIOD_MS, (member_add_tx(4, 0), bad)))
    assert info.value.code == Code.BLOCK_INVALID and "BELOW_THRESHOLD" in info.value.message
    assert nonce_of(db, 4) == 0 and db.view().get_member(addr(4)) is None
