"""Housing: units, the waiting list, deterministic allocation, and irrevocable rights.

Normative text: specs/housing.md. Allocation runs inside the transaction that makes it possible
(a unit becomes vacant, or a member applies), so after every transaction no waiting applicant fits
a vacant unit of its node. Each such transaction allocates at most one unit, and finding it reads
at most (MAX_NEED_FLAGS + 1) * MAX_HOUSEHOLD waiting-list heads or MAX_HOUSEHOLD vacancy-list heads:
the work is bounded per transaction, whatever the length of the queue.

Only the holder's own transactions change a right: release, co-holders, modifications, and leaving
the node (the right passes to a co-holder who is a member, or is released). No other transaction
type reads a right for writing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
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
    Application,
    FeeEpoch,
    HousingRight,
    HousingUnit,
    ListEnds,
    Node,
    Residence,
    RightEvent,
    VacancyList,
    WaitingList,
    application_key,
    fee_epoch_key,
    node_key,
    residence_key,
    right_event_key,
    right_key,
    unit_key,
    vacancy_list_key,
    waiting_list_key,
)
from ledger.state import State
from ledger.tx import Tx

MAX_HOUSEHOLD = 16
"""Largest household and largest unit capacity, in persons."""

MAX_NEED_FLAGS = 8
"""Largest number of need flags genesis may define; `needs` is a bitmask of them."""

MAX_MODIFICATION_KINDS = 16


# pure math --------------------------------------------------------------------------------------
def compute_need_level(needs: int) -> int:
    """The priority class of an application: how many need flags it sets."""
    return bin(needs).count("1")


def compute_applicant_rank(need_level: int, applied_period: int, capacity: int, household: int, seq: int) -> tuple[int, int, int, int]:
    """Who gets a unit of `capacity` among the applicants it fits: the smallest rank wins.
    More needs first, then longer waiting (earlier period), then the best fit (fewest spare
    places), then the earlier application."""
    return (-need_level, applied_period, capacity - household, seq)


# linked lists ------------------------------------------------------------------------------------
# Waiting lists and vacancy lists are doubly linked FIFOs in the state: the list record holds the
# ends, each item its `prev` and `next`. Appending, and removing any item, touch three records.
ItemKey = Callable[[Any], bytes]


def link_append(state: State, list_key: bytes, empty: ListEnds, item_key: ItemKey, item_id: Any, item: Any) -> None:
    ends = state.get(list_key) or empty
    if ends.tail is None:
        state.put(item_key(item_id), replace(item, prev=None, next=None))
        state.put(list_key, replace(ends, head=item_id, tail=item_id, length=1))
        return
    tail_key = item_key(ends.tail)
    state.put(tail_key, replace(state.get(tail_key), next=item_id))
    state.put(item_key(item_id), replace(item, prev=ends.tail, next=None))
    state.put(list_key, replace(ends, tail=item_id, length=ends.length + 1))


def link_remove(state: State, list_key: bytes, item_key: ItemKey, item: Any) -> None:
    """Unlink `item` from its list. The caller rewrites or deletes the item itself."""
    ends = state.get(list_key)
    check_invariant(ends is not None and ends.length > 0, f"unlinking from an empty list {list_key!r}")
    head, tail = ends.head, ends.tail
    if item.prev is None:
        head = item.next
    else:
        prev_key = item_key(item.prev)
        state.put(prev_key, replace(state.get(prev_key), next=item.next))
    if item.next is None:
        tail = item.prev
    else:
        next_key = item_key(item.next)
        state.put(next_key, replace(state.get(next_key), prev=item.prev))
    if ends.length == 1:
        state.delete(list_key)
    else:
        state.put(list_key, replace(ends, head=head, tail=tail, length=ends.length - 1))


_EMPTY_WAITING = WaitingList(None, None, 0)
_EMPTY_VACANCY = VacancyList(None, None, 0)


def waiting_list_of(application: Application) -> bytes:
    return waiting_list_key(application.node, compute_need_level(application.needs), application.household)


def unit_key_in(node_id: str) -> ItemKey:
    return lambda unit_id: unit_key(node_id, unit_id)


# reads -------------------------------------------------------------------------------------------
def get_unit(state: State, node_id: str, unit_id: str) -> HousingUnit:
    """The unit, or Rejected(UNKNOWN_NODE / UNKNOWN_UNIT)."""
    get_node(state, node_id)
    unit = state.get(unit_key(node_id, unit_id))
    if unit is None:
        raise Rejected(Code.UNKNOWN_UNIT, f"{node_id!r} has no unit {unit_id!r}")
    return unit


def require_holder(state: State, node_id: str, unit_id: str, address: bytes) -> HousingRight:
    """The right on the unit, if `address` holds it; else Rejected(NOT_HOLDER)."""
    get_unit(state, node_id, unit_id)
    right = state.get(right_key(node_id, unit_id))
    if right is None or right.holder != address:
        raise Rejected(Code.NOT_HOLDER, f"{address.hex()[:16]}… does not hold the right to {node_id}/{unit_id}")
    return right


def need_levels(state: State) -> int:
    return len(state.get(b"b").need_flags)


# allocation --------------------------------------------------------------------------------------
def find_applicant(state: State, node_id: str, capacity: int) -> bytes | None:
    """The waiting applicant a vacant unit of `capacity` goes to: the smallest
    compute_applicant_rank among applicants whose household fits. Within one (need level,
    household) list the head ranks first, so only heads are read."""
    for level in range(need_levels(state), -1, -1):
        best: tuple[tuple[int, int, int, int], bytes] | None = None
        for household in range(1, min(capacity, MAX_HOUSEHOLD) + 1):
            ends = state.get(waiting_list_key(node_id, level, household))
            if ends is None:
                continue
            head: Application = state.get(application_key(ends.head))
            rank = compute_applicant_rank(level, head.applied_period, capacity, household, head.seq)
            if best is None or rank < best[0]:
                best = (rank, ends.head)
        if best is not None:
            return best[1]
    return None


def find_vacant_unit(state: State, node_id: str, household: int) -> str | None:
    """The vacant unit an applicant of `household` persons gets: the smallest capacity that fits,
    and of those the one vacant longest."""
    for capacity in range(household, MAX_HOUSEHOLD + 1):
        ends = state.get(vacancy_list_key(node_id, capacity))
        if ends is not None:
            return ends.head
    return None


def process_vacancy(state: State, node_id: str, unit_id: str, unit: HousingUnit) -> None:
    """A unit became vacant (added, or its right released): it goes to the applicant
    `find_applicant` names, or joins the vacancy list of its capacity."""
    applicant = find_applicant(state, node_id, unit.capacity)
    if applicant is None:
        node = state.get(node_key(node_id))
        state.put(node_key(node_id), replace(node, vacancy_seq=node.vacancy_seq + 1))
        unit = replace(unit, vacant=True, vacancy_seq=node.vacancy_seq)
        link_append(state, vacancy_list_key(node_id, unit.capacity), _EMPTY_VACANCY, unit_key_in(node_id), unit_id, unit)
        return
    application: Application = state.get(application_key(applicant))
    link_remove(state, waiting_list_of(application), application_key, application)
    state.delete(application_key(applicant))
    grant_right(state, node_id, unit_id, unit, applicant, application)


def process_application(state: State, address: bytes, node_id: str, household: int, needs: int) -> None:
    """A member applies: it gets the unit `find_vacant_unit` names, or joins the waiting list."""
    node = state.get(node_key(node_id))
    state.put(node_key(node_id), replace(node, application_seq=node.application_seq + 1))
    head = state.get_head()
    application = Application(node_id, household, needs, head.height, head.period, node.application_seq, None, None)
    unit_id = find_vacant_unit(state, node_id, household)
    if unit_id is None:
        link_append(state, waiting_list_of(application), _EMPTY_WAITING, application_key, address, application)
        return
    unit: HousingUnit = state.get(unit_key(node_id, unit_id))
    link_remove(state, vacancy_list_key(node_id, unit.capacity), unit_key_in(node_id), unit)
    grant_right(state, node_id, unit_id, unit, address, application)


def grant_right(state: State, node_id: str, unit_id: str, unit: HousingUnit, address: bytes, application: Application) -> None:
    """Create the right. The holder is settled first: the usage fee runs from the next period."""
    settle_account(state, address)
    head = state.get_head()
    state.put(unit_key(node_id, unit_id), replace(unit, vacant=False, prev=None, next=None, grants=unit.grants + 1))
    right = HousingRight(
        holder=address,
        co_holders=(),
        household=application.household,
        needs=application.needs,
        applied_period=application.applied_period,
        application_seq=application.seq,
        granted_height=head.height,
        granted_period=head.period,
        grant=unit.grants,
        history_length=0,
    )
    right = append_event(state, node_id, unit_id, right, "granted", address)
    state.put(right_key(node_id, unit_id), right)
    check_invariant(state.get(residence_key(address)) is None, "a right granted to someone already housed")
    state.put(residence_key(address), Residence(node_id, unit_id, True))


def append_event(
    state: State, node_id: str, unit_id: str, right: HousingRight, event: str, address: bytes | None, kind: str = "", area_delta: int = 0
) -> HousingRight:
    """Record an event on the right's history; returns the right with its history one longer."""
    record = RightEvent(state.get_head().height, event, address, kind, area_delta)
    state.put(right_event_key(node_id, unit_id, right.grant, right.history_length), record)
    return replace(right, history_length=right.history_length + 1)


def release_right(state: State, node_id: str, unit_id: str, right: HousingRight) -> None:
    """End a right (only ever by its holder, or when its holder leaves with no member co-holder):
    the holder is settled first, everyone housed by it moves out, the unit is vacant again."""
    settle_account(state, right.holder)
    append_event(state, node_id, unit_id, right, "released", right.holder)
    state.delete(right_key(node_id, unit_id))
    for address in (right.holder, *right.co_holders):
        state.delete(residence_key(address))
    process_vacancy(state, node_id, unit_id, state.get(unit_key(node_id, unit_id)))


def withdraw_application(state: State, address: bytes) -> bool:
    """Take an application off its waiting list; False if there was none."""
    application = state.get(application_key(address))
    if application is None:
        return False
    link_remove(state, waiting_list_of(application), application_key, application)
    state.delete(application_key(address))
    return True


def process_member_leaving(state: State, address: bytes) -> None:
    """Called as a member leaves its node (the member already settled): its application is
    withdrawn; a right it holds passes to the first co-holder (in the order they were added) who
    is a member of the node, or is released if there is none. A co-holder leaving stays a co-holder."""
    withdraw_application(state, address)
    residence = state.get(residence_key(address))
    if residence is None or not residence.holder:
        return
    node_id, unit_id = residence.node, residence.unit
    right: HousingRight = state.get(right_key(node_id, unit_id))
    for successor in right.co_holders:
        member = state.get_member(successor)
        if member is not None and member.node == node_id:
            break
    else:
        release_right(state, node_id, unit_id, right)
        return
    settle_account(state, successor)  # the fee passes to the successor from the next period
    right = replace(right, holder=successor, co_holders=tuple(c for c in right.co_holders if c != successor))
    right = append_event(state, node_id, unit_id, right, "succession", successor)
    state.put(right_key(node_id, unit_id), right)
    state.delete(residence_key(address))
    state.put(residence_key(successor), Residence(node_id, unit_id, True))


def add_unit(state: State, node_id: str, unit_id: str, capacity: int, attributes: bytes) -> None:
    if capacity > MAX_HOUSEHOLD:
        raise Rejected(Code.PARAM_OUT_OF_BOUNDS, f"capacity {capacity} exceeds {MAX_HOUSEHOLD}")
    if state.get(unit_key(node_id, unit_id)) is not None:
        raise Rejected(Code.ALREADY_EXISTS, f"{node_id!r} already has a unit {unit_id!r}")
    process_vacancy(state, node_id, unit_id, HousingUnit(capacity, attributes, 0, False, 0, None, None, 0))


# usage fee ----------------------------------------------------------------------------------------
def schedule_usage_fee(state: State, node_id: str, node: Node, fee: int) -> Node:
    """Set the node's usage fee from the next period on (a period already open may already be
    settled by some holders, so it keeps its fee). Returns the node with its epochs updated."""
    from_period = state.get_head().period + 1
    last = node.fee_epochs - 1
    if state.get(fee_epoch_key(node_id, last)).from_period == from_period:
        state.put(fee_epoch_key(node_id, last), FeeEpoch(from_period, fee))
        return node
    state.put(fee_epoch_key(node_id, node.fee_epochs), FeeEpoch(from_period, fee))
    return replace(node, fee_epochs=node.fee_epochs + 1)


def get_usage_fee(state: State, node_id: str, node: Node) -> tuple[int, int]:
    """(the fee in force this period, the fee from the next period on)."""
    period = state.get_head().period
    latest = state.get(fee_epoch_key(node_id, node.fee_epochs - 1))
    if latest.from_period <= period:
        return latest.fee, latest.fee
    return state.get(fee_epoch_key(node_id, node.fee_epochs - 2)).fee, latest.fee


# transactions -------------------------------------------------------------------------------------
def process_unit_add(state: State, tx: Tx) -> None:
    require_council(state, tx)
    process_nonce(state, tx)
    add_unit(state, tx.body["node"], tx.body["unit"], tx.body["capacity"], tx.body["attributes"])


def process_housing_apply(state: State, tx: Tx) -> None:
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    household, needs = tx.body["household"], tx.body["needs"]
    member = require_member(state, tx.sender)
    if state.get(residence_key(tx.sender)) is not None:
        raise Rejected(Code.ALREADY_HOUSED)
    if state.get(application_key(tx.sender)) is not None:
        raise Rejected(Code.ALREADY_APPLIED)
    if household > MAX_HOUSEHOLD:
        raise Rejected(Code.HOUSEHOLD_TOO_LARGE, f"household {household} exceeds {MAX_HOUSEHOLD}")
    if needs >> need_levels(state):
        raise Rejected(Code.UNKNOWN_NEED_FLAG, f"needs {needs:#b} sets a flag beyond the {need_levels(state)} defined")
    process_application(state, tx.sender, member.node, household, needs)


def process_housing_withdraw(state: State, tx: Tx) -> None:
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    if not withdraw_application(state, tx.sender):
        raise Rejected(Code.NOT_APPLIED)


def process_housing_release(state: State, tx: Tx) -> None:
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    node_id, unit_id = tx.body["node"], tx.body["unit"]
    release_right(state, node_id, unit_id, require_holder(state, node_id, unit_id, tx.sender))


def process_housing_coholder_add(state: State, tx: Tx) -> None:
    """The holder adds a co-holder, who consents by signing too."""
    coholder = tx.body["coholder"]
    require_signers(tx, frozenset((tx.sender, coholder)))
    process_nonce(state, tx)
    node_id, unit_id = tx.body["node"], tx.body["unit"]
    right = require_holder(state, node_id, unit_id, tx.sender)
    if state.get(residence_key(coholder)) is not None:
        raise Rejected(Code.ALREADY_HOUSED, "the co-holder already holds or co-holds a right")
    if state.get(application_key(coholder)) is not None:
        raise Rejected(Code.ALREADY_APPLIED, "the co-holder has an application waiting")
    capacity = state.get(unit_key(node_id, unit_id)).capacity
    if 2 + len(right.co_holders) > capacity:
        raise Rejected(Code.HOUSEHOLD_TOO_LARGE, f"the unit houses {capacity} persons")
    right = replace(right, co_holders=(*right.co_holders, coholder))
    state.put(right_key(node_id, unit_id), append_event(state, node_id, unit_id, right, "coholder_added", coholder))
    state.put(residence_key(coholder), Residence(node_id, unit_id, False))


def process_housing_coholder_remove(state: State, tx: Tx) -> None:
    """The holder removes a co-holder, or a co-holder leaves the household."""
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    node_id, unit_id, coholder = tx.body["node"], tx.body["unit"], tx.body["coholder"]
    get_unit(state, node_id, unit_id)
    right = state.get(right_key(node_id, unit_id))
    if right is None or tx.sender not in (right.holder, coholder):
        raise Rejected(Code.NOT_HOLDER, "only the holder, or the co-holder itself, may do this")
    if coholder not in right.co_holders:
        raise Rejected(Code.NOT_CO_HOLDER)
    right = replace(right, co_holders=tuple(c for c in right.co_holders if c != coholder))
    state.put(right_key(node_id, unit_id), append_event(state, node_id, unit_id, right, "coholder_removed", coholder))
    state.delete(residence_key(coholder))


def process_housing_modify(state: State, tx: Tx) -> None:
    """A modification within the node's guidelines is accepted and recorded; else rejected with why."""
    require_sole_signer(tx, tx.sender)
    process_nonce(state, tx)
    node_id, unit_id, kind, delta = tx.body["node"], tx.body["unit"], tx.body["kind"], tx.body["area_delta"]
    right = require_holder(state, node_id, unit_id, tx.sender)
    if kind not in state.get(b"b").modification_kinds:
        raise Rejected(Code.MODIFICATION_KIND, f"no modification kind {kind!r}")
    node = state.get(node_key(node_id))
    if abs(delta) > node.area_delta_max:
        raise Rejected(Code.MODIFICATION_OUT_OF_BOUNDS, f"area delta {delta} exceeds the node's ±{node.area_delta_max} per modification")
    unit: HousingUnit = state.get(unit_key(node_id, unit_id))
    total = unit.area_delta + delta
    if abs(total) > node.area_total_max:
        raise Rejected(Code.MODIFICATION_OUT_OF_BOUNDS, f"the unit's area change would total {total}, beyond the node's ±{node.area_total_max}")
    state.put(unit_key(node_id, unit_id), replace(unit, area_delta=total))
    state.put(right_key(node_id, unit_id), append_event(state, node_id, unit_id, right, "modified", tx.sender, kind, delta))


# queries --------------------------------------------------------------------------------------------
def _right_info(view: State, node_id: str, unit_id: str, right: HousingRight) -> dict[str, Any]:
    events = [view.get(right_event_key(node_id, unit_id, right.grant, i)) for i in range(right.history_length)]
    return {
        "node": node_id,
        "unit": unit_id,
        "holder": right.holder.hex(),
        "co_holders": [c.hex() for c in right.co_holders],
        "household": right.household,
        "needs": right.needs,
        "applied_period": right.applied_period,
        "application_seq": right.application_seq,
        "granted_height": right.granted_height,
        "granted_period": right.granted_period,
        "grant": right.grant,
        "history": [
            {
                "height": e.height,
                "event": e.event,
                "address": None if e.address is None else e.address.hex(),
                "kind": e.kind,
                "area_delta": e.area_delta,
            }
            for e in events
        ],
    }


def get_unit_info(view: State, node_id: str, unit_id: str) -> dict[str, Any]:
    """A unit and, if it is held, its right."""
    unit = get_unit(view, node_id, unit_id)
    right = view.get(right_key(node_id, unit_id))
    return {
        "node": node_id,
        "unit": unit_id,
        "capacity": unit.capacity,
        "attributes": unit.attributes.hex(),
        "area_delta": unit.area_delta,
        "vacant": unit.vacant,
        "rights_granted": unit.grants,
        "right": None if right is None else _right_info(view, node_id, unit_id, right),
    }


def get_right_info(view: State, address: bytes) -> dict[str, Any] | None:
    """The right an address holds or co-holds (with its history), or None."""
    residence = view.get(residence_key(address))
    if residence is None:
        return None
    right = view.get(right_key(residence.node, residence.unit))
    info = _right_info(view, residence.node, residence.unit, right)
    info["role"] = "holder" if residence.holder else "co_holder"
    return info


def get_application_info(view: State, address: bytes) -> dict[str, Any] | None:
    application = view.get(application_key(address))
    if application is None:
        return None
    return {
        "address": address.hex(),
        "node": application.node,
        "household": application.household,
        "needs": application.needs,
        "need_level": compute_need_level(application.needs),
        "applied_height": application.applied_height,
        "applied_period": application.applied_period,
        "seq": application.seq,
    }


def count_waiting(view: State, node_id: str) -> int:
    levels = range(need_levels(view) + 1)
    return sum(getattr(view.get(waiting_list_key(node_id, n, h)), "length", 0) for n in levels for h in range(1, MAX_HOUSEHOLD + 1))


def count_vacant(view: State, node_id: str) -> int:
    return sum(getattr(view.get(vacancy_list_key(node_id, c)), "length", 0) for c in range(1, MAX_HOUSEHOLD + 1))


def get_housing_queue(view: State, node_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The node's waiting applications in priority order (need level, then waiting time, then
    application order), at most `limit`. Which of them a given unit goes to also depends on fit:
    see compute_applicant_rank."""
    get_node(view, node_id)
    heap: list[tuple[int, int, int, bytes]] = []
    for level in range(need_levels(view) + 1):
        for household in range(1, MAX_HOUSEHOLD + 1):
            ends = view.get(waiting_list_key(node_id, level, household))
            if ends is not None:
                head = view.get(application_key(ends.head))
                heapq.heappush(heap, (-level, head.applied_period, head.seq, ends.head))
    out: list[dict[str, Any]] = []
    while heap and len(out) < limit:
        _, _, _, address = heapq.heappop(heap)
        application = view.get(application_key(address))
        out.append(get_application_info(view, address) or {})
        if application.next is not None:
            following = view.get(application_key(application.next))
            heapq.heappush(heap, (-compute_need_level(following.needs), following.applied_period, following.seq, application.next))
    return out
