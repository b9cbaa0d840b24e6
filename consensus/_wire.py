"""Strict readers for decoded wire values: any deviation raises `MessageInvalid`, nothing else."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from consensus.errors import MessageInvalid
from ledger.encoding import EncodingError, decode_canonical, encode

T = TypeVar("T", bound="WireMessage")


def expect_map(obj: Any, keys: frozenset[str], what: str) -> dict[str, Any]:
    """A map with exactly `keys`: a missing or an unknown field is an error, not ignored."""
    if not isinstance(obj, dict):
        raise MessageInvalid(f"{what}: expected a map, got {type(obj).__name__}")
    present = frozenset(obj)
    if present != keys:
        missing = sorted(keys - present)
        unknown = sorted(str(k) for k in present - keys)
        raise MessageInvalid(f"{what}: missing fields {missing}, unknown fields {unknown}")
    return obj


def expect_int(obj: Any, what: str, low: int, high: int) -> int:
    if not isinstance(obj, int) or isinstance(obj, bool):
        raise MessageInvalid(f"{what}: expected an integer, got {type(obj).__name__}")
    if not low <= obj <= high:
        raise MessageInvalid(f"{what}: {obj} is outside [{low}, {high}]")
    return obj


def expect_bytes(obj: Any, what: str, length: int) -> bytes:
    if not isinstance(obj, bytes):
        raise MessageInvalid(f"{what}: expected bytes, got {type(obj).__name__}")
    if len(obj) != length:
        raise MessageInvalid(f"{what}: expected {length} bytes, got {len(obj)}")
    return obj


def expect_optional_bytes(obj: Any, what: str, length: int) -> bytes | None:
    return None if obj is None else expect_bytes(obj, what, length)


def expect_list(obj: Any, what: str, max_items: int) -> list[Any]:
    if not isinstance(obj, list):
        raise MessageInvalid(f"{what}: expected a list, got {type(obj).__name__}")
    if len(obj) > max_items:
        raise MessageInvalid(f"{what}: {len(obj)} items, at most {max_items}")
    return obj


def expect_tuple_of(
    items: Any, member: type, what: str, min_items: int, max_items: int
) -> tuple[Any, ...]:
    """A tuple of `min_items` to `max_items` instances of `member` (constructors take tuples, so a
    frozen value cannot be changed through a list it was built from)."""
    if not isinstance(items, tuple):
        raise MessageInvalid(f"{what}: expected a tuple, got {type(items).__name__}")
    if not min_items <= len(items) <= max_items:
        raise MessageInvalid(f"{what}: {len(items)} items, expected {min_items} to {max_items}")
    for item in items:
        if not isinstance(item, member):
            raise MessageInvalid(f"{what}: members must be {member.__name__}")
    return items


def expect_strictly_increasing(keys: list[bytes], what: str) -> None:
    """Canonical order with no repeats, so a collection has one encoding and counts no one twice."""
    if any(a >= b for a, b in zip(keys, keys[1:])):
        raise MessageInvalid(f"{what}: must be strictly increasing")


class WireMessage:
    """Gives a type with `to_wire()`/`from_wire()` its canonical byte form."""

    max_wire_bytes: ClassVar[int] = 1 << 16
    """Largest encoding `from_bytes` reads; a type that can be larger (a block) raises it."""

    def to_wire(self) -> Any:
        raise NotImplementedError

    @classmethod
    def from_wire(cls: type[T], obj: Any) -> T:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def from_bytes(cls: type[T], data: bytes) -> T:
        if not isinstance(data, bytes):
            raise MessageInvalid(f"expected bytes, got {type(data).__name__}")
        try:
            obj = decode_canonical(data, cls.max_wire_bytes)
        except EncodingError as exc:
            raise MessageInvalid(f"{cls.__name__}: {exc}") from None
        return cls.from_wire(obj)
