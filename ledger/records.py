"""The records that make up the ledger state, and the state keys they live under.

Every record is a frozen dataclass with a canonical wire form (a msgpack list in field order).
The state is a map from key bytes to record; keys are a one-byte prefix naming the record kind,
followed by the record's id. specs/state.md lists them.
"""

from __future__ import annotations

import operator
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, ClassVar


def fast_init(cls: type) -> type:
    """Give a frozen dataclass with slots (no defaults, no __post_init__) an __init__ that sets each
    field through its slot descriptor. It makes the same object as the generated __init__, which
    goes through object.__setattr__ per field, in about 60% of the time: for the records built for
    every transaction."""
    names = [f.name for f in fields(cls)]
    if any(f.default is not MISSING or f.default_factory is not MISSING for f in fields(cls)) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init takes fields without defaults and no __post_init__")
    namespace = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    lines = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    exec(f"def __init__(self, {', '.join(names)}):\n{lines}", namespace)  # as dataclasses builds __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


@fast_init
@dataclass(frozen=True, slots=True)
class Account:
    """A holder of coins. `settled_period`: demurrage and UBI are applied through this period."""

    balance: int
    nonce: int
    settled_period: int

    PREFIX: ClassVar[bytes] = b"a"


@fast_init
@dataclass(frozen=True, slots=True)
class Member:
    """A registered member of its home `node`. UBI accrues for every period after `joined_period`.

    An account is a member of at most one node: the record is keyed by the address alone."""

    joined_period: int
    node: str

    PREFIX: ClassVar[bytes] = b"m"


@fast_init
@dataclass(frozen=True, slots=True)
class PeriodRecord:
    """What the commons pool paid each member at the start of one period, and to how many."""

    ubi_per_member: int
    member_count: int

    PREFIX: ClassVar[bytes] = b"p"


@dataclass(frozen=True, slots=True)
class Validator:
    """A validator's bonded stake. Voting power is stake // UNITS_PER_COIN."""

    stake: int
    name: str

    PREFIX: ClassVar[bytes] = b"v"


@dataclass(frozen=True, slots=True)
class SlashedValidator:
    """A tombstone: the key was slashed at `height` and may never bond again (specs/consensus.md, STAKE-7)."""

    height: int

    PREFIX: ClassVar[bytes] = b"x"


@dataclass(frozen=True, slots=True)
class Unbonding:
    """Stake of a validator that left the set: still bonded and slashable until the block of
    `release_height`, which returns it to the account (specs/consensus.md, STAKE-5)."""

    stake: int
    release_height: int

    PREFIX: ClassVar[bytes] = b"y"


@dataclass(frozen=True, slots=True)
class UnbondingRelease:
    """The addresses whose unbonding stake the block of one height returns, in unbonding order."""

    addresses: list[bytes]

    PREFIX: ClassVar[bytes] = b"z"


@fast_init
@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the ledger is: the last applied block's height and time, and its period."""

    height: int
    time_ms: int
    period: int

    PREFIX: ClassVar[bytes] = b"c"


@fast_init
@dataclass(frozen=True, slots=True)
class Totals:
    """The parts of the conservation identity, plus running totals auditors read.

    circulating + commons_pool + ubi_reserve + bonded == total_supply, always.
    """

    total_supply: int
    circulating: int
    commons_pool: int
    ubi_reserve: int
    bonded: int
    demurrage_collected: int
    ubi_paid: int
    slashed: int
    member_count: int
    usage_fees: int

    PREFIX: ClassVar[bytes] = b"t"


@dataclass(frozen=True, slots=True)
class Params:
    """Genesis parameters (see specs/monetary.md). Stored in the state so the root commits to them."""

    chain_id: str
    genesis_time_ms: int
    period_seconds: int
    demurrage_rate: int
    ubi_fraction: int
    slash_fraction: int

    PREFIX: ClassVar[bytes] = b"g"


def _as_tuples(record: Any, *names: str) -> None:
    """Decoded msgpack gives lists; keep sequence fields as tuples so records compare equal."""
    for name in names:
        object.__setattr__(record, name, tuple(getattr(record, name)))


# nodes and membership (specs/membership.md) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class CommunityRules:
    """The bounds genesis fixes for every node, and the names it defines (resources, need flags,
    modification kinds). Never changed by a transaction."""

    resources: tuple[str, ...]
    need_flags: tuple[str, ...]
    modification_kinds: tuple[str, ...]
    housing_fee_max: int
    area_delta_max: int
    area_total_max: int

    PREFIX: ClassVar[bytes] = b"b"

    def __post_init__(self) -> None:
        _as_tuples(self, "resources", "need_flags", "modification_kinds")


@dataclass(frozen=True, slots=True)
class Node:
    """A city-state node: its council (m of n keys), its member count, its own parameters, and
    the counters its housing queues use.

    `members_at_period_start` is the member count when period `count_period` opened; it is
    written lazily, by the first membership change in a period (specs/membership.md)."""

    name: str
    council_keys: tuple[bytes, ...]
    threshold: int
    member_count: int
    count_period: int
    members_at_period_start: int
    fee_epochs: int
    area_delta_max: int
    area_total_max: int
    application_seq: int
    vacancy_seq: int

    PREFIX: ClassVar[bytes] = b"n"

    def __post_init__(self) -> None:
        _as_tuples(self, "council_keys")

    def members_at_start_of(self, period: int) -> int:
        """The member count when `period` (the current period or a later one) opened."""
        return self.member_count if self.count_period < period else self.members_at_period_start

    def with_member_count_change(self, period: int, delta: int) -> "Node":
        """The node after a member joins (+1) or leaves (-1) in `period`, the current period: the
        first change in a period first records the count the period opened with."""
        start = self.members_at_start_of(period)
        return replace(self, member_count=self.member_count + delta, count_period=period, members_at_period_start=start)


@dataclass(frozen=True, slots=True)
class FeeEpoch:
    """The node's housing usage fee per period, in force from `from_period` until the next epoch."""

    from_period: int
    fee: int

    PREFIX: ClassVar[bytes] = b"f"


# quotas (specs/quotas.md) ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Resource:
    """A resource genesis defines: its unit of measure, the bounds of a node's cap per period,
    and the floor and ceiling of a member's holding in percent of the allowance."""

    unit: str
    cap_min: int
    cap_max: int
    floor_percent: int
    ceiling_percent: int

    PREFIX: ClassVar[bytes] = b"o"


@dataclass(frozen=True, slots=True)
class QuotaPool:
    """One node's quota of one resource for period `period`: the cap in force, the cap for later
    periods, the member count the allowance was fixed at, the allowance, and what was granted and
    consumed so far in the period."""

    period: int
    cap: int
    next_cap: int
    members: int
    allowance: int
    granted: int
    consumed: int

    PREFIX: ClassVar[bytes] = b"q"


@dataclass(frozen=True, slots=True)
class QuotaHolding:
    """A member's quota of one resource in period `period`: its own allowance, its holding
    (allowance plus bought minus sold), and what it consumed. Left to consume: holding - consumed."""

    period: int
    allowance: int
    holding: int
    consumed: int

    PREFIX: ClassVar[bytes] = b"h"


@dataclass(frozen=True, slots=True)
class Provider:
    """A utility key the council registered to record consumption of one resource."""

    registered_height: int

    PREFIX: ClassVar[bytes] = b"u"


# housing (specs/housing.md) -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HousingUnit:
    """A home. `vacant` units are linked, oldest vacancy first, in their node's vacancy list for
    their capacity (`prev`, `next`: unit ids). `grants` counts the rights ever granted on it."""

    capacity: int
    attributes: bytes
    area_delta: int
    vacant: bool
    vacancy_seq: int
    prev: str | None
    next: str | None
    grants: int

    PREFIX: ClassVar[bytes] = b"U"


@dataclass(frozen=True, slots=True)
class Application:
    """A member waiting for a home, linked in its node's waiting list for (need level, household)."""

    node: str
    household: int
    needs: int
    applied_height: int
    applied_period: int
    seq: int
    prev: bytes | None
    next: bytes | None

    PREFIX: ClassVar[bytes] = b"A"


@dataclass(frozen=True, slots=True)
class ListEnds:
    """Ends of a doubly linked FIFO whose items carry `prev` and `next` (ledger/housing.py)."""

    head: Any
    tail: Any
    length: int


@dataclass(frozen=True, slots=True)
class WaitingList(ListEnds):
    """A waiting list of applications: head and tail are addresses."""

    PREFIX: ClassVar[bytes] = b"W"


@dataclass(frozen=True, slots=True)
class VacancyList(ListEnds):
    """A vacancy list of units: head and tail are unit ids."""

    PREFIX: ClassVar[bytes] = b"V"


@dataclass(frozen=True, slots=True)
class HousingRight:
    """An irrevocable right to a unit. `household`, `needs`, `applied_period` and
    `application_seq` are the application it was granted on, kept so anyone can recompute the
    allocation. `grant` numbers it among the unit's rights; its history is `history_length`
    RightEvent records."""

    holder: bytes
    co_holders: tuple[bytes, ...]
    household: int
    needs: int
    applied_period: int
    application_seq: int
    granted_height: int
    granted_period: int
    grant: int
    history_length: int

    PREFIX: ClassVar[bytes] = b"R"

    def __post_init__(self) -> None:
        _as_tuples(self, "co_holders")


@dataclass(frozen=True, slots=True)
class Residence:
    """Where an address lives: the unit of the right it holds (`holder`) or co-holds."""

    node: str
    unit: str
    holder: bool

    PREFIX: ClassVar[bytes] = b"r"


@dataclass(frozen=True, slots=True)
class RightEvent:
    """One entry of a right's history: what happened (`event`), at which height, to which address,
    and for a modification its kind and area delta."""

    height: int
    event: str
    address: bytes | None
    kind: str
    area_delta: int

    PREFIX: ClassVar[bytes] = b"H"


RECORD_TYPES: dict[bytes, type] = {
    cls.PREFIX: cls
    for cls in (
        Account, Member, PeriodRecord, Validator, SlashedValidator, Unbonding, UnbondingRelease, ChainHead, Totals, Params,
        CommunityRules, Node, FeeEpoch, Resource, QuotaPool, QuotaHolding, Provider,
        HousingUnit, Application, WaitingList, VacancyList, HousingRight, Residence, RightEvent,
    )
}
_FIELD_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in RECORD_TYPES.values()}

WIRE_FIELDS = {
    # attrgetter of one name returns the value itself, not a 1-tuple
    cls: operator.attrgetter(*names) if len(names) > 1 else (lambda r, n=names[0]: (getattr(r, n),))
    for cls, names in _FIELD_NAMES.items()
}
"""Per record class: the function from a record to its fields in order (`record_to_wire`)."""

SINGLETON_KEYS = {ChainHead: b"c", Totals: b"t", Params: b"g", CommunityRules: b"b"}


def account_key(address: bytes) -> bytes:
    return b"a" + address


def member_key(address: bytes) -> bytes:
    return b"m" + address


def period_key(period: int) -> bytes:
    return b"p" + period.to_bytes(8, "big")


def validator_key(address: bytes) -> bytes:
    return b"v" + address


def slashed_validator_key(address: bytes) -> bytes:
    return b"x" + address


def unbonding_key(address: bytes) -> bytes:
    return b"y" + address


def unbonding_release_key(height: int) -> bytes:
    return b"z" + height.to_bytes(8, "big")


# Ids (node, resource, unit) are 1 to 32 characters of [a-z0-9._-] (specs/membership.md), so a NUL
# separates them unambiguously inside a key.
def node_key(node: str) -> bytes:
    return b"n" + node.encode()


def fee_epoch_key(node: str, index: int) -> bytes:
    return b"f" + node.encode() + b"\x00" + index.to_bytes(4, "big")


def resource_key(resource: str) -> bytes:
    return b"o" + resource.encode()


def quota_pool_key(node: str, resource: str) -> bytes:
    return b"q" + node.encode() + b"\x00" + resource.encode()


def quota_holding_key(address: bytes, resource: str) -> bytes:
    return b"h" + address + resource.encode()


def provider_key(node: str, resource: str, provider: bytes) -> bytes:
    return b"u" + node.encode() + b"\x00" + resource.encode() + b"\x00" + provider


def unit_key(node: str, unit: str) -> bytes:
    return b"U" + node.encode() + b"\x00" + unit.encode()


def application_key(address: bytes) -> bytes:
    return b"A" + address


def waiting_list_key(node: str, need_level: int, household: int) -> bytes:
    return b"W" + node.encode() + b"\x00" + bytes((need_level, household))


def vacancy_list_key(node: str, capacity: int) -> bytes:
    return b"V" + node.encode() + b"\x00" + bytes((capacity,))


def right_key(node: str, unit: str) -> bytes:
    return b"R" + node.encode() + b"\x00" + unit.encode()


def residence_key(address: bytes) -> bytes:
    return b"r" + address


def right_event_key(node: str, unit: str, grant: int, index: int) -> bytes:
    return b"H" + node.encode() + b"\x00" + unit.encode() + b"\x00" + grant.to_bytes(4, "big") + index.to_bytes(4, "big")


def record_to_wire(record: Any) -> tuple[Any, ...]:
    """The record's fields in order (msgpack encodes a tuple as an array)."""
    return WIRE_FIELDS[type(record)](record)


def record_from_wire(key: bytes, wire: list[Any]) -> Any:
    cls = RECORD_TYPES[key[:1]]
    return cls(*wire)
