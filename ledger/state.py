"""Views of the ledger state: the committed state in a store, and overlays that hold uncommitted writes.

A block is applied to an overlay over the committed state; each transaction to an overlay over the
block's. A rejected transaction's overlay is dropped, so the state it saw is unchanged, byte for byte.
"""

from __future__ import annotations

from typing import Any, Protocol

from ledger import encoding
from ledger.records import (
    Account,
    ChainHead,
    Member,
    Params,
    PeriodRecord,
    Totals,
    Validator,
    WIRE_FIELDS,
    member_key,
    period_key,
    record_from_wire,
    record_to_wire,
    validator_key,
)

STATE_PREFIX = b"s/"
"""Where state keys live inside the store."""

_MISSING = object()
"""A dict lookup default: the key is not there."""


class StateReader(Protocol):
    def get(self, key: bytes) -> Any: ...


def scan_prefix(reader: Any, prefix: bytes) -> dict[bytes, Any]:
    """Every record whose key starts with `prefix`, by key in ascending order, as `reader` sees it.
    For small record kinds only (validators): it reads them all."""
    scan = getattr(reader, "scan", None)
    if scan is None:
        raise TypeError(f"{type(reader).__name__} cannot list records")
    return scan(prefix)


def encode_record(record: Any) -> bytes:
    return encoding.encode_fast(record_to_wire(record))


def encode_records(records: dict[bytes, Any]) -> dict[bytes, bytes | None]:
    """`encode_record` of each record by key; None (a deletion) stays None."""
    pack = encoding.fast_packer()
    wire = WIRE_FIELDS
    return {k: None if r is None else pack(wire[type(r)](r)) for k, r in records.items()}


def decode_record(key: bytes, data: bytes) -> Any:
    return record_from_wire(key, encoding.decode(data))


class CommittedState:
    """Reads of the committed state in a store, through a bounded cache of each record and the
    value bytes it was read or written as (so undo logs need no re-encoding)."""

    CACHE_MAX = 200_000

    def __init__(self, store: Any) -> None:
        self._store = store
        self._cache: dict[bytes, Any] = {}
        self._encoded: dict[bytes, bytes | None] = {}

    def _make_room(self) -> None:
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
            self._encoded.clear()

    def get(self, key: bytes) -> Any:
        record = self._cache.get(key, _MISSING)  # a miss is common (a block's new recipients): no exception
        if record is not _MISSING:
            return record
        data = self._store.get(STATE_PREFIX + key)
        record = None if data is None else record_from_wire(key, encoding.decode_stored(data))
        self._make_room()
        self._cache[key] = record
        self._encoded[key] = data
        return record

    def previous_values(self, keys: Any) -> list[tuple[bytes, bytes | None]]:
        """(key, committed value bytes or None) for each key: what an undo log records."""
        encoded, store = self._encoded, self._store
        out = []
        for key in keys:
            data = encoded.get(key, _MISSING)
            out.append((key, store.get(STATE_PREFIX + key) if data is _MISSING else data))
        return out

    def scan(self, prefix: bytes) -> dict[bytes, Any]:
        """The committed records whose keys start with `prefix`, in key order."""
        skip = len(STATE_PREFIX)
        return {k[skip:]: decode_record(k[skip:], v) for k, v in self._store.iterate(STATE_PREFIX + prefix)}

    def updated(self, changes: dict[bytes, Any], encoded: dict[bytes, bytes | None]) -> None:
        """Refresh the cache after `changes` (records, and their value bytes) were written."""
        self._make_room()
        self._cache.update(changes)
        self._encoded.update(encoded)


class State:
    """An overlay: reads fall through to `parent`, writes stay here until `merge_into_parent`."""

    __slots__ = ("_parent", "_writes")

    def __init__(self, parent: StateReader) -> None:
        self._parent = parent
        self._writes: dict[bytes, Any] = {}

    # generic access ---------------------------------------------------------------------------
    def get(self, key: bytes) -> Any:
        record = self._writes.get(key, _MISSING)
        if record is _MISSING:
            return self._parent.get(key)
        return record

    def put(self, key: bytes, record: Any) -> None:
        self._writes[key] = record

    def delete(self, key: bytes) -> None:
        self._writes[key] = None

    def scan(self, prefix: bytes) -> dict[bytes, Any]:
        """The records whose keys start with `prefix` (this overlay's writes over its parent's), in key order."""
        records = scan_prefix(self._parent, prefix)
        for key, record in self._writes.items():
            if key.startswith(prefix):
                if record is None:
                    records.pop(key, None)
                else:
                    records[key] = record
        return dict(sorted(records.items()))

    def child(self) -> "State":
        return State(self)

    def merge_into_parent(self) -> None:
        parent = self._parent
        if not isinstance(parent, State):
            raise TypeError("only an overlay over another overlay can merge")
        parent._writes.update(self._writes)

    @property
    def changes(self) -> dict[bytes, Any]:
        """Written records by key; None marks a deletion."""
        return self._writes

    # typed access -----------------------------------------------------------------------------
    def get_params(self) -> Params:
        return self.get(b"g")

    def get_head(self) -> ChainHead:
        head = self._writes.get(b"c", _MISSING)  # `get`, inlined: read by every transfer
        return self._parent.get(b"c") if head is _MISSING else head

    def set_head(self, head: ChainHead) -> None:
        self._writes[b"c"] = head

    def get_totals(self) -> Totals:
        return self.get(b"t")

    def set_totals(self, totals: Totals) -> None:
        self._writes[b"t"] = totals

    def get_account(self, address: bytes) -> Account | None:
        key = b"a" + address  # account_key and `get`, inlined: the hottest read
        account = self._writes.get(key, _MISSING)
        return self._parent.get(key) if account is _MISSING else account

    def set_account(self, address: bytes, account: Account) -> None:
        self._writes[b"a" + address] = account  # account_key, inlined

    def get_member(self, address: bytes) -> Member | None:
        return self.get(member_key(address))

    def set_member(self, address: bytes, member: Member | None) -> None:
        self._writes[member_key(address)] = member

    def get_period_record(self, period: int) -> PeriodRecord | None:
        return self.get(period_key(period))

    def set_period_record(self, period: int, record: PeriodRecord) -> None:
        self._writes[period_key(period)] = record

    def get_validator(self, address: bytes) -> Validator | None:
        return self.get(validator_key(address))

    def set_validator(self, address: bytes, validator: Validator | None) -> None:
        self._writes[validator_key(address)] = validator
