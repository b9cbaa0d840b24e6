"""Read-only answers the RPC serves: an account at the head with pending settlement, the supply."""

from __future__ import annotations

from typing import Any

from ledger.monetary import settle_account
from ledger.state import State


def get_account_info(view: State, address: bytes) -> dict[str, Any]:
    """The account as settlement would leave it now, and what settlement would change.

    `view` is a throwaway overlay: settling on it writes nothing to the committed state.
    """
    stored = view.get_account(address)
    member = view.get_member(address)
    before = view.get_totals()
    settled = settle_account(view, address)
    after = view.get_totals()
    return {
        "address": address.hex(),
        "exists": stored is not None,
        "balance": settled.balance,
        "stored_balance": 0 if stored is None else stored.balance,
        "nonce": settled.nonce,
        "settled_period": 0 if stored is None else stored.settled_period,
        "period": view.get_head().period,
        "pending_demurrage": after.demurrage_collected - before.demurrage_collected,
        "pending_ubi": after.ubi_paid - before.ubi_paid,
        "member": None if member is None else {"joined_period": member.joined_period},
    }


def get_supply(view: State) -> dict[str, int]:
    """The conservation identity's parts; circulating + commons_pool + ubi_reserve + bonded == total."""
    t = view.get_totals()
    return {
        "total": t.total_supply,
        "circulating": t.circulating,
        "commons_pool": t.commons_pool,
        "ubi_reserve": t.ubi_reserve,
        "bonded": t.bonded,
        "demurrage_collected": t.demurrage_collected,
        "ubi_paid": t.ubi_paid,
        "slashed": t.slashed,
        "members": t.member_count,
    }
