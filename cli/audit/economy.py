"""What the economy did, period by period, as the replay sees it at the end of each period.

A snapshot is read on a throwaway view of the replayed state after the last block of a period, so
the ledger's own queries answer it: member balances are settled (demurrage, UBI, usage fee) to that
period on the view, which is what each member actually held then, whether or not a transaction
touched the account; reading stored balances would mix periods, since settlement is lazy.

The replay keeps an index of the keys of the few record kinds a snapshot enumerates (members,
nodes, housing units, rights, applications), updated from each block's writes, so a snapshot costs
work for the members and homes, never for the whole state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger import LedgerDB
from ledger.housing import count_vacant, count_waiting
from ledger.queries import get_account_info
from ledger.quotas import get_pool_info, get_rules
from ledger.records import Application, HousingRight, HousingUnit, Member, Node, Totals, quota_pool_key

__all__ = ["KeyIndex", "PeriodSnapshot", "QuotaRow", "HousingRow", "compute_gini", "take_snapshot"]

INDEXED_PREFIXES = (Member.PREFIX, Node.PREFIX, HousingUnit.PREFIX, HousingRight.PREFIX, Application.PREFIX)


class KeyIndex:
    """The present keys of the indexed record kinds, by prefix."""

    def __init__(self, records: Mapping[bytes, Any]) -> None:
        self.keys: dict[bytes, set[bytes]] = {p: set() for p in INDEXED_PREFIXES}
        self.update(records)

    def update(self, changes: Mapping[bytes, Any]) -> None:
        for key, record in changes.items():
            present = self.keys.get(key[:1])
            if present is None:
                continue
            if record is None:
                present.discard(key)
            else:
                present.add(key)

    def ids(self, prefix: bytes) -> list[bytes]:
        """Sorted, so everything computed from them is in one order."""
        return sorted(k[1:] for k in self.keys[prefix])


@dataclass(frozen=True)
class QuotaRow:
    node: str
    resource: str
    cap: int
    allowed: int
    """allowance * members: what the members of the node may consume in the period."""
    granted: int
    consumed: int


@dataclass(frozen=True)
class HousingRow:
    node: str
    units: int
    occupied: int
    vacant: int
    waiting: int
    wait_periods_mean: float
    """Mean periods the waiting applications have waited so far."""
    granted: int
    """Rights granted in this period."""
    granted_wait_periods_mean: float
    """Mean periods those rights' applications waited."""


@dataclass(frozen=True)
class PeriodSnapshot:
    period: int
    height: int
    time_ms: int
    blocks: int
    txs: int
    total_supply: int
    circulating: int
    commons_pool: int
    ubi_reserve: int
    bonded: int
    demurrage_collected: int
    """Collected in this period: settlement is lazy, so this is what the accounts settled in this
    period paid, for whichever periods they were behind."""
    ubi_paid: int
    usage_fees: int
    slashed: int
    ubi_per_member: int
    """What the commons pool allotted each member for this period (PeriodRecord)."""
    ubi_member_count: int
    members: int
    member_balances: int
    gini: float
    quotas: list[QuotaRow] = field(default_factory=list)
    housing: list[HousingRow] = field(default_factory=list)


def compute_gini(balances: Iterable[int]) -> float:
    """Gini coefficient of non-negative integers: 0 all equal, towards 1 one holds all.

    G = (2 * sum_i i * x_(i)) / (n * sum x) - (n + 1) / n over x sorted ascending, i from 1;
    computed in integers and divided once, so it is the same on every machine."""
    xs = sorted(balances)
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return 0.0
    weighted = sum(i * x for i, x in enumerate(xs, start=1))
    return round((2 * weighted - (n + 1) * total) / (n * total), 6)


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


def take_snapshot(ledger: LedgerDB, index: KeyIndex, previous: Totals, blocks: int, txs: int) -> PeriodSnapshot:
    """The economy at the committed head (the end of its period), against the totals of the
    previous snapshot."""
    head = ledger.head
    period = head.period
    t = ledger.totals()
    view = ledger.view()
    record = view.get_period_record(period)
    balances = [get_account_info(view, address)["balance"] for address in index.ids(Member.PREFIX)]
    return PeriodSnapshot(
        period=period,
        height=head.height,
        time_ms=head.time_ms,
        blocks=blocks,
        txs=txs,
        total_supply=t.total_supply,
        circulating=t.circulating,
        commons_pool=t.commons_pool,
        ubi_reserve=t.ubi_reserve,
        bonded=t.bonded,
        demurrage_collected=t.demurrage_collected - previous.demurrage_collected,
        ubi_paid=t.ubi_paid - previous.ubi_paid,
        usage_fees=t.usage_fees - previous.usage_fees,
        slashed=t.slashed - previous.slashed,
        ubi_per_member=0 if record is None else record.ubi_per_member,
        ubi_member_count=0 if record is None else record.member_count,
        members=len(balances),
        member_balances=sum(balances),
        gini=compute_gini(balances),
        quotas=_quota_rows(ledger, index),
        housing=_housing_rows(ledger, index, period),
    )


def _quota_rows(ledger: LedgerDB, index: KeyIndex) -> list[QuotaRow]:
    view = ledger.view()
    resources = get_rules(view).resources
    rows = []
    for node_id in index.ids(Node.PREFIX):
        node = node_id.decode()
        for resource in resources:
            if view.get(quota_pool_key(node, resource)) is None:
                continue  # a node genesis gave no cap of this resource
            pool = get_pool_info(view, node, resource)
            rows.append(QuotaRow(node, resource, pool["cap"], pool["allowance"] * pool["members"], pool["granted"], pool["consumed"]))
    return rows


def _housing_rows(ledger: LedgerDB, index: KeyIndex, period: int) -> list[HousingRow]:
    view = ledger.view()
    units: dict[str, int] = {}
    for unit_id in index.ids(HousingUnit.PREFIX):
        node = unit_id.split(b"\x00", 1)[0].decode()
        units[node] = units.get(node, 0) + 1
    occupied: dict[str, int] = {}
    granted_waits: dict[str, list[int]] = {}
    for right_id in index.ids(HousingRight.PREFIX):
        node = right_id.split(b"\x00", 1)[0].decode()
        occupied[node] = occupied.get(node, 0) + 1
        right: HousingRight = view.get(HousingRight.PREFIX + right_id)
        if right.granted_period == period:
            granted_waits.setdefault(node, []).append(right.granted_period - right.applied_period)
    waits: dict[str, list[int]] = {}
    for address in index.ids(Application.PREFIX):
        application: Application = view.get(Application.PREFIX + address)
        waits.setdefault(application.node, []).append(period - application.applied_period)
    rows = []
    for node_id in index.ids(Node.PREFIX):
        node = node_id.decode()
        if not units.get(node) and not waits.get(node):
            continue
        rows.append(
            HousingRow(
                node=node,
                units=units.get(node, 0),
                occupied=occupied.get(node, 0),
                vacant=count_vacant(view, node),
                waiting=count_waiting(view, node),
                wait_periods_mean=_mean(waits.get(node, [])),
                granted=len(granted_waits.get(node, [])),
                granted_wait_periods_mean=_mean(granted_waits.get(node, [])),
            )
        )
    return rows
