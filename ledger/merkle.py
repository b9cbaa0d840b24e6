"""The state commitment: a fixed-depth Merkle tree over hash buckets of the key-value state.

Every state key k with value bytes v is an entry (key_hash, value_hash) = (H(k), H(v)). The entry
goes to bucket int(key_hash[:2]) (one of 2**16). A bucket's hash is
H(0x01 || key_hash_1 || value_hash_1 || ...) over its entries sorted by key_hash (H(0x01) when
empty). The root is a complete binary tree over the bucket hashes, inner node H(0x02 || left || right).

Why buckets: updating k costs O(entries in its bucket + 16) hashes, so a block's root costs work
proportional to the keys it touches, never to the size of the state; and the whole index of one
million accounts fits in a few hundred MB. See specs/state.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger.constants import MERKLE_BUCKET_BITS

BUCKETS = 1 << MERKLE_BUCKET_BITS
DEPTH = MERKLE_BUCKET_BITS
_LEAF_TAG = b"\x01"
_NODE_TAG = b"\x02"


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def compute_bucket_index(key_hash: bytes) -> int:
    return int.from_bytes(key_hash[:2], "big") >> (16 - MERKLE_BUCKET_BITS)


def compute_bucket_hash(entries: Mapping[bytes, bytes]) -> bytes:
    if not entries:
        return _EMPTY_BUCKET
    return _h(_LEAF_TAG + b"".join(kh + entries[kh] for kh in sorted(entries)))


def compute_node_hash(left: bytes, right: bytes) -> bytes:
    return _h(_NODE_TAG + left + right)


_EMPTY_BUCKET = _h(_LEAF_TAG)


@dataclass(frozen=True)
class Proof:
    """Evidence that `key` has value-hash `value_hash` (or is absent) under a root."""

    bucket_entries: tuple[tuple[bytes, bytes], ...]  # the whole bucket, sorted by key_hash
    siblings: tuple[bytes, ...]  # DEPTH sibling hashes, from the bucket level up

    def to_wire(self) -> dict[str, object]:
        return {"bucket": [[k, v] for k, v in self.bucket_entries], "siblings": list(self.siblings)}

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
        if not all(isinstance(s, bytes) and len(s) == 32 for s in sibs):
            raise ValueError("proof siblings must be 32-byte hashes")
        return cls(tuple(entries), tuple(sibs))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True iff the proof shows `key` maps to `value` (None: key absent) under `root`."""
    key_hash = _h(key)
    entries = dict(proof.bucket_entries)
    if len(entries) != len(proof.bucket_entries):
        return False
    if any(compute_bucket_index(kh) != compute_bucket_index(key_hash) for kh in entries):
        return False
    if value is None:
        if key_hash in entries:
            return False
    elif entries.get(key_hash) != _h(value):
        return False
    node = compute_bucket_hash(entries)
    index = compute_bucket_index(key_hash)
    for sibling in proof.siblings:
        node = compute_node_hash(sibling, node) if index & 1 else compute_node_hash(node, sibling)
        index >>= 1
    return node == root


@dataclass
class PendingRoot:
    """The effect of a set of changes on the tree, computed but not yet installed."""

    root: bytes
    buckets: dict[int, dict[bytes, bytes]]
    nodes: dict[int, bytes]


class StateCommitment:
    """The in-memory tree index. Nodes are stored heap-style: node i has children 2i and 2i+1,
    bucket b sits at BUCKETS + b, the root at 1."""

    def __init__(self) -> None:
        self._buckets: list[dict[bytes, bytes] | None] = [None] * BUCKETS
        self._nodes: list[bytes] = [b""] * (2 * BUCKETS)
        for b in range(BUCKETS):
            self._nodes[BUCKETS + b] = _EMPTY_BUCKET
        self._rebuild_inner()

    def _rebuild_inner(self) -> None:
        nodes = self._nodes
        for i in range(BUCKETS - 1, 0, -1):
            nodes[i] = compute_node_hash(nodes[2 * i], nodes[2 * i + 1])

    @property
    def root(self) -> bytes:
        return self._nodes[1]

    def load(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Build the index from every (key, value) of a state, in any order."""
        for key, value in items:
            kh = _h(key)
            b = compute_bucket_index(kh)
            bucket = self._buckets[b]
            if bucket is None:
                bucket = self._buckets[b] = {}
            bucket[kh] = _h(value)
        for b, bucket in enumerate(self._buckets):
            if bucket:
                self._nodes[BUCKETS + b] = compute_bucket_hash(bucket)
        self._rebuild_inner()

    def preview(self, changes: Mapping[bytes, bytes | None]) -> PendingRoot:
        """The root after `changes` (value bytes, or None to delete), without installing it."""
        touched: dict[int, dict[bytes, bytes]] = {}
        for key, value in changes.items():
            kh = _h(key)
            b = compute_bucket_index(kh)
            bucket = touched.get(b)
            if bucket is None:
                bucket = touched[b] = dict(self._buckets[b] or ())
            if value is None:
                bucket.pop(kh, None)
            else:
                bucket[kh] = _h(value)
        nodes: dict[int, bytes] = {BUCKETS + b: compute_bucket_hash(e) for b, e in touched.items()}
        if not nodes:
            return PendingRoot(self.root, {}, {})
        level = sorted(nodes)
        current = self._nodes
        while level[0] > 1:
            parents = sorted({i >> 1 for i in level})
            for p in parents:
                left = nodes.get(2 * p) or current[2 * p]
                right = nodes.get(2 * p + 1) or current[2 * p + 1]
                nodes[p] = compute_node_hash(left, right)
            level = parents
        return PendingRoot(nodes[1], touched, nodes)

    def install(self, pending: PendingRoot) -> None:
        for b, entries in pending.buckets.items():
            self._buckets[b] = entries or None
        for i, h in pending.nodes.items():
            self._nodes[i] = h

    def prove(self, key: bytes) -> Proof:
        kh = _h(key)
        b = compute_bucket_index(kh)
        entries = self._buckets[b] or {}
        index = BUCKETS + b
        siblings = []
        while index > 1:
            siblings.append(self._nodes[index ^ 1])
            index >>= 1
        return Proof(tuple(sorted(entries.items())), tuple(siblings))
