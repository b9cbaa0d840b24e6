"""The durable double-sign guard and the consensus WAL, across simulated restarts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import signer_guard
from consensus.errors import MessageInvalid
from consensus.signer import NO_LOCK, Lock, MemorySignerGuard, SignedState, Signer
from consensus.signer_guard import LEGACY_TOMBSTONE, SLOT_BYTES, ConsensusWAL, FileSignerGuard, decode_slot, encode_slot
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


def test_a_slot_in_the_wrong_place_is_not_taken(tmp_path: Path) -> None:
    """Sequence n lives in slot n mod 2; a whole slot elsewhere (not written by a store) is ignored."""
    path = tmp_path / "signer_state"
    states = signed_states(path, 2)
    data = path.read_bytes()
    path.write_bytes(data[:SLOT_BYTES] + encode_slot(4, states[0].to_bytes()))  # 4 is even: not slot 1's
    assert FileSignerGuard(path).load() == states[1]


def legacy_home(tmp_path: Path, height: int = 9) -> tuple[Path, Path, SignedState, bytes]:
    """A home as a release before slots left it: `signer.json` holding the state alone."""
    legacy, path = tmp_path / "signer.json", tmp_path / "signer_state"
    signer = Signer(KEY, MemorySignerGuard())
    signature = signer.sign(height, 1, Step.PRECOMMIT, b"precommit", Lock(1, BLOCK_A))
    assert signature is not None and signer.last_signed is not None
    legacy.write_bytes(signer.last_signed.to_bytes())  # what FileSignerGuard wrote before slots
    return legacy, path, signer.last_signed, signature


def test_a_state_from_before_slots_is_read_then_tombstoned(tmp_path: Path) -> None:
    legacy, path, state, signature = legacy_home(tmp_path)
    upgraded = Signer(KEY, FileSignerGuard(path, legacy))
    assert upgraded.sign(9, 1, Step.PRECOMMIT, b"another precommit", NO_LOCK) is None
    assert upgraded.sign(9, 1, Step.PRECOMMIT, b"precommit", Lock(1, BLOCK_A)) == signature
    assert not path.exists() and legacy.read_bytes() == state.to_bytes()  # a re-signature stores nothing
    assert upgraded.sign(9, 2, Step.PROPOSE, b"a proposal", Lock(1, BLOCK_A)) is not None
    assert FileSignerGuard(path, legacy).load() == upgraded.last_signed
    # the old file now holds what no release parses: the older one refuses to start on this home
    assert legacy.read_bytes() == LEGACY_TOMBSTONE
    with pytest.raises(MessageInvalid):
        SignedState.from_bytes(LEGACY_TOMBSTONE)  # the older release's whole load


def test_with_both_files_the_later_position_is_taken(tmp_path: Path) -> None:
    """A crash between making signer_state and tombstoning signer.json leaves two states: the later
    one holds. Whichever file has it, the guard continues from there."""
    legacy, path, _, _ = legacy_home(tmp_path, height=20)
    signed_states(path, 3)  # signer_state at height 3, older than signer.json's 20
    guard = FileSignerGuard(path, legacy)
    assert guard.load().height == 20
    signer = Signer(KEY, guard)
    assert signer.sign(19, 0, Step.PREVOTE, prevote_bytes(19, 0, BLOCK_A), NO_LOCK) is None
    assert signer.sign(21, 0, Step.PREVOTE, prevote_bytes(21, 0, BLOCK_A), NO_LOCK) is not None
    assert legacy.read_bytes() == LEGACY_TOMBSTONE and FileSignerGuard(path, legacy).load().height == 21
    legacy.write_bytes(b"\x00unreadable")  # not a state beside slots: ignored, replaced by the next store
    assert FileSignerGuard(path, legacy).load().height == 21


def test_a_lost_or_unreadable_state_stops_the_node(tmp_path: Path) -> None:
    legacy, path, _, _ = legacy_home(tmp_path)
    legacy.write_bytes(b"\x00unreadable")
    with pytest.raises(RuntimeError, match="unreadable.*refusing to sign"):
        Signer(KEY, FileSignerGuard(path, legacy))
    legacy.write_bytes(LEGACY_TOMBSTONE)  # the state moved, and signer_state is gone
    with pytest.raises(RuntimeError, match="missing; refusing to sign"):
        Signer(KEY, FileSignerGuard(path, legacy))


def test_a_store_whose_sync_fails_releases_no_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "signer_state"
    signed_states(path, 2)
    signer = restarted(path)
    calls: list[int] = []

    def failing_sync(fd: int) -> None:
        calls.append(fd)
        raise OSError("the disk is gone")

    monkeypatch.setattr(signer_guard, "_datasync", failing_sync)
    with pytest.raises(OSError, match="the disk is gone"):
        signer.sign(3, 0, Step.PREVOTE, prevote_bytes(3, 0, BLOCK_A), NO_LOCK)
    assert calls and signer.last_signed is not None and signer.last_signed.height == 2


def test_a_guard_that_stores_before_it_loads_keeps_the_latest_state(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    states = signed_states(path, 3)  # the latest, 3, in slot 1
    newer = SignedState(4, 0, Step.PREVOTE, prevote_bytes(4, 0, BLOCK_A), b"\x01" * 64, NO_LOCK)
    FileSignerGuard(path).store(newer)
    data = path.read_bytes()
    assert decode_slot(data[:SLOT_BYTES]) == (4, newer.to_bytes())
    assert decode_slot(data[SLOT_BYTES:]) == (3, states[2].to_bytes())


def test_a_file_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signer_state"
    signed_states(path, 2)
    data = path.read_bytes()
    for cut in (data[:SLOT_BYTES], data + b"\x00"):  # each still holds a whole slot
        path.write_bytes(cut)
        with pytest.raises(RuntimeError, match="no whole slot; refusing to sign"):
            restarted(path)


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 5), pieces=st.lists(st.booleans(), min_size=SLOT_BYTES // 512, max_size=SLOT_BYTES // 512))
def test_a_slot_half_rewritten_sector_by_sector_yields_the_old_or_the_new_state(count: int, pieces: list[bool]) -> None:
    """A crash mid-store as a disk shows it: each 512-byte sector of the slot being written holds its
    old or its new bytes. The guard then has the state released before the store, or the new one."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "signer_state"
        states = signed_states(path, count)
        before = path.read_bytes()
        restarted(path).sign(count + 1, 0, Step.PREVOTE, prevote_bytes(count + 1, 0, BLOCK_B), NO_LOCK)
        after = path.read_bytes()
        new = FileSignerGuard(path).load()
        offset = ((count + 1) % 2) * SLOT_BYTES
        assert before[SLOT_BYTES - offset : 2 * SLOT_BYTES - offset] == after[SLOT_BYTES - offset : 2 * SLOT_BYTES - offset]
        mixed = bytearray(before)
        for i, take_new in enumerate(pieces):
            if take_new:
                at = offset + 512 * i
                mixed[at : at + 512] = after[at : at + 512]
        path.write_bytes(bytes(mixed))
        loaded = FileSignerGuard(path).load()
        assert loaded in (new, states[-1])
        if all(pieces):
            assert loaded == new
        if not any(pieces):
            assert loaded == states[-1]


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
