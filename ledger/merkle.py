"""The state commitment: a fixed-depth Merkle tree over hash buckets of the key-value state.

Every state key k with value bytes v is an entry (key_hash, value_hash) = (H(k), H(v)). The entry
goes to bucket int(key_hash[:2]) (one of 2**16). A bucket's hash is
H(0x01 || key_hash_1 || value_hash_1 || ...) over its entries sorted by key_hash (H(0x01) when
empty). Above the buckets sits a complete 16-ary tree of depth 4: an inner node is
H(0x02 || child_0 || ... || child_15), and the root is the single node at the top.

Why buckets and arity 16: updating k costs O(entries in its bucket + 4 nodes) hashes, so a block's
root costs work proportional to the keys it touches, never to the size of the state; the index of one
million accounts fits in a few hundred MB; and a block of 2,000 touched keys recomputes about 4,000
nodes instead of the ~14,000 a binary tree would. See specs/state.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.constants import MERKLE_BUCKET_BITS

BUCKETS = 1 << MERKLE_BUCKET_BITS
ARITY_BITS = 4
ARITY = 1 << ARITY_BITS
DEPTH = MERKLE_BUCKET_BITS // ARITY_BITS
"""Inner levels above the buckets."""
_LEAF_TAG = b"\x01"
_NODE_TAG = b"\x02"
_sha256 = hashlib.sha256


def _h(data: bytes) -> bytes:
    return _sha256(data).digest()


def compute_bucket_index(key_hash: bytes) -> int:
    return int.from_bytes(key_hash[:2], "big") >> (16 - MERKLE_BUCKET_BITS)


def compute_bucket_hash(entries: Mapping[bytes, bytes]) -> bytes:
    if not entries:
        return _EMPTY_BUCKET
    return _h(_LEAF_TAG + b"".join([kh + entries[kh] for kh in sorted(entries)]))


def compute_node_hash(children: list[bytes]) -> bytes:
    return _h(_NODE_TAG + b"".join(children))


_EMPTY_BUCKET = _h(_LEAF_TAG)


@dataclass(frozen=True)
class Proof:
    """Evidence that a key has a value-hash (or is absent) under a root."""

    bucket_entries: tuple[tuple[bytes, bytes], ...]  # the whole bucket, sorted by key_hash
    siblings: tuple[tuple[bytes, ...], ...]  # per level from the buckets up: the node's 15 siblings, in order

    def to_wire(self) -> dict[str, object]:
        return {"bucket": [[k, v] for k, v in self.bucket_entries], "siblings": [list(level) for level in self.siblings]}

    @classmethod
    def from_wire(cls, obj: object) -> "Proof":
        if not isinstance(obj, dict) or set(obj) != {"bucket", "siblings"}:
            raise ValueError("proof must be a map with bucket and siblings")
        bucket, sibs = obj["bucket"], obj["siblings"]
        if not isinstance(bucket, list) or not isinstance(sibs, list) or len(sibs) != DEPTH:
            raise ValueError("proof has the wrong shape")
        entries = []
        for e in bucket:
            if not (isinstance(e, list) and len(e) == 2 and all(isinstance(x, bytes) and len(x) == 32 for x in e)):
                raise ValueError("proof bucket entry must be two 32-byte hashes")
            entries.append((e[0], e[1]))
        levels = []
        for level in sibs:
            if not (isinstance(level, list) and len(level) == ARITY - 1 and all(isinstance(s, bytes) and len(s) == 32 for s in level)):
                raise ValueError(f"each proof level has {ARITY - 1} sibling hashes of 32 bytes")
            levels.append(tuple(level))
        return cls(tuple(entries), tuple(levels))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True iff the proof shows `key` maps to `value` (None: key absent) under `root`."""
    key_hash = _h(key)
    entries = dict(proof.bucket_entries)
    index = compute_bucket_index(key_hash)
    if len(entries) != len(proof.bucket_entries) or any(compute_bucket_index(kh) != index for kh in entries):
        return False
    if value is None:
        if key_hash in entries:
            return False
    elif entries.get(key_hash) != _h(value):
        return False
    node = compute_bucket_hash(entries)
    for siblings in proof.siblings:
        position = index & (ARITY - 1)
        children = list(siblings)
        children.insert(position, node)
        node = compute_node_hash(children)
        index >>= ARITY_BITS
    return node == root


@dataclass
class PendingRoot:
    """The effect of a set of changes on the tree, computed but not yet installed."""

    root: bytes
    buckets: dict[int, bytes]  # changed buckets, as StateCommitment keeps them (entry bytes)
    levels: list[dict[int, bytes]]  # per level, from the buckets (0) up to the root (DEPTH): changed nodes


KEY_HASH_CACHE_MAX = 100_000
"""Key hashes (and buckets) the tree remembers: keys of accounts that send or receive again hash once."""


def _bucket_entries(entries: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((entries[i : i + 32], entries[i + 32 : i + 64]) for i in range(0, len(entries), 64))


class StateCommitment:
    """The in-memory tree index.

    A bucket is kept as the bytes its hash covers after the tag: key_hash || value_hash of each
    entry, 64 bytes apiece, in ascending key_hash order. Its hash is then one SHA-256 over the tag
    and those bytes, an update is a binary search and a splice, and an entry costs 64 bytes of
    memory rather than two objects in a dict.

    `_levels[d]` holds the nodes of level d (0: the bucket hashes) below the root as the preimages
    of their parents: per parent, the node tag and its 16 children (`_GROUP` bytes), so a parent's
    hash is one SHA-256 over a slice."""

    def __init__(self) -> None:
        self._buckets: list[bytes] = [b""] * BUCKETS
        self._levels: list[bytearray] = [_grouped([_EMPTY_BUCKET] * BUCKETS)]
        self._root = b""
        self._loading: dict[int, list[bytes]] = {}
        self._key_hashes: dict[bytes, tuple[bytes, int]] = {}
        self._rebuild_inner()

    def _rebuild_inner(self) -> None:
        del self._levels[1:]
        below = self._levels[0]
        for _ in range(DEPTH):
            view = memoryview(below)
            hashes = [_sha256(view[g : g + _GROUP]).digest() for g in range(0, len(below), _GROUP)]
            if len(hashes) == 1:
                self._root = hashes[0]
                break
            below = _grouped(hashes)
            self._levels.append(below)

    @property
    def root(self) -> bytes:
        return self._root

    def load(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Build the index from every (key, value) of a state, in any order."""
        self.add(items)
        self.finish_loading()

    def add(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Add entries while loading a state in parts; `finish_loading` then computes the hashes."""
        loading = self._loading
        for key, value in items:
            kh = _h(key)
            b = compute_bucket_index(kh)
            entries = loading.get(b)
            if entries is None:
                entries = loading[b] = []
            entries.append(kh + _h(value))

    def finish_loading(self) -> None:
        buckets = self._buckets
        level = self._levels[0]
        for b, added in self._loading.items():
            by_key = {e[:32]: e for e in added}  # a key added twice keeps its last value
            for kh, entry in _bucket_entries(buckets[b]):
                by_key.setdefault(kh, kh + entry)
            entries = buckets[b] = b"".join(sorted(by_key.values()))
            at = _position(b)
            level[at : at + 32] = _h(_LEAF_TAG + entries)
        self._loading = {}
        self._rebuild_inner()

    def _locate(self, key: bytes) -> tuple[bytes, int]:
        """The key's hash and its bucket, remembered."""
        located = self._key_hashes.get(key)
        if located is None:
            if len(self._key_hashes) >= KEY_HASH_CACHE_MAX:
                self._key_hashes.clear()
            kh = _sha256(key).digest()
            located = self._key_hashes[key] = (kh, compute_bucket_index(kh))
        return located

    def preview(self, changes: Mapping[bytes, bytes | None]) -> PendingRoot:
        """The root after `changes` (value bytes, or None to delete), without installing it."""
        touched: dict[int, bytes] = {}
        buckets = self._buckets
        key_hashes = self._key_hashes
        for key, value in changes.items():
            located = key_hashes.get(key)
            kh, b = self._locate(key) if located is None else located
            entries = touched.get(b)
            if entries is None:
                entries = buckets[b]
            if len(entries) == 64 and entries[:32] == kh:  # the key alone in its bucket: common
                touched[b] = b"" if value is None else kh + _sha256(value).digest()
                continue
            low, high = 0, len(entries) >> 6  # the first entry whose key hash is >= kh
            while low < high:
                mid = (low + high) >> 1
                if entries[mid << 6 : (mid << 6) + 32] < kh:
                    low = mid + 1
                else:
                    high = mid
            at = low << 6
            end = at + 64 if entries[at : at + 32] == kh else at
            if value is None:
                touched[b] = entries[:at] + entries[end:]
            else:
                touched[b] = b"".join((entries[:at], kh, _sha256(value).digest(), entries[end:]))
        if not touched:
            return PendingRoot(self.root, {}, [{} for _ in range(DEPTH + 1)])
        changed: dict[int, bytes] = {b: _sha256(_LEAF_TAG + e).digest() for b, e in touched.items()}
        levels = [changed]
        for level in self._levels:
            # each parent of a changed node: its preimage copied once, the changed children patched in
            preimages: dict[int, bytearray] = {}
            for i, h in changed.items():
                p = i >> ARITY_BITS
                preimage = preimages.get(p)
                if preimage is None:
                    preimage = preimages[p] = level[p * _GROUP : (p + 1) * _GROUP]
                at = 1 + ((i & (ARITY - 1)) << 5)
                preimage[at : at + 32] = h
            changed = {p: _sha256(preimage).digest() for p, preimage in preimages.items()}
            levels.append(changed)
        return PendingRoot(changed[0], touched, levels)

    def install(self, pending: PendingRoot) -> None:
        buckets = self._buckets
        for b, entries in pending.buckets.items():
            buckets[b] = entries
        for level, changed in zip(self._levels, pending.levels):
            with memoryview(level) as view:  # assigns a slice in half the time the bytearray does
                for i, h in changed.items():
                    at = (i >> ARITY_BITS) * _GROUP + 1 + ((i & (ARITY - 1)) << 5)  # _position(i), inlined
                    view[at : at + 32] = h
        self._root = pending.root

    def prove(self, key: bytes, view: PendingRoot | None = None) -> Proof:
        """The proof of `key` against the root, or against `view.root` for a tree that differs from
        this one by `view` (a preview of other changes, e.g. rolled back to an earlier height)."""
        kh = _h(key)
        index = compute_bucket_index(kh)
        if view is not None and index in view.buckets:
            entries = view.buckets[index]
        else:
            entries = self._buckets[index]
        siblings = []
        for depth, level in enumerate(self._levels):
            first = (index >> ARITY_BITS) << ARITY_BITS
            group = [_node(level, first + j) for j in range(ARITY)]
            if view is not None:
                changed = view.levels[depth]
                group = [changed.get(first + j, h) for j, h in enumerate(group)]
            del group[index - first]
            siblings.append(tuple(group))
            index >>= ARITY_BITS
        return Proof(_bucket_entries(entries), tuple(siblings))


_GROUP = 1 + ARITY * 32
"""Bytes of a parent's preimage: the node tag, then its 16 children."""


def _grouped(hashes: list[bytes]) -> bytearray:
    """A level of nodes as the preimages of their parents."""
    return bytearray(b"".join([_NODE_TAG + b"".join(hashes[i : i + ARITY]) for i in range(0, len(hashes), ARITY)]))


def _position(i: int) -> int:
    """Where node `i` of a level sits in its grouped bytes."""
    return (i >> ARITY_BITS) * _GROUP + 1 + ((i & (ARITY - 1)) << 5)


def _node(level: bytearray, i: int) -> bytes:
    at = _position(i)
    return bytes(level[at : at + 32])
