"""Canonical msgpack: one byte string per value, so hashes and signatures are unambiguous.

Canonical means: maps have str keys in sorted order, ints use msgpack's shortest form, byte strings
are bin, text is str, no floats, no extension types. `decode_canonical` rejects anything else by
re-encoding what it decoded and comparing bytes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import msgpack

MAX_DEPTH = 16


class EncodingError(ValueError):
    pass


def _sorted(obj: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise EncodingError("nesting too deep")
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise EncodingError("map keys must be text")
        return {k: _sorted(obj[k], depth + 1) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_sorted(v, depth + 1) for v in obj]
    if isinstance(obj, float):
        raise EncodingError("floats are not allowed")
    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        if isinstance(obj, int) and not isinstance(obj, bool) and not (-(2**63) <= obj < 2**64):
            raise EncodingError("integer out of range")
        return obj
    raise EncodingError(f"type {type(obj).__name__} cannot be encoded")


def encode(obj: Any) -> bytes:
    """Canonical bytes of a value made of dict/list/tuple/str/bytes/int/bool/None."""
    return msgpack.packb(_sorted(obj), use_bin_type=True)


_packers = threading.local()


def fast_packer() -> Callable[[Any], bytes]:
    """This thread's `encode_fast`, to call in a loop. One Packer per thread: `msgpack.packb`
    builds a new one per call; a Packer resets its buffer after each value, and after an error."""
    try:
        return _packers.pack
    except AttributeError:
        pack = _packers.pack = msgpack.Packer(use_bin_type=True).pack
        return pack


def encode_fast(obj: Any) -> bytes:
    """Encode a value the caller built canonically (sorted str keys, no floats). Hot paths only."""
    return fast_packer()(obj)


def has_canonical_form(obj: Any, depth: int = 0) -> bool:
    """True iff every map in `obj` has text keys in ascending order and nothing is a float.

    With this, `encode_fast(obj) == data` proves `data` canonical, without rebuilding the value."""
    if depth > MAX_DEPTH:
        return False
    if depth == MAX_DEPTH and isinstance(obj, (dict, list)) and obj:
        return False  # its items would lie deeper than MAX_DEPTH, which `encode` refuses, leaves too
    if isinstance(obj, dict):
        keys = list(obj)
        for k in keys:
            if type(k) is not str:
                return False
        if keys != sorted(keys):
            return False
        values: Any = obj.values()
    elif isinstance(obj, list):
        values = obj
    else:
        return type(obj) is not float
    for v in values:
        if type(v) in _TO_LOOK_INTO and not has_canonical_form(v, depth + 1):
            return False
    return True


_TO_LOOK_INTO = frozenset((dict, list, float))
"""The types of values `has_canonical_form` checks further (what msgpack decodes, all else is final)."""


MAX_ARRAY_LEN = 100_000
MAX_MAP_LEN = 10_000


def _limits(max_bytes: int) -> dict[str, Any]:
    """msgpack's limits for input of at most `max_bytes`: no extension types, text and binary no
    longer than the input, arrays and maps bounded."""
    return {
        "raw": False,
        "strict_map_key": True,
        "max_bin_len": max_bytes,
        "max_str_len": max_bytes,
        "max_array_len": MAX_ARRAY_LEN,
        "max_map_len": MAX_MAP_LEN,
        "max_ext_len": 0,
    }


def decode(data: bytes, max_bytes: int = 1 << 20, use_list: bool = True) -> Any:
    """Decode msgpack with limits; raises EncodingError on anything malformed. Arrays decode as
    lists, or as tuples with `use_list=False`."""
    if len(data) > max_bytes:
        raise EncodingError("too large")
    try:
        return msgpack.unpackb(data, use_list=use_list, **_limits(max_bytes))
    except Exception as exc:  # msgpack raises many types; all mean malformed input
        raise EncodingError(f"undecodable: {type(exc).__name__}") from None


def limited_unpacker(max_bytes: int, use_list: bool = True) -> Callable[[bytes], Any]:
    """`decode`'s msgpack call for input of at most `max_bytes` bytes, made once for a hot path:
    the caller checks the size, and turns whatever it raises into its own error."""
    return functools.partial(msgpack.unpackb, use_list=use_list, **_limits(max_bytes))


def decode_stored(data: bytes) -> Any:
    """Decode bytes this ledger encoded itself and read back from its own store: msgpack's
    defaults (arrays as lists, text as str), without the limits that guard untrusted input."""
    return _unpackb(data)


_unpackb = msgpack.unpackb


def decode_canonical(data: bytes, max_bytes: int = 1 << 20) -> Any:
    """Decode and insist the bytes are the canonical encoding of what they decode to.

    `has_canonical_form` and `encode_fast` decide it without rebuilding the value (a block's
    thousand transactions are not copied); where they refuse, `encode` runs for its error."""
    obj = decode(data, max_bytes)
    if has_canonical_form(obj) and encode_fast(obj) == data:
        return obj
    if encode(obj) != data:
        raise EncodingError("not canonical")
    return obj  # unreachable: what `encode` accepts as these bytes passes the check above
