from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import Proof, StateCommitment, verify_proof

keys = st.binary(min_size=1, max_size=6)
states = st.dictionaries(keys, st.binary(max_size=8), max_size=30)


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
    final = dict(initial)
    for k, v in changes.items():
        if v is None:
            final.pop(k, None)
        else:
            final[k] = v
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
