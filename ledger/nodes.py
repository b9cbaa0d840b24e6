"""City-state nodes, their councils, and membership.

Normative text: specs/membership.md. A node's council acts from its council account with m of its
n keys (ledger.authorization.require_council). A member belongs to exactly one home node; it joins
by its council's action and leaves by its own (or the council removes it, unless it holds a
housing right: a right-holder's membership ends only by the holder's own leave, so no council can
end a right through membership).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ledger import housing, quotas
from ledger.authorization import (
    compute_council_address,
    get_node,
    process_nonce,
    require_council,
    require_member,
    require_sole_signer,
)
from ledger.errors import Code, Rejected
from ledger.monetary import settle_account
from ledger.records import FeeEpoch, Member, Node, QuotaPool, fee_epoch_key, node_key, quota_pool_key, residence_key
from ledger.state import State
from ledger.tx import Tx


def create_node(
    state: State,
    node_id: str,
    name: str,
    council_keys: tuple[bytes, ...],
    threshold: int,
    caps: dict[str, int],
    housing_fee: int,
    area_delta_max: int,
    area_total_max: int,
) -> None:
    """A node as genesis creates it: no members yet, its fee from period 0, a quota pool for every
    resource genesis defines (`caps` names each)."""
    period = state.get_head().period
    state.put(
        node_key(node_id),
        Node(name, tuple(sorted(council_keys)), threshold, 0, period, 0, 1, area_delta_max, area_total_max, 0, 0),
    )
    state.put(fee_epoch_key(node_id, 0), FeeEpoch(0, housing_fee))
    for resource_id, cap in caps.items():
        state.put(quota_pool_key(node_id, resource_id), QuotaPool(period, cap, cap, 0, 0, 0, 0))


def add_member(state: State, node_id: str, address: bytes) -> None:
    """Register a member of `node_id`; UBI and quota allowances accrue from the next period on."""
    settle_account(state, address)
    period = state.get_head().period
    state.set_member(address, Member(period, node_id))
    node = state.get(node_key(node_id))
    state.put(node_key(node_id), node.with_member_count_change(period, +1))
    t = state.get_totals()
    state.set_totals(replace(t, member_count=t.member_count + 1))


def remove_member(state: State, address: bytes) -> None:
    """End a membership: settle it first (it keeps every UBI it accrued, and pays its usage fee
    through this period), withdraw its housing application, pass on or release a right it holds,
    expire its quota holdings."""
    member = require_member(state, address)
    settle_account(state, address)
    housing.process_member_leaving(state, address)
    quotas.expire_holdings(state, address)
    state.set_member(address, None)
    node = state.get(node_key(member.node))
    state.put(node_key(member.node), node.with_member_count_change(state.get_head().period, -1))
    t = state.get_totals()
    state.set_totals(replace(t, member_count=t.member_count - 1))


# transactions ------------------------------------------------------------------------------------
def process_member_add(state: State, tx: Tx) -> None:
    require_council(state, tx)
    process_nonce(state, tx)
    address = tx.body["member"]
    member = state.get_member(address)
    if member is not None:
        raise Rejected(Code.ALREADY_MEMBER, f"already a member of {member.node!r}; it must leave first")
    add_member(state, tx.body["node"], address)


def process_member_remove(state: State, tx: Tx) -> None:
    require_council(state, tx)
    process_nonce(state, tx)
    address = tx.body["member"]
    require_member(state, address, tx.body["node"])
    residence = state.get(residence_key(address))
    if residence is not None and residence.holder:
        raise Rejected(Code.HOLDER_MEMBERSHIP)
    remove_member(state, address)


def process_member_leave(state: State, tx: Tx) -> None:
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    remove_member(state, tx.sender)


def process_node_set_params(state: State, tx: Tx) -> None:
    """The council changes its node's parameters within the bounds genesis fixes: the housing usage
    fee (from the next period on) and the modification guidelines (at once)."""
    node = require_council(state, tx)
    process_nonce(state, tx)
    node_id, body = tx.body["node"], tx.body
    rules = quotas.get_rules(state)
    bounds = {"housing_fee": rules.housing_fee_max, "area_delta_max": rules.area_delta_max, "area_total_max": rules.area_total_max}
    given = {name: body[name] for name in bounds if name in body}
    if not given:
        raise Rejected(Code.TX_MISSING_FIELD, f"name at least one of {sorted(bounds)}")
    for name, value in given.items():
        if value > bounds[name]:
            raise Rejected(Code.PARAM_OUT_OF_BOUNDS, f"{name} {value} exceeds the genesis bound {bounds[name]}")
    if "housing_fee" in given:
        node = housing.schedule_usage_fee(state, node_id, node, given["housing_fee"])
    node = replace(
        node,
        area_delta_max=given.get("area_delta_max", node.area_delta_max),
        area_total_max=given.get("area_total_max", node.area_total_max),
    )
    state.put(node_key(node_id), node)


# queries -------------------------------------------------------------------------------------------
def get_node_info(view: State, node_id: str) -> dict[str, Any]:
    """A node: council, members, parameters, quota pools this period, housing queue sizes."""
    node = get_node(view, node_id)
    period = view.get_head().period
    council = compute_council_address(node_id)
    account = view.get_account(council)
    fee, next_fee = housing.get_usage_fee(view, node_id, node)
    return {
        "id": node_id,
        "name": node.name,
        "council": {
            "address": council.hex(),
            "keys": [k.hex() for k in node.council_keys],
            "threshold": node.threshold,
            "nonce": 0 if account is None else account.nonce,
        },
        "member_count": node.member_count,
        "members_at_period_start": node.members_at_start_of(period),
        "housing_fee": fee,
        "next_housing_fee": next_fee,
        "area_delta_max": node.area_delta_max,
        "area_total_max": node.area_total_max,
        "quotas": {r: quotas.get_pool_info(view, node_id, r) for r in quotas.get_rules(view).resources},
        "waiting": housing.count_waiting(view, node_id),
        "vacant": housing.count_vacant(view, node_id),
    }


def get_member_info(view: State, address: bytes) -> dict[str, Any] | None:
    """An address's membership (home node, joined period) and where it lives, or None."""
    member = view.get_member(address)
    if member is None:
        return None
    residence = view.get(residence_key(address))
    return {
        "address": address.hex(),
        "node": member.node,
        "joined_period": member.joined_period,
        "residence": None
        if residence is None
        else {"node": residence.node, "unit": residence.unit, "role": "holder" if residence.holder else "co_holder"},
        "application": housing.get_application_info(view, address),
    }
