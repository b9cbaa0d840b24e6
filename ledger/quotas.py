"""Resource quotas: a cap per node, resource and period, shared equally, tradable between a floor
and a ceiling, consumed through registered providers, expiring at the end of the period.

Normative text: specs/quotas.md. Lazy like settlement: a node's pool of a resource opens a new
period when it is first touched in it, and a member's holding is fresh when it is first read in a
period, so no block ever walks all members or all resources of all nodes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ledger.authorization import (
    get_node,
    process_nonce,
    require_council,
    require_member,
    require_signers,
    require_sole_signer,
)
from ledger.errors import Code, Rejected, check_invariant
from ledger.monetary import settle_account
from ledger.records import (
    Account,
    CommunityRules,
    Member,
    Provider,
    QuotaHolding,
    QuotaPool,
    Resource,
    node_key,
    provider_key,
    quota_holding_key,
    quota_pool_key,
    resource_key,
)
from ledger.state import State
from ledger.tx import Tx

MAX_RESOURCES = 16
"""Largest number of resources genesis may define (a leaving member's holdings are this many reads)."""

PERCENT = 100


# pure math --------------------------------------------------------------------------------------
def compute_allowance(cap: int, members: int) -> int:
    """Each member's allowance for a period: floor(cap / members), 0 without members.
    The remainder (cap mod members) is allotted to nobody, so allowances never exceed the cap."""
    return cap // members if members > 0 else 0


def compute_floor(allowance: int, floor_percent: int) -> int:
    """The lowest holding a trade may leave a member: ceil(allowance * floor_percent / 100).
    Rounds up, in favour of basic needs."""
    return -(-allowance * floor_percent // PERCENT)


def compute_ceiling(allowance: int, ceiling_percent: int) -> int:
    """The highest holding a trade may give a member: floor(allowance * ceiling_percent / 100).
    Rounds down, against hoarding."""
    return allowance * ceiling_percent // PERCENT


# reads -------------------------------------------------------------------------------------------
def get_rules(state: State) -> CommunityRules:
    return state.get(b"b")


def get_resource(state: State, resource_id: str) -> Resource:
    """The resource, or Rejected(UNKNOWN_RESOURCE)."""
    resource = state.get(resource_key(resource_id))
    if resource is None:
        raise Rejected(Code.UNKNOWN_RESOURCE, f"no resource {resource_id!r}")
    return resource


def check_quota_pool(pool: QuotaPool) -> None:
    """The quota invariants of one node, resource and period (specs/quotas.md, "Invariants")."""
    check_invariant(pool.allowance * pool.members <= pool.cap, f"allowances exceed the cap: {pool}")
    check_invariant(pool.granted <= pool.allowance * pool.members, f"more granted than allotted: {pool}")
    check_invariant(0 <= pool.consumed <= pool.granted, f"more consumed than granted: {pool}")


def open_pool(state: State, node_id: str, resource_id: str) -> QuotaPool:
    """The node's pool of the resource in the current period. First touched in a newer period, it
    opens afresh: the cap becomes `next_cap`, the allowance is fixed at the member count the period
    opened with, and nothing is granted or consumed yet."""
    period = state.get_head().period
    key = quota_pool_key(node_id, resource_id)
    pool: QuotaPool = state.get(key)
    if pool.period >= period:
        return pool
    members = state.get(node_key(node_id)).members_at_start_of(period)
    cap = pool.next_cap
    pool = QuotaPool(period, cap, cap, members, compute_allowance(cap, members), 0, 0)
    check_quota_pool(pool)
    state.put(key, pool)
    return pool


def open_holding(state: State, pool: QuotaPool, address: bytes, member: Member, resource_id: str) -> tuple[QuotaHolding, QuotaPool]:
    """A member's holding in `pool`'s period, and the pool after it. First read in a period, it is
    fresh: the pool's allowance if the member was one when the period opened (joined_period <
    period), else 0; a grant adds to the pool's `granted`. What an older holding held has expired."""
    key = quota_holding_key(address, resource_id)
    holding: QuotaHolding | None = state.get(key)
    if holding is not None and holding.period == pool.period:
        return holding, pool
    own = pool.allowance if member.joined_period < pool.period else 0
    holding = QuotaHolding(pool.period, own, own, 0)
    if own:
        pool = replace(pool, granted=pool.granted + own)
        check_quota_pool(pool)
        state.put(quota_pool_key(member.node, resource_id), pool)
    state.put(key, holding)
    return holding, pool


def expire_holdings(state: State, address: bytes) -> None:
    """A member leaving its node loses what it holds of every resource (at most MAX_RESOURCES)."""
    for resource_id in get_rules(state).resources:
        key = quota_holding_key(address, resource_id)
        if state.get(key) is not None:
            state.delete(key)


def add_provider(state: State, node_id: str, resource_id: str, provider: bytes) -> None:
    get_resource(state, resource_id)
    key = provider_key(node_id, resource_id, provider)
    if state.get(key) is not None:
        raise Rejected(Code.ALREADY_EXISTS, f"already a provider of {resource_id!r} for {node_id!r}")
    state.put(key, Provider(state.get_head().height))


def require_provider(state: State, node_id: str, resource_id: str, provider: bytes) -> None:
    if state.get(provider_key(node_id, resource_id, provider)) is None:
        raise Rejected(Code.NOT_PROVIDER, f"{provider.hex()[:16]}… is not a provider of {resource_id!r} for {node_id!r}")


# transactions ------------------------------------------------------------------------------------
def process_provider_add(state: State, tx: Tx) -> None:
    require_council(state, tx)
    process_nonce(state, tx)
    add_provider(state, tx.body["node"], tx.body["resource"], tx.body["provider"])


def process_provider_remove(state: State, tx: Tx) -> None:
    require_council(state, tx)
    process_nonce(state, tx)
    node_id, resource_id, provider = tx.body["node"], tx.body["resource"], tx.body["provider"]
    get_resource(state, resource_id)
    require_provider(state, node_id, resource_id, provider)
    state.delete(provider_key(node_id, resource_id, provider))


def process_quota_set_cap(state: State, tx: Tx) -> None:
    """The council sets the node's cap of a resource, within genesis bounds, from the next period on
    (the current period's allowances are already fixed)."""
    require_council(state, tx)
    process_nonce(state, tx)
    node_id, resource_id, cap = tx.body["node"], tx.body["resource"], tx.body["cap"]
    resource = get_resource(state, resource_id)
    if not resource.cap_min <= cap <= resource.cap_max:
        raise Rejected(Code.PARAM_OUT_OF_BOUNDS, f"cap {cap} is outside [{resource.cap_min}, {resource.cap_max}]")
    pool = open_pool(state, node_id, resource_id)
    state.put(quota_pool_key(node_id, resource_id), replace(pool, next_cap=cap))


def process_quota_consume(state: State, tx: Tx) -> None:
    """A provider records a member's consumption; more than the member has left is rejected."""
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    address, resource_id, amount = tx.body["member"], tx.body["resource"], tx.body["amount"]
    get_resource(state, resource_id)
    member = require_member(state, address)
    require_provider(state, member.node, resource_id, tx.sender)
    pool = open_pool(state, member.node, resource_id)
    holding, pool = open_holding(state, pool, address, member, resource_id)
    left = holding.holding - holding.consumed
    if amount > left:
        raise Rejected(Code.QUOTA_EXCEEDED, f"consumption {amount} exceeds the {left} left this period")
    state.put(quota_holding_key(address, resource_id), replace(holding, consumed=holding.consumed + amount))
    pool = replace(pool, consumed=pool.consumed + amount)
    check_quota_pool(pool)
    state.put(quota_pool_key(member.node, resource_id), pool)


def process_quota_trade(state: State, tx: Tx) -> None:
    """`from` sells `amount` of its quota to `to`, a member of the same node, for `price` coins
    (0: a gift, signed by the seller alone; else signed by both). The seller keeps at least its
    floor, the buyer holds at most the ceiling."""
    seller, buyer, resource_id = tx.sender, tx.body["to"], tx.body["resource"]
    amount, price = tx.body["amount"], tx.body.get("price", 0)
    if price:
        require_signers(tx, frozenset((seller, buyer)))
    else:
        require_sole_signer(tx, seller)
    if buyer == seller:
        raise Rejected(Code.SELF_TRANSFER)
    seller_account = process_nonce(state, tx)
    resource = get_resource(state, resource_id)
    seller_member = require_member(state, seller)
    buyer_member = require_member(state, buyer)
    if buyer_member.node != seller_member.node:
        raise Rejected(Code.NOT_SAME_NODE, f"the seller is of {seller_member.node!r}, the buyer of {buyer_member.node!r}")
    pool = open_pool(state, seller_member.node, resource_id)
    sold, pool = open_holding(state, pool, seller, seller_member, resource_id)
    bought, pool = open_holding(state, pool, buyer, buyer_member, resource_id)
    left = sold.holding - sold.consumed
    if amount > left:
        raise Rejected(Code.QUOTA_EXCEEDED, f"the seller has {left} left, not {amount}")
    floor = compute_floor(sold.allowance, resource.floor_percent)
    if sold.holding - amount < floor:
        raise Rejected(Code.QUOTA_FLOOR, f"the seller would hold {sold.holding - amount}, below its floor {floor}")
    ceiling = compute_ceiling(pool.allowance, resource.ceiling_percent)
    if bought.holding + amount > ceiling:
        raise Rejected(Code.QUOTA_CEILING, f"the buyer would hold {bought.holding + amount}, above the ceiling {ceiling}")
    state.put(quota_holding_key(seller, resource_id), replace(sold, holding=sold.holding - amount))
    state.put(quota_holding_key(buyer, resource_id), replace(bought, holding=bought.holding + amount))
    if price:
        buyer_account = settle_account(state, buyer)
        if buyer_account.balance < price:
            raise Rejected(Code.INSUFFICIENT_FUNDS, f"the buyer's balance {buyer_account.balance} < price {price}")
        state.set_account(buyer, replace(buyer_account, balance=buyer_account.balance - price))
        state.set_account(seller, Account(seller_account.balance + price, seller_account.nonce, seller_account.settled_period))


# queries ------------------------------------------------------------------------------------------
def get_quota_info(view: State, address: bytes, resource_id: str) -> dict[str, Any] | None:
    """A member's quota of a resource this period, as the next transaction would see it (None for a
    non-member). `view` is a throwaway overlay."""
    resource = get_resource(view, resource_id)
    member = view.get_member(address)
    if member is None:
        return None
    pool = open_pool(view, member.node, resource_id)
    holding, pool = open_holding(view, pool, address, member, resource_id)
    return {
        "address": address.hex(),
        "node": member.node,
        "resource": resource_id,
        "unit": resource.unit,
        "period": holding.period,
        "allowance": holding.allowance,
        "holding": holding.holding,
        "consumed": holding.consumed,
        "left": holding.holding - holding.consumed,
        "floor": compute_floor(holding.allowance, resource.floor_percent),
        "ceiling": compute_ceiling(pool.allowance, resource.ceiling_percent),
    }


def get_pool_info(view: State, node_id: str, resource_id: str) -> dict[str, Any]:
    """A node's pool of a resource this period: cap, allowance, what is granted and consumed."""
    get_node(view, node_id)
    resource = get_resource(view, resource_id)
    pool = open_pool(view, node_id, resource_id)
    return {
        "node": node_id,
        "resource": resource_id,
        "unit": resource.unit,
        "period": pool.period,
        "cap": pool.cap,
        "next_cap": pool.next_cap,
        "members": pool.members,
        "allowance": pool.allowance,
        "granted": pool.granted,
        "consumed": pool.consumed,
        "floor": compute_floor(pool.allowance, resource.floor_percent),
        "ceiling": compute_ceiling(pool.allowance, resource.ceiling_percent),
    }
