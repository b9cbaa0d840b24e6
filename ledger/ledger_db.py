"""The persistent ledger: the committed state in a store, its Merkle commitment, and the head.

Blocks go through two steps. `execute` applies a block to an overlay and computes its state root
without touching the store (a validator does this before it votes). `commit` writes the overlay,
the new root and any records the caller adds (the block itself, its commit certificate) in one
atomic batch, so a crash leaves the last committed state whole.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger import encoding
from ledger.errors import Code, Rejected, check_invariant
from ledger.genesis import Genesis
from ledger.merkle import PendingRoot, Proof, StateCommitment
from ledger.records import ChainHead, Totals
from ledger.state import STATE_PREFIX, CommittedState, State, encode_record, encode_records
from ledger.store import Store
from ledger.transition import BlockInput, KnownEffects, apply_block, check_tx, select_block_txs
from ledger.tx import SignatureCache, Tx

META_GENESIS = b"meta/genesis_hash"
META_ROOT = b"meta/root/"  # + height (8 bytes big-endian) -> state root at that height
META_UNDO = b"meta/undo/"  # + height -> what the block changed: [[key, previous value or None], ...]

GENESIS_CHUNK = 50_000
"""State entries per write batch while writing the genesis state."""

PROOF_HISTORY_HEIGHTS = 1_000
"""How many past heights keep an undo log, so proofs can be served against their state roots."""


class HistoryUnavailable(LookupError):
    """A proof was asked for a height this store no longer (or never) kept history for."""


_is_ledger_key = operator.methodcaller("startswith", (STATE_PREFIX, b"meta/"))
"""Whether a store key is one of the ledger's own (state, or its metadata): one C call per key of a
block's extra records (three per transaction: the block store's indexes)."""


def root_key(height: int) -> bytes:
    return META_ROOT + height.to_bytes(8, "big")


def undo_key(height: int) -> bytes:
    return META_UNDO + height.to_bytes(8, "big")


@dataclass
class ExecutedBlock:
    """A block applied to an overlay; `state_root` is the root it would commit."""

    block: BlockInput
    txs: list[Tx]
    state: State
    encoded: dict[bytes, bytes | None]
    pending_root: PendingRoot
    base_height: int

    @property
    def state_root(self) -> bytes:
        return self.pending_root.root


class LedgerDB:
    def __init__(self, store: Store, genesis: Genesis, history_heights: int = PROOF_HISTORY_HEIGHTS) -> None:
        self.store = store
        self.history_heights = history_heights
        self.genesis = genesis
        self.committed = CommittedState(store)
        self.commitment = StateCommitment()
        self.last_written: tuple[int, frozenset[bytes]] | None = None
        """(height, the state keys its block wrote) for the last block this object committed: what
        changed since the height before, for a mempool's re-check. None before the first."""
        stored_genesis = store.get(META_GENESIS)
        if stored_genesis is None:
            self._write_genesis()
        elif stored_genesis != genesis.hash:
            raise Rejected(Code.GENESIS_INVALID, "this store was made from a different genesis")
        else:
            self.commitment.load((k[len(STATE_PREFIX):], v) for k, v in store.iterate(STATE_PREFIX))
        stored_root = store.get(root_key(self.head.height))
        check_invariant(stored_root == self.commitment.root, "state root rebuilt from the store differs from the one committed")

    def _write_genesis(self) -> None:
        """Write the state of height 0 in parts (a million accounts never sit in one batch), then,
        last and fsynced, the genesis hash and root that mark it complete. A store without that mark
        holds at most a partial genesis, which is cleared first."""
        stale = [k for k, _ in self.store.iterate(STATE_PREFIX)]
        for start in range(0, len(stale), GENESIS_CHUNK):
            self.store.write_batch(dict.fromkeys(stale[start : start + GENESIS_CHUNK]), sync=False)
        records = iter(self.genesis.initial_records().items())
        while chunk := list(itertools.islice(records, GENESIS_CHUNK)):
            encoded = [(k, encode_record(r)) for k, r in chunk]
            self.commitment.add(encoded)
            self.store.write_batch({STATE_PREFIX + k: v for k, v in encoded}, sync=False)
        self.commitment.finish_loading()
        self.store.write_batch({META_GENESIS: self.genesis.hash, root_key(0): self.commitment.root})

    # reads ------------------------------------------------------------------------------------------------
    @property
    def head(self) -> ChainHead:
        return self.committed.get(b"c")

    @property
    def state_root(self) -> bytes:
        return self.commitment.root

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def root_at(self, height: int) -> bytes | None:
        return self.store.get(root_key(height))

    def view(self) -> State:
        """A throwaway overlay over the committed state, for queries and checks."""
        return State(self.committed)

    def totals(self) -> Totals:
        return self.committed.get(b"t")

    def prove(self, key: bytes, height: int | None = None) -> tuple[bytes | None, Proof]:
        """The value bytes of a state key (None if absent) at `height` (default: the head) and its
        proof against that height's state root. Past heights are served for the last
        `history_heights` blocks: the tree is rolled back in memory with the blocks' undo logs, and
        the rolled-back root must equal the root committed at that height."""
        head = self.head.height
        if height is None or height == head:
            return self.store.get(STATE_PREFIX + key), self.commitment.prove(key)
        if not (max(0, head - self.history_heights) <= height < head):
            raise HistoryUnavailable(
                f"history is kept for heights {max(0, head - self.history_heights)} to {head}, not {height}"
            )
        rollback: dict[bytes, bytes | None] = {}
        for h in range(head, height, -1):
            data = self.store.get(undo_key(h))
            if data is None:
                raise HistoryUnavailable(f"no undo log for height {h}")
            for k, previous in encoding.decode(data):
                rollback[k] = previous
        view = self.commitment.preview(rollback)
        check_invariant(view.root == self.root_at(height), f"state rolled back to height {height} does not match its root")
        value = rollback[key] if key in rollback else self.store.get(STATE_PREFIX + key)
        return value, self.commitment.prove(key, view)

    # writes -----------------------------------------------------------------------------------------------
    def execute(self, block: BlockInput, verified: SignatureCache | None = None, known: KnownEffects | None = None) -> ExecutedBlock:
        """Apply `block` on top of the head, in memory. Raises Rejected if it is invalid. `known`:
        effects of its transactions as this node recorded them (its mempool's), applied where they
        hold instead of running again (see `apply_block`)."""
        state = self.view()
        txs = apply_block(state, block, verified, known)
        return self._finish(block, txs, state)

    def build(
        self,
        block: BlockInput,
        candidates: Sequence[bytes],
        verified: SignatureCache | None = None,
        known: KnownEffects | None = None,
    ) -> ExecutedBlock:
        """For a proposer: a block of the candidates that apply, executed (`known`: their effects
        as this node's mempool recorded them, see `select_block_txs`)."""
        state = self.view()
        block, txs = select_block_txs(state, block, candidates, verified, known)
        return self._finish(block, txs, state)

    def _finish(self, block: BlockInput, txs: list[Tx], state: State) -> ExecutedBlock:
        encoded = encode_records(state.changes)
        pending = self.commitment.preview(encoded)
        return ExecutedBlock(block, txs, state, encoded, pending, self.head.height)

    def commit(self, executed: ExecutedBlock, extra: Mapping[bytes, bytes] | None = None) -> None:
        """Write an executed block and `extra` records in one atomic batch."""
        if executed.base_height != self.head.height:
            raise Rejected(Code.BLOCK_HEIGHT, "the head moved since this block was executed")
        batch: dict[bytes, bytes | None] = {STATE_PREFIX + k: v for k, v in executed.encoded.items()}
        height = executed.block.height
        batch[root_key(height)] = executed.state_root
        if self.history_heights > 0:
            # [key, previous] pairs as tuples: msgpack encodes them as the same arrays
            batch[undo_key(height)] = encoding.encode_fast(self.committed.previous_values(executed.encoded))
            if height > self.history_heights:
                batch[undo_key(height - self.history_heights)] = None
        if extra:
            check_invariant(not any(map(_is_ledger_key, extra)), "extra records stay out of the ledger's keys")
            batch.update(extra)
        self.store.write_batch(batch)
        self.committed.updated(executed.state.changes, executed.encoded)
        self.commitment.install(executed.pending_root)
        self.last_written = (height, frozenset(executed.encoded))
        check_invariant(self.head.height == executed.block.height, "head did not advance to the committed block")

    def check_tx(self, raw: bytes, verified: SignatureCache | None = None, state: State | None = None) -> Tx:
        """Mempool admission: would `raw` apply on top of `state` (default: the head)?"""
        return check_tx(state or self.view(), raw, verified)

    def get_record(self, key: bytes) -> Any:
        return self.committed.get(key)
