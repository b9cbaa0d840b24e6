"""The records that make up the ledger state, and the state keys they live under.

Every record is a frozen dataclass with a canonical wire form (a msgpack list in field order).
The state is a map from key bytes to record; keys are a one-byte prefix naming the record kind,
followed by the record's id. specs/state.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Account:
    """A holder of coins. `settled_period`: demurrage and UBI are applied through this period."""

    balance: int
    nonce: int
    settled_period: int

    PREFIX: ClassVar[bytes] = b"a"


@dataclass(frozen=True, slots=True)
class Member:
    """A registered member. UBI accrues for every period after `joined_period`."""

    joined_period: int

    PREFIX: ClassVar[bytes] = b"m"


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
class ChainHead:
    """Where the ledger is: the last applied block's height and time, and its period."""

    height: int
    time_ms: int
    period: int

    PREFIX: ClassVar[bytes] = b"c"


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
    registrar: bytes

    PREFIX: ClassVar[bytes] = b"g"


RECORD_TYPES: dict[bytes, type] = {
    cls.PREFIX: cls for cls in (Account, Member, PeriodRecord, Validator, ChainHead, Totals, Params)
}
_FIELD_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in RECORD_TYPES.values()}

SINGLETON_KEYS = {ChainHead: b"c", Totals: b"t", Params: b"g"}


def account_key(address: bytes) -> bytes:
    return b"a" + address


def member_key(address: bytes) -> bytes:
    return b"m" + address


def period_key(period: int) -> bytes:
    return b"p" + period.to_bytes(8, "big")


def validator_key(address: bytes) -> bytes:
    return b"v" + address


def record_to_wire(record: Any) -> list[Any]:
    return [getattr(record, name) for name in _FIELD_NAMES[type(record)]]


def record_from_wire(key: bytes, wire: list[Any]) -> Any:
    cls = RECORD_TYPES[key[:1]]
    return cls(*wire)
