"""The monetary rules: periods, demurrage, UBI, and lazy settlement of accounts.

Normative text: specs/monetary.md. The functions here carry the same names.

Settlement is lazy: an account is brought up to date only when a transaction touches it (or a query
reads it), and then it runs the same per-period recurrence it would have run had it been touched
every period. So the balance is path independent, and a block costs work for the accounts it
touches, never for all accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ledger.constants import RATE_SCALE
from ledger.errors import check_invariant
from ledger.records import Account, FeeEpoch, PeriodRecord, Totals, fee_epoch_key, node_key, residence_key
from ledger.state import State


# pure math ------------------------------------------------------------------------------------
def compute_period(time_ms: int, genesis_time_ms: int, period_seconds: int) -> int:
    """period = floor((block time - genesis time) / period length). Times before genesis are period 0."""
    if time_ms <= genesis_time_ms:
        return 0
    return (time_ms - genesis_time_ms) // (period_seconds * 1000)


def compute_demurrage(balance: int, demurrage_rate: int) -> int:
    """What a balance loses over one period: floor(balance * rate / RATE_SCALE).

    Rounding is down: a holder never loses more than the exact rate, and what the exact rate would
    have taken beyond the floor stays with the holder (it is never created or destroyed).
    """
    return balance * demurrage_rate // RATE_SCALE


def compute_ubi_per_member(commons_pool: int, ubi_fraction: int, member_count: int) -> int:
    """Each member's UBI for one period: floor(floor(pool * fraction / RATE_SCALE) / members).

    What the floors leave stays in the pool.
    """
    if member_count <= 0:
        return 0
    return commons_pool * ubi_fraction // RATE_SCALE // member_count


def compute_settlement(
    balance: int,
    settled_period: int,
    to_period: int,
    demurrage_rate: int,
    member_joined_period: int | None,
    ubi_for_period: Callable[[int], int],
) -> tuple[int, int, int]:
    """Run the per-period recurrence from `settled_period` to `to_period`.

    For each period q = settled_period+1 .. to_period, in order:
      1. balance -= compute_demurrage(balance, demurrage_rate)
      2. if a member who joined before q: balance += ubi_for_period(q)
    Returns (new balance, demurrage taken, UBI credited). This is
    `compute_settlement_with_fee` for an account that holds no housing right.
    """
    balance, demurrage, ubi, _ = compute_settlement_with_fee(
        balance, settled_period, to_period, demurrage_rate, member_joined_period, ubi_for_period, None
    )
    return balance, demurrage, ubi


def compute_settlement_with_fee(
    balance: int,
    settled_period: int,
    to_period: int,
    demurrage_rate: int,
    member_joined_period: int | None,
    ubi_for_period: Callable[[int], int],
    fee_for_period: Callable[[int], int] | None,
) -> tuple[int, int, int, int]:
    """The recurrence of `compute_settlement`, with the housing usage fee (specs/housing.md):
      3. if a housing right holder, after step 2: fee = min(fee_for_period(q), ubi_for_period(q));
         balance -= fee
    The fee is taken only out of that period's UBI credit, never more, so it can never be unpaid.
    Returns (new balance, demurrage taken, UBI credited, fee taken).
    """
    demurrage_total = 0
    ubi_total = 0
    fee_total = 0
    if member_joined_period is None:
        if demurrage_rate == 0 or balance == 0:
            return balance, 0, 0, 0
        for _ in range(settled_period + 1, to_period + 1):
            d = balance * demurrage_rate // RATE_SCALE
            if d == 0:  # floor is monotone: a smaller balance never decays again
                break
            balance -= d
            demurrage_total += d
        return balance, demurrage_total, 0, 0
    for q in range(settled_period + 1, to_period + 1):
        d = balance * demurrage_rate // RATE_SCALE
        balance -= d
        demurrage_total += d
        if q > member_joined_period:
            u = ubi_for_period(q)
            balance += u
            ubi_total += u
            if fee_for_period is not None:
                f = min(fee_for_period(q), u)
                balance -= f
                fee_total += f
    return balance, demurrage_total, ubi_total, fee_total


# state transitions ------------------------------------------------------------------------------
def ubi_lookup(state: State) -> Callable[[int], int]:
    def lookup(period: int) -> int:
        record = state.get_period_record(period)
        return 0 if record is None else record.ubi_per_member

    return lookup


def settle_account(state: State, address: bytes) -> Account:
    """Bring an account up to the current period; move its demurrage to the pool and its UBI in.

    An address never seen before becomes an empty account settled at the current period.
    """
    return settle_account_as_read(state, address, state.get_account(address))


def settle_account_as_read(state: State, address: bytes, account: Account | None, period: int | None = None) -> Account:
    """`settle_account`, for a caller that has just read the account (`account`) from `state`
    (and, as `period`, the head's period, if it has read that too)."""
    if period is None:
        period = state.get_head().period
    if account is None:
        account = Account(0, 0, period)
        state.set_account(address, account)
        return account
    if account.settled_period >= period:
        return account
    params = state.get_params()
    member = state.get_member(address)
    balance, demurrage, ubi, fee = compute_settlement_with_fee(
        account.balance,
        account.settled_period,
        period,
        params.demurrage_rate,
        None if member is None else member.joined_period,
        ubi_lookup(state),
        None if member is None else usage_fee_lookup(state, address, account.settled_period + 1),
    )
    account = Account(balance, account.nonce, period)
    state.set_account(address, account)
    if demurrage or ubi:
        t = state.get_totals()
        check_invariant(t.ubi_reserve >= ubi, "UBI credited exceeds the UBI reserve")
        check_invariant(0 <= fee <= ubi, "a usage fee exceeds the UBI it is taken from")
        state.set_totals(
            Totals(  # every field named (dataclasses.replace costs twice as much, once per settled account)
                total_supply=t.total_supply,
                circulating=t.circulating - demurrage + ubi - fee,
                commons_pool=t.commons_pool + demurrage + fee,
                ubi_reserve=t.ubi_reserve - ubi,
                bonded=t.bonded,
                demurrage_collected=t.demurrage_collected + demurrage,
                ubi_paid=t.ubi_paid + ubi,
                slashed=t.slashed,
                member_count=t.member_count,
                usage_fees=t.usage_fees + fee,
            )
        )
    return account


def usage_fee_lookup(state: State, address: bytes, from_period: int) -> Callable[[int], int] | None:
    """The housing usage fee per period of a right holder, for periods from `from_period` on; None
    for an address that holds no right (specs/housing.md, "Usage fee").

    Holding a right starts and ends only in transactions that settle the holder first, so the
    address held its right through every period being settled. The fee in force in period q is
    that of the node's last FeeEpoch with from_period <= q; fee changes apply from the next
    period, never to one already settled. Reads the epochs back to `from_period`, no further.
    """
    residence = state.get(residence_key(address))
    if residence is None or not residence.holder:
        return None
    node = state.get(node_key(residence.node))
    epochs: list[FeeEpoch] = []  # newest first
    for index in range(node.fee_epochs - 1, -1, -1):
        epoch = state.get(fee_epoch_key(residence.node, index))
        epochs.append(epoch)
        if epoch.from_period <= from_period:
            break

    def fee_for_period(period: int) -> int:
        for epoch in epochs:
            if epoch.from_period <= period:
                return epoch.fee
        return 0

    return fee_for_period


def process_periods(state: State, to_period: int) -> None:
    """Open every period after the head's, up to `to_period`: the pool pays that period's UBI
    into the UBI reserve, from which members' settlement draws it."""
    head = state.get_head()
    if to_period <= head.period:
        return
    params = state.get_params()
    t = state.get_totals()
    pool, reserve = t.commons_pool, t.ubi_reserve
    members = t.member_count
    for q in range(head.period + 1, to_period + 1):
        ubi = compute_ubi_per_member(pool, params.ubi_fraction, members)
        if ubi == 0:
            # The pool and the member count stay as they are, so every later period opened here
            # pays 0 too; an absent PeriodRecord means 0. This bounds the loop after a long gap.
            break
        pool -= ubi * members
        reserve += ubi * members
        state.set_period_record(q, PeriodRecord(ubi, members))
    check_invariant(pool >= 0, "commons pool went negative")
    state.set_totals(replace(t, commons_pool=pool, ubi_reserve=reserve))


def check_conservation(state: State) -> None:
    """The conservation identity: every unit of the genesis supply is in exactly one part."""
    t = state.get_totals()
    check_invariant(
        t.circulating + t.commons_pool + t.ubi_reserve + t.bonded == t.total_supply,
        f"conservation broken: {t}",
    )
    check_invariant(
        min(t.circulating, t.commons_pool, t.ubi_reserve, t.bonded) >= 0, f"a supply part is negative: {t}"
    )
