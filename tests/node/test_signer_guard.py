"""The durable double-sign guard and the consensus WAL, across simulated restarts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.signer import NO_LOCK, Lock, MemorySignerGuard, SignedState, Signer
from consensus.signer_guard import SLOT_BYTES, ConsensusWAL, FileSignerGuard, decode_slot, encode_slot
from consensus.types import Step, VoteKind, vote_sign_bytes
from ledger.crypto import Keypair

CHAIN = "hearth-guard-test"
KEY = Keypair.from_seed(b"\x05" * 32)
BLOCK_A, BLOCK_B = b"\xaa" * 32, b"\xbb" * 32


def prevote_bytes(height: int, round: int, block: bytes | None) -> bytes:
    return vote_sign_bytes(CHAIN, VoteKind.PREVOTE, height, round, block, KEY.public_key)


def restarted(path: Path) -> Signer:
    """A fresh signer over the same file: what a node has after a crash and restart."""
    return Signer(KEY, FileSignerGuard(path))


def test_guard_refuses_conflicting_signature_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    first = restarted(path)
    signature = first.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, BLOCK_A), NO_LOCK)
    assert signature is not None

    again = restarted(path)
    assert again.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, BLOCK_B), NO_LOCK) is None
    assert again.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, None), NO_LOCK) is None
    assert again.sign(5, 0, Step.PROPOSE, b"an earlier step", NO_LOCK) is None
    assert again.sign(4, 9, Step.PRECOMMIT, b"an earlier height", NO_LOCK) is None
    # The identical message is re-signed (a restarted node may resend its vote): same signature.
    assert again.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, BLOCK_A), NO_LOCK) == signature
    assert again.sign(5, 1, Step.PREVOTE, prevote_bytes(5, 1, BLOCK_B), NO_LOCK) is not None


def test_guard_is_durable_before_the_signature_is_released(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    signer = restarted(path)
    lock = Lock(0, BLOCK_A)
    signer.sign(7, 2, Step.PRECOMMIT, b"precommit bytes", lock)
    stored = FileSignerGuard(path).load()
    assert stored is not None and stored.position == (7, 2, Step.PRECOMMIT) and stored.lock == lock
    assert restarted(path).restored_lock(7) == (2, lock)
    assert not (tmp_path / "signer_state.tmp").exists()


def test_guard_refuses_to_start_from_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    path.write_bytes(b"\x00not a signed state")
    with pytest.raises(RuntimeError, match="refusing to sign"):
        restarted(path)


def signed_states(path: Path, count: int) -> list[SignedState | None]:
    """Sign `count` successive prevotes through guards over `path`, each from a fresh restart;
    the state stored after each."""
    stored = []
    for height in range(1, count + 1):
        restarted(path).sign(height, 0, Step.PREVOTE, prevote_bytes(height, 0, BLOCK_A), NO_LOCK)
        stored.append(FileSignerGuard(path).load())
    return stored


def test_each_store_writes_the_slot_without_the_latest_state_in_place(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    states = signed_states(path, 5)
    assert [s.height for s in states if s is not None] == [1, 2, 3, 4, 5]
    data = path.read_bytes()
    assert len(data) == 2 * SLOT_BYTES
    # the latest (5, odd) in slot 1, the one before it (4) whole in slot 0
    assert decode_slot(data[SLOT_BYTES:]) == (5, states[4].to_bytes())
    assert decode_slot(data[:SLOT_BYTES]) == (4, states[3].to_bytes())
    inode = path.stat().st_ino
    signed_states(path, 1)  # a lower height is refused: nothing stored, the file stays as it was
    assert path.read_bytes() == data
    restarted(path).sign(6, 0, Step.PREVOTE, prevote_bytes(6, 0, BLOCK_A), NO_LOCK)
    assert path.stat().st_ino == inode  # written in place, not replaced


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 6), torn_at=st.integers(0, SLOT_BYTES - 1), garbage=st.binary(min_size=1, max_size=SLOT_BYTES))
def test_a_store_torn_by_a_crash_leaves_the_state_released_before_it(count: int, torn_at: int, garbage: bytes) -> None:
    """A crash during a store leaves any bytes of the slot it was writing (the one without the latest
    state); the guard then holds the latest state released, and refuses what conflicts with it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "signer_state"
        states = signed_states(path, count)
        data = bytearray(path.read_bytes())
        torn = ((count + 1) % 2) * SLOT_BYTES  # where store number count + 1 was going
        piece = garbage[: SLOT_BYTES - torn_at]
        data[torn + torn_at : torn + torn_at + len(piece)] = piece
        path.write_bytes(bytes(data))
        assert FileSignerGuard(path).load() == states[-1]
        again = restarted(path)
        assert again.sign(count, 0, Step.PREVOTE, prevote_bytes(count, 0, BLOCK_B), NO_LOCK) is None
        assert again.sign(count + 1, 0, Step.PREVOTE, prevote_bytes(count + 1, 0, BLOCK_B), NO_LOCK) is not None
        assert FileSignerGuard(path).load().height == count + 1


def test_guard_refuses_to_start_when_no_slot_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    signed_states(path, 2)
    data = bytearray(path.read_bytes())
    data[20] ^= 1  # slot 0's CRC
    data[SLOT_BYTES + 20] ^= 1  # slot 1's
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="no whole slot; refusing to sign"):
        restarted(path)
    path.write_bytes(bytes(data[:SLOT_BYTES]))  # cut short
    with pytest.raises(RuntimeError, match="refusing to sign"):
        restarted(path)


def test_a_slot_in_the_wrong_place_is_not_taken(tmp_path: Path) -> None:
    """Sequence n lives in slot n mod 2; a whole slot elsewhere (not written by a store) is ignored."""
    path = tmp_path / "signer_state"
    states = signed_states(path, 2)
    data = path.read_bytes()
    path.write_bytes(data[:SLOT_BYTES] + encode_slot(4, states[0].to_bytes()))  # 4 is even: not slot 1's
    assert FileSignerGuard(path).load() == states[1]


def test_a_state_from_before_slots_is_read_then_replaced(tmp_path: Path) -> None:
    legacy, path = tmp_path / "signer.json", tmp_path / "signer_state"
    signer = Signer(KEY, MemorySignerGuard())
    signature = signer.sign(9, 1, Step.PRECOMMIT, b"precommit", Lock(1, BLOCK_A))
    legacy.write_bytes(signer.last_signed.to_bytes())  # what FileSignerGuard wrote before slots
    upgraded = Signer(KEY, FileSignerGuard(path, legacy))
    assert upgraded.sign(9, 1, Step.PRECOMMIT, b"another precommit", NO_LOCK) is None
    assert upgraded.sign(9, 1, Step.PRECOMMIT, b"precommit", Lock(1, BLOCK_A)) == signature
    assert not path.exists() and legacy.exists()  # a re-signature stores nothing
    assert upgraded.sign(9, 2, Step.PROPOSE, b"a proposal", Lock(1, BLOCK_A)) is not None
    assert path.exists() and not legacy.exists()  # the first store made the slotted file
    assert FileSignerGuard(path, legacy).load() == upgraded.last_signed
    legacy.write_bytes(b"\x00unreadable")  # a stray legacy file is ignored once slots exist
    assert FileSignerGuard(path, legacy).load() == upgraded.last_signed
    legacy.unlink()
    path.unlink()
    legacy.write_bytes(b"\x00unreadable")
    with pytest.raises(RuntimeError, match="refusing to sign"):
        Signer(KEY, FileSignerGuard(path, legacy))


def test_wal_replays_in_order_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    wal = ConsensusWAL(tmp_path)
    assert wal.replay() == []
    wal.append(3, "vote", {"n": 1})
    wal.append(3, "block", b"\x01" * 100)
    wal.append(4, "vote", {"n": 2})
    wal.close()
    with open(wal.path, "ab") as f:
        f.write(b"\x00\x00\x01\x00torn")
    again = ConsensusWAL(tmp_path)
    assert again.replay() == [(3, "vote", {"n": 1}), (3, "block", b"\x01" * 100), (4, "vote", {"n": 2})]
    again.append(4, "vote", {"n": 3})
    again.committed(3)
    again.close()
    assert ConsensusWAL(tmp_path).replay() == [(4, "vote", {"n": 2}), (4, "vote", {"n": 3})]


def test_wal_stops_at_a_corrupt_record(tmp_path: Path) -> None:
    wal = ConsensusWAL(tmp_path)
    wal.replay()
    wal.append(1, "vote", 1)
    wal.append(1, "vote", 2)
    wal.close()
    data = bytearray(wal.path.read_bytes())
    data[-1] ^= 0xFF  # the CRC of the second record no longer matches
    wal.path.write_bytes(bytes(data))
    assert ConsensusWAL(tmp_path).replay() == [(1, "vote", 1)]
