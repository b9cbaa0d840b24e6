from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import EncodingError, decode, decode_canonical, encode

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_encode_decode_round_trip(value: object) -> None:
    data = encode(value)
    assert decode_canonical(data) == value
    assert encode(decode(data)) == data


def test_map_keys_are_sorted_whatever_the_insertion_order() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


def test_non_canonical_map_order_is_rejected() -> None:
    unsorted = msgpack.packb({"b": 1, "a": 2}, use_bin_type=True)
    with pytest.raises(EncodingError):
        decode_canonical(unsorted)


def test_non_shortest_integer_is_rejected() -> None:
    long_form = b"\xcd\x00\x05"  # uint16 encoding of 5
    assert decode(long_form) == 5
    with pytest.raises(EncodingError):
        decode_canonical(long_form)


@pytest.mark.parametrize("bad", [1.5, {1: "int key"}, object(), 2**64])
def test_unencodable_values_are_refused(bad: object) -> None:
    with pytest.raises(EncodingError):
        encode(bad)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\xdd\xff\xff\xff\xff"])
def test_malformed_bytes_raise_encoding_error(data: bytes) -> None:
    with pytest.raises(EncodingError):
        decode(data)


def test_oversized_input_is_refused() -> None:
    with pytest.raises(EncodingError):
        decode(encode(b"x" * 100), max_bytes=50)


def _plain_decode_canonical(data: bytes) -> object:
    """The rule as written: the bytes are canonical iff they are `encode` of what they decode to."""
    obj = decode(data)
    if encode(obj) != data:
        raise EncodingError("not canonical")
    return obj


def _outcome(decoder: object, data: bytes) -> object:
    try:
        return ("ok", decoder(data))  # type: ignore[operator]
    except EncodingError as exc:
        return ("refused", str(exc))


loose_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), inner, max_size=4),
    max_leaves=20,
)


@given(loose_values, st.integers(0, 200), st.integers(0, 255))
def test_decode_canonical_decides_as_the_plain_rule(value: object, at: int, mask: int) -> None:
    """Its fast check (no rebuilt copy) accepts and refuses exactly what the plain rule does, with
    the same error, on msgpack of any shape (unsorted maps, floats, int keys) and on those bytes
    with a byte flipped."""
    try:
        data = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return
    flipped = bytearray(data)
    flipped[at % len(flipped)] ^= mask
    for candidate in (data, bytes(flipped)):
        assert _outcome(decode_canonical, candidate) == _outcome(_plain_decode_canonical, candidate)


@pytest.mark.parametrize("depth", [15, 16, 17, 18])
@pytest.mark.parametrize("leaf", [1, None, "x", [], {}])
@pytest.mark.parametrize("container", ["list", "map"])
def test_decode_canonical_refuses_nesting_as_encode_does(depth: int, leaf: object, container: str) -> None:
    """`encode` refuses any value, a leaf too, deeper than MAX_DEPTH; so does the fast check."""
    value = leaf
    for _ in range(depth):
        value = [value] if container == "list" else {"a": value}
    data = msgpack.packb(value, use_bin_type=True)
    assert _outcome(decode_canonical, data) == _outcome(_plain_decode_canonical, data)
