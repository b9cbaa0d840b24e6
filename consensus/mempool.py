"""The mempool: transactions checked against the head state plus those already pending, in arrival order.

Admission (`add`): decode, signature (once per node, through the shared `SignatureCache` that block
execution consults too), chain, nonce, balance: the transaction is applied to an overlay holding the
head state and every pending transaction, so a second transfer is checked against the balance the
first one leaves. Duplicates are recognised by hash. The pool is bounded by count and bytes; when
full it refuses with `MempoolFull`, it never evicts an admitted transaction for a newer one.

After each commit, `update` drops the committed transactions and queues the rest to be re-checked
against the new head; those that no longer apply are dropped. The re-check is incremental: each
entry remembers the value of every state key it read when it was last checked, and the writes
it made. An entry whose reads all still have those values in the rebuilt
pool would compute exactly what it did before, so its remembered writes are applied as they are
(`apply_effect_if_holds` in ledger/transition.py); the others run again (signatures are cached: nonce and
balance work). So an entry that read what a transaction before it in the pool wrote is kept when
the block committed that very transaction. The head record (height, time, period) is written by
every block; the types the ledger names in HEAD_PERIOD_ONLY_TYPES (transfers) read it only for the
period, so for them the ledger compares only that, and a block that starts a new period makes
every entry run again, as it changes every account's settlement. Most entries need not even be
compared. When the new head is one block on from the last, in the same period, the keys whose
values may have changed for the queue are known: those the block wrote (`LedgerDB.last_written`),
those the committed entries had written in the pool, and, as the re-check goes, those that entries
re-run or evicted wrote before and write now (a block that comes while a re-check is under way adds
its own to what the queue still has to see). An entry that read none of them holds as it is
(`reads_untouched`), about 1.2 µs an entry against 2 for comparing its reads. The same records
let the proposer's build and a validator's execution of a proposal skip the transactions whose
effects hold (`known_effects`; ledger `apply_known_effect`). The re-check runs in chunks
(`recheck_some`) so a large backlog never holds the event loop for long; admissions wait until it
is done (`rechecking` is False), since a new transaction must be checked after the older ones it
may depend on. It moves no entry: the pool is one dict in arrival order, and the re-check walks the
list of its hashes as `update` found them; a kept entry stays where it is, a re-run one is replaced
in its place and an evicted one deleted (moving each from a queue to a second dict cost 0.2-0.3 µs
an entry, on every commit, for the whole backlog). The proposer takes `reap(max_txs, max_bytes)`:
the oldest first, re-checked or not (the proposer's `LedgerDB.build` applies each candidate to the
block's state and skips any that fail).

Gossip does not keep one sender's transactions in nonce order (nonce 1 may reach a node through
one peer before nonce 0 through another), so a peer's transaction whose nonce is ahead of the
sender's is parked (bounded, oldest evicted) and admitted as soon as the nonce before it is.
A client's own submission with a future nonce is refused instead: the client should know.
`drain_added` hands the node every admitted transaction once, to gossip, with the peer it came from
(None: a client of this node), so the node never sends a transaction back where it came from.

Signature checks are the expensive part: the node has them done in its verifier processes
(consensus/verifier.py, `prevalidate`), on batches, and `add_prevalidated` or `add` then find the
hashes in the cache.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ledger import LedgerDB, Rejected, SignatureCache, Tx, decode_tx, detached, process_tx
from ledger.errors import Code
from ledger.state import State, scan_prefix
from ledger.transition import HEAD_KEY, KnownEffects, apply_effect_if_holds, reads_untouched

__all__ = ["Added", "AddResult", "Mempool", "MempoolFull"]

REJECTED_MEMORY = 10_000
"""Hashes of recently refused transactions remembered, so gossip repeats cost a lookup."""
PARKED_MAX = 10_000
"""Future-nonce transactions from peers held for their predecessor."""


PERMANENT_REJECTIONS = frozenset(
    {Code.TX_TOO_LARGE, Code.TX_MALFORMED, Code.TX_UNKNOWN_TYPE, Code.TX_MISSING_FIELD, Code.TX_BAD_FIELD,
     Code.WRONG_CHAIN, Code.BAD_SIGNATURE, Code.NONCE_STALE}
)
"""Refusals no later state can undo: a repeat of such a transaction is refused from memory."""


class MempoolFull(Exception):
    """The pool holds its maximum count or bytes. The client should retry after the next block."""

    code_name = "MEMPOOL_FULL"
    number = 2001

    def __init__(self, message: str) -> None:
        self.message = f"mempool full: {message}"
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code_name, "number": self.number, "message": self.message}


class AddResult(enum.Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    """Already pending (not an error: submitting twice is harmless)."""


class Added(NamedTuple):
    """An admitted transaction, as `drain_added` hands it to gossip."""

    raw: bytes
    hash: bytes
    source: bytes | None
    """The node id of the peer it came from; None when a client of this node submitted it."""


_new_added = tuple.__new__


@dataclass(slots=True)
class _Entry:
    """An admitted transaction and its effect when last checked (a ledger `TxEffect`)."""

    tx: Tx
    size: int
    reads: dict[bytes, Any] | None
    """The value of each state key it read from the pool's overlay when last checked; None: it
    listed a prefix (it depends on more than single keys), so it is always checked again."""
    writes: dict[bytes, Any]
    """What it wrote to the pool's overlay when last checked."""


class _ReadTracker:
    """Stands between a transaction's overlay and the pool's: records every key read through it,
    with the value read (and whether a whole prefix was listed). Every read the overlay cannot
    answer from its own writes comes here, however the ledger's typed reads are written."""

    __slots__ = ("_reader", "reads", "scanned")

    def __init__(self, reader: State) -> None:
        self._reader = reader
        self.reads: dict[bytes, Any] = {}
        self.scanned = False

    def get(self, key: bytes) -> Any:
        value = self.reads[key] = self._reader.get(key)
        return value

    def scan(self, prefix: bytes) -> dict[bytes, Any]:
        self.scanned = True
        return scan_prefix(self._reader, prefix)


def _next_nonce(state: State, sender: bytes) -> int:
    account = state.get_account(sender)
    return 0 if account is None else account.nonce


class Mempool:
    def __init__(self, ledger: LedgerDB, verified: SignatureCache, max_txs: int = 50_000, max_bytes: int = 64 << 20) -> None:
        self._ledger = ledger
        self._verified = verified
        self._chain_id = ledger.chain_id  # set at genesis, never written after: no read of it recorded
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._entries: dict[bytes, _Entry] = {}
        """Every admitted transaction by hash, in arrival order."""
        self._queue: list[bytes] = []
        self._queue_at = 0
        """While a re-check runs: the hashes of `_entries` in order when it started (`update`), and
        where it is: those before `_queue_at` are re-checked on the new head, the rest wait. A
        re-check never moves an entry: a kept one stays where it is, a re-run one is replaced in
        its place, an evicted one is deleted."""
        self._bytes = 0
        self._overlay: State = ledger.view()
        head = ledger.head
        self._base = (head.height, head.period)
        """The height and period of the head the overlay was built on."""
        self._changed: set[bytes] | None = None
        """While a re-check runs: the keys whose values may differ from what the entries still queued
        read (`update`); None: unknown, every entry's reads are compared."""
        self._rejected: OrderedDict[bytes, Rejected] = OrderedDict()
        self._parked: OrderedDict[tuple[bytes, int], tuple[Tx, bytes | None]] = OrderedDict()
        self._added: list[Added] = []
        self.stats = {
            "added": 0, "duplicate": 0, "rejected": 0, "full": 0, "committed": 0, "evicted_on_recheck": 0, "parked": 0,
            "kept_on_recheck": 0, "rerun_on_recheck": 0,
        }

    # reads --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._entries

    @property
    def rechecking(self) -> bool:
        return self._queue_at < len(self._queue)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, tx_hash: bytes) -> Tx | None:
        entry = self._entries.get(tx_hash)
        return None if entry is None else entry.tx

    def pending_view(self) -> State:
        """A throwaway overlay of the head state with every pending transaction applied (for the
        RPC's next-nonce answer)."""
        return self._overlay.child()

    def known_effects(self) -> KnownEffects:
        """Every entry's effect when last checked, by transaction hash: what the proposer's
        `LedgerDB.build` and a validator's `LedgerDB.execute` apply where it holds instead of
        running the transaction again. A view: valid until the pool next changes."""
        return self._entries

    def reap(self, max_txs: int, max_bytes: int) -> list[bytes]:
        """The oldest pending transactions, at most `max_txs` of at most `max_bytes` in all."""
        out: list[bytes] = []
        total = 0
        for entry in self._entries.values():  # arrival order, re-checked or not
            if len(out) >= max_txs or total + entry.size > max_bytes:
                return out
            out.append(entry.tx.raw)
            total += entry.size
        return out

    # writes -------------------------------------------------------------------------------------------
    def add(self, raw: bytes) -> tuple[AddResult, bytes]:
        """Admit one transaction. Returns (result, tx hash); raises Rejected or MempoolFull."""
        if not isinstance(raw, bytes):
            raise Rejected(Code.TX_MALFORMED, "transaction must be bytes")
        tx = decode_tx(raw)
        return self.add_decoded(tx)

    def drain_added(self) -> list[Added]:
        """Every transaction admitted since the last call, in admission order (to gossip)."""
        added, self._added = self._added, []
        return added

    def add_decoded(self, tx: Tx, park: bool = False, source: bytes | None = None) -> tuple[AddResult, bytes]:
        """Admit a decoded transaction; with `park`, hold a future-nonce one for its predecessor.
        `source` is the node id of the peer it came from (None: a client of this node).
        If a re-check is under way it is finished first (the node avoids that by waiting)."""
        if self.rechecking:
            self.recheck_some(len(self._queue))
        try:
            result = self._admit(tx, source)
        except Rejected as exc:
            if park and exc.code is Code.NONCE_FUTURE:
                self._park(tx, source)
            else:
                self._forget_decoded(tx)
            raise
        except MempoolFull:
            self._forget_decoded(tx)
            raise
        if result is AddResult.ADDED and self._parked:
            self._unpark_after(tx.sender, tx.nonce)
        return result, tx.hash

    def _forget_decoded(self, tx: Tx) -> None:
        """`tx` is neither pending nor parked here (refused, evicted, or dropped from the parked):
        the SignatureCache keeps its hash, so it is never checked again, but not its decoded form.
        What the cache keeps decoded is then what this pool holds. Before, a loaded validator's
        cache held every refused late copy of a committed transaction (tens of thousands after
        ten minutes) until it was full."""
        self._verified.forget_decoded((tx,))

    def _park(self, tx: Tx, source: bytes | None) -> None:
        replaced = self._parked.pop((tx.sender, tx.nonce), None)
        if replaced is not None and replaced[0].raw != tx.raw:
            self._forget_decoded(replaced[0])  # another transaction of that sender and nonce
        self._parked[(tx.sender, tx.nonce)] = (tx, source)
        self.stats["parked"] += 1
        while len(self._parked) > PARKED_MAX:
            self._forget_decoded(self._parked.popitem(last=False)[1][0])

    def _unpark_after(self, sender: bytes, nonce: int) -> None:
        """Admit the parked successors of (sender, nonce), in nonce order, while they apply."""
        while self._parked:
            nonce += 1
            parked = self._parked.pop((sender, nonce), None)
            if parked is None:
                return
            try:
                if self._admit(*parked) is not AddResult.ADDED:
                    return
            except (Rejected, MempoolFull):
                self._forget_decoded(parked[0])
                return

    def _admit(self, tx: Tx, source: bytes | None) -> AddResult:
        if tx.hash in self._entries:
            self.stats["duplicate"] += 1
            return AddResult.DUPLICATE
        known = self._rejected.get(tx.hash)
        if known is not None:
            self.stats["rejected"] += 1
            raise Rejected(known.code, known.message)  # a copy: the one remembered is never raised
        size = len(tx.raw)
        if len(self._entries) >= self.max_txs:
            self.stats["full"] += 1
            raise MempoolFull(f"{len(self)} transactions pending, the limit is {self.max_txs}")
        if self._bytes + size > self.max_bytes:
            self.stats["full"] += 1
            raise MempoolFull(f"{self._bytes} bytes pending, the limit is {self.max_bytes}")
        try:
            entry = self._check(tx, size)
        except Rejected as exc:
            self._remember_rejected(tx.hash, exc)
            raise
        self._entries[tx.hash] = entry
        self._bytes += size
        self._added.append(_new_added(Added, (tx.raw, tx.hash, source)))  # Added(...) without its Python-level __new__
        self.stats["added"] += 1
        return AddResult.ADDED

    def add_prevalidated(
        self, results: Iterable[Tx | Rejected], park: bool = True, source: bytes | None = None
    ) -> list[tuple[AddResult, bytes] | Exception]:
        """Admit the output of `prevalidate` (a peer's batch, `source` its node id): signatures
        already checked, so they enter the cache; future nonces are parked unless `park` is False."""
        out: list[tuple[AddResult, bytes] | Exception] = []
        for item in results:
            if isinstance(item, Rejected):
                self.stats["rejected"] += 1
                out.append(item)
                continue
            self._verified.remember(item)
            try:
                out.append(self.add_decoded(item, park=park, source=source))
            except (Rejected, MempoolFull) as exc:
                out.append(detached(exc))
        return out

    def _check(self, tx: Tx, size: int) -> _Entry:
        """Apply `tx` to the pool's overlay (raises Rejected, leaving it unchanged); the entry
        remembers what it touched and wrote."""
        tracker = _ReadTracker(self._overlay)
        child = State(tracker)
        process_tx(child, tx, self._verified, self._chain_id)
        writes = child.changes
        self._overlay.changes.update(writes)
        return _Entry(tx, size, None if tracker.scanned else tracker.reads, writes)

    def update(self, committed_hashes: Iterable[bytes], recheck_now: int | None = None) -> None:
        """After a commit: drop the committed transactions and queue the rest for re-checking on
        the new head; re-check `recheck_now` of them at once (None: all).

        When the new head is the one block after the old in the same period, and the ledger says
        which keys that block wrote, an entry that read none of those keys, none that a committed
        entry wrote, and none that an entry before it re-checked differently wrote, holds without its
        reads being compared (`reads_untouched`): what a re-check costs is then in the entries the
        block touched, not in the backlog."""
        head = self._ledger.head
        written = self._ledger.last_written
        one_block_on = written is not None and written[0] == head.height == self._base[0] + 1
        changed = set(written[1]) if one_block_on and head.period == self._base[1] else None  # type: ignore[index]
        if self.rechecking:  # the last re-check is not done: what its queue had to see still counts
            changed = None if changed is None or self._changed is None else changed | self._changed
        self._base = (head.height, head.period)
        entries = self._entries
        for tx_hash in committed_hashes:
            entry = entries.pop(tx_hash, None)
            if entry is not None:
                self._bytes -= entry.size
                self.stats["committed"] += 1
                if changed is not None:
                    changed.update(entry.writes)  # the overlay had them; the new head has the block's
        if changed is not None:
            changed.discard(HEAD_KEY)  # every block writes it; `reads_untouched` knows who reads more than its period
        self._changed = changed
        # Every entry is queued again, in arrival order (nothing is admitted while a re-check runs)
        self._queue, self._queue_at = list(entries), 0
        self._overlay = self._ledger.view()
        self.recheck_some(len(self._queue) if recheck_now is None else recheck_now)

    def recheck_some(self, max_txs: int) -> int:
        """Re-check up to `max_txs` queued transactions, oldest first; returns how many remain.
        When the queue empties, parked transactions whose turn has come are admitted."""
        queue, entries, overlay, changed = self._queue, self._entries, self._overlay, self._changed
        start = self._queue_at
        end = self._queue_at = min(len(queue), start + max_txs)
        kept = 0
        for tx_hash in queue[start:end]:
            entry = entries[tx_hash]  # nothing leaves the pool during a re-check but what it evicts
            untouched = changed is not None and reads_untouched(entry, changed)  # every value it read is there
            if untouched:
                overlay.changes.update(entry.writes)
            if untouched or apply_effect_if_holds(overlay, entry):  # it reads what it read before: same writes
                kept += 1
                continue
            if changed is not None:
                changed.update(entry.writes)  # what it wrote before; what it writes now, below
            try:
                entries[tx_hash] = checked = self._check(entry.tx, entry.size)  # in its place
            except Rejected as exc:
                del entries[tx_hash]
                self._bytes -= entry.size
                self._remember_rejected(tx_hash, exc)
                self._forget_decoded(entry.tx)
                self.stats["evicted_on_recheck"] += 1
            else:
                self.stats["rerun_on_recheck"] += 1
                if changed is not None:
                    changed.update(checked.writes)
        self.stats["kept_on_recheck"] += kept
        if end == len(queue):
            self._queue, self._queue_at = [], 0
            self._changed = None
            self._retry_parked()
        return len(queue) - end

    def _retry_parked(self) -> None:
        """Admit parked transactions whose predecessor the new head (or the pool) now holds."""
        ready = []
        for key in list(self._parked):
            expected = _next_nonce(self._overlay, key[0])
            if key[1] < expected:
                self._forget_decoded(self._parked.pop(key)[0])  # its nonce was used meanwhile
            elif key[1] == expected:
                ready.append(key)
        for key in ready:
            parked = self._parked.pop(key, None)
            if parked is None:
                continue
            tx = parked[0]
            try:
                if self._admit(*parked) is AddResult.ADDED:
                    self._unpark_after(tx.sender, tx.nonce)
            except (Rejected, MempoolFull):
                self._forget_decoded(tx)

    def _remember_rejected(self, tx_hash: bytes, exc: Rejected) -> None:
        self.stats["rejected"] += 1
        if exc.code not in PERMANENT_REJECTIONS:
            return  # may apply later (after an earlier nonce, an incoming transfer, a membership change)
        self._rejected[tx_hash] = Rejected(exc.code, exc.message)  # a copy, never raised: no frames (ledger `detached`)
        if len(self._rejected) > REJECTED_MEMORY:
            self._rejected.popitem(last=False)
