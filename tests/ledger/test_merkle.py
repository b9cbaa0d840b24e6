from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import Proof, StateCommitment, verify_proof

keys = st.binary(min_size=1, max_size=6)
states = st.dictionaries(keys, st.binary(max_size=8), max_size=30)


def applied(items: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    """`items` after `changes` (None deletes)."""
    final = dict(items)
    for k, v in changes.items():
        if v is None:
            final.pop(k, None)
        else:
            final[k] = v
    return final


def fresh_root(items: dict[bytes, bytes]) -> bytes:
    tree = StateCommitment()
    tree.load(items.items())
    return tree.root


@settings(max_examples=60, deadline=None)
@given(states, st.dictionaries(keys, st.none() | st.binary(max_size=8), max_size=30))
def test_incremental_update_equals_rebuild(initial: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> None:
    tree = StateCommitment()
    tree.load(initial.items())
    pending = tree.preview(changes)
    assert tree.root == fresh_root(initial)  # preview installs nothing
    tree.install(pending)
    final = applied(initial, changes)
    assert tree.root == fresh_root(final)


@settings(max_examples=40, deadline=None)
@given(states, keys)
def test_proofs_of_presence_and_absence_verify(items: dict[bytes, bytes], probe: bytes) -> None:
    tree = StateCommitment()
    tree.load(items.items())
    proof = tree.prove(probe)
    assert Proof.from_wire(proof.to_wire()) == proof
    value = items.get(probe)
    assert verify_proof(tree.root, probe, value, proof)
    wrong = b"\xff" + (value or b"")
    assert not verify_proof(tree.root, probe, wrong, proof)
    if value is not None:
        assert not verify_proof(tree.root, probe, None, proof)


def test_proof_against_another_root_fails() -> None:
    tree = StateCommitment()
    tree.load([(b"a", b"1"), (b"b", b"2")])
    proof = tree.prove(b"a")
    other = StateCommitment()
    other.load([(b"a", b"1"), (b"b", b"3")])
    assert verify_proof(tree.root, b"a", b"1", proof)
    assert not verify_proof(other.root, b"a", b"1", proof)


def test_empty_changes_keep_the_root() -> None:
    tree = StateCommitment()
    tree.load([(b"k", b"v")])
    assert tree.preview({}).root == tree.root


def test_root_is_independent_of_load_order() -> None:
    items = [(bytes([i]), bytes([i * 3 % 256])) for i in range(200)]
    assert fresh_root(dict(items)) == fresh_root(dict(reversed(items)))


def test_crowded_buckets_match_the_spec_definition() -> None:
    """Buckets of many entries (as with a million accounts): inserts, updates and deletes within one
    bucket in one preview give the root the spec defines, computed from scratch."""
    import hashlib

    from ledger.merkle import ARITY, BUCKETS, DEPTH, compute_bucket_hash, compute_bucket_index, compute_node_hash

    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def spec_root(items: dict[bytes, bytes]) -> bytes:
        buckets: list[dict[bytes, bytes]] = [{} for _ in range(BUCKETS)]
        for k, v in items.items():
            kh = h(k)
            buckets[compute_bucket_index(kh)][kh] = h(v)
        level = [compute_bucket_hash(b) for b in buckets]
        for _ in range(DEPTH):
            level = [compute_node_hash(level[i : i + ARITY]) for i in range(0, len(level), ARITY)]
        return level[0]

    keys = [i.to_bytes(4, "big") for i in range(300_000)]
    by_bucket: dict[int, list[bytes]] = {}
    for k in keys:
        by_bucket.setdefault(compute_bucket_index(h(k)), []).append(k)
    crowded = [ks for ks in by_bucket.values() if len(ks) >= 8][:40]
    initial = {k: b"v" + k for ks in crowded for k in ks[:-2]}
    tree = StateCommitment()
    tree.add(list(initial.items())[::2])
    tree.add(list(initial.items())[1::2])  # loaded in parts
    tree.finish_loading()
    assert tree.root == spec_root(initial)
    changes: dict[bytes, bytes | None] = {}
    for n, ks in enumerate(crowded):
        changes[ks[0]] = None  # delete the first
        changes[ks[3]] = b"updated"
        changes[ks[-1]] = b"new"  # insert
        changes[ks[-2]] = None if n % 2 else b"new too"  # delete of an absent key, or insert
        changes[ks[1]] = b"twice"
    final = applied(initial, changes)
    tree.install(tree.preview(changes))
    assert tree.root == spec_root(final)
    for k in (crowded[0][0], crowded[0][3], crowded[1][-1], crowded[1][-2]):
        assert verify_proof(tree.root, k, final.get(k), tree.prove(k))
