"""Replay from genesis: re-verify a chain in a fresh, separate state, trusting nothing it is given.

For every height h, in order (specs/audit.md, "Replay"):

1. the header: chain id, height, previous block hash, time strictly after the previous block's,
   transactions hash (and evidence hash when the source carries the evidence);
2. the validator set of h, read from the replayed ledger's validator records after h-1 (power =
   stake // 10**6): the header's validators_hash is its hash and the proposer is in it;
3. the commit certificate: for this header's hash at h, every signer in the set with a valid
   precommit signature, more than 2/3 of the set's power;
4. the evidence (when carried): from an earlier height, signed by a validator of that height, never
   committed before, never repeated;
5. the block re-executed by the ledger (every transaction signature verified), its state root
   compared with the header's;
6. the conservation identity on the committed totals, and two sums the replay keeps itself: the
   stored account balances add up to `circulating` and the validator stakes, bonded and unbonding, to `bonded`.

The first failure stops the replay and is reported as a `Divergence` naming the height.

Signatures (transactions and certificates) are checked in a pool of `jobs` forked processes
(cli/audit/pool.py; with 1, in this process), batches of blocks ahead of the ledger. The pool also
decodes each transaction (`decode_tx`, the ledger's check of form) and, from a node's store, the
block and its certificate (`StoredBlock`). The transactions that are well formed and verified are
handed to the ledger as a `SignatureCache`, each rebuilt here from its wire bytes and the hash the
pool computed, so each is decoded and each signature checked once. One that failed is not in the
cache, so the ledger checks it again and rejects the block at its height: the outcome is the same
whatever `jobs` is.

The replayed ledger keeps no undo logs; it is built while the pool checks the first batches, and
a node's stored state is read ahead whenever the ledger waits for the pool.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from cli.audit.economy import KeyIndex, PeriodSnapshot, take_snapshot
from cli.audit.pool import Task, WorkerPool
from cli.audit.sources import BlockSource, BlockUnreadable, NodeStateSource, SourceBlock, StoredBlock, StoredBlockSource
from consensus.block import GENESIS_PREV_HASH, evidence_root, merkle_root
from consensus.block_store import ValidatorInfo, evidence_id, validator_set_of
from consensus.errors import MessageInvalid
from consensus.types import CommitCertificate, ValidatorSet, VoteKind, vote_sign_bytes
from ledger import BlockInput, Genesis, InvariantViolation, LedgerDB, Rejected, SignatureCache, Tx, decode_tx
from ledger.crypto import verify_signature
from ledger.monetary import compute_period
from ledger.queries import get_supply
from ledger.records import Account, Unbonding, Validator
from ledger.state import STATE_PREFIX
from ledger.tx import trusted_tx, verify_tx_signatures

__all__ = ["Divergence", "ReplayResult", "Replayer", "replay", "verify_signature_batch"]

BATCH_BYTES_MAX = 200_000
"""Bytes of transactions (or of stored blocks) per batch, a block of 1,000 transfers being a batch of
its own: large enough to amortise the pool's messaging, small enough that the ledger never waits
long for the first batch and is left little to do alone at the end."""
BATCH_BLOCKS_MAX = 64
BATCHES_AHEAD = 2
"""Batches in flight per worker: the pool keeps verifying while the ledger executes."""
NODE_STATE_PREFETCH = 200_000
"""Entries of a node's stored state read ahead, while this process waits for the pool (bounded:
the rest is read at the end, when they are compared)."""
NODE_STATE_CHUNK = 2_000
"""Entries read ahead at a time: between two chunks the replay looks whether the pool's answer it
waits for has come (a few ms of reading at most, where reading them all at the start held the
first block back by tens of ms)."""


@dataclass(frozen=True)
class Divergence:
    """The first thing that did not verify: where, what kind of check, and the detail."""

    height: int
    check: str
    detail: str

    def __str__(self) -> str:
        return f"height {self.height}: {self.check}: {self.detail}"


class _Diverged(Exception):
    def __init__(self, height: int, check: str, detail: str) -> None:
        super().__init__(detail)
        self.divergence = Divergence(height, check, detail)


@dataclass(frozen=True)
class SlashRecord:
    """The validators a block slashed (removed from the set) and the stake moved to the commons pool."""

    height: int
    validators: list[str]
    amount: int


@dataclass
class ReplayResult:
    """What the replay verified and what it saw. `to_json(timing=False)` is identical for any `jobs`."""

    source: str
    chain_id: str
    genesis_hash: str
    source_height: int
    ok: bool = False
    divergence: Divergence | None = None
    blocks: int = 0
    txs: int = 0
    tx_signatures: int = 0
    certificate_signatures: int = 0
    evidence_checked: int = 0
    evidence_summarised_only: int = 0
    """Blocks whose source carried an evidence summary, not the evidence (RPC)."""
    node_state_entries: int = 0
    """Entries of the node's own stored state found equal to the replayed state (--home)."""
    final_height: int = 0
    final_state_root: str = ""
    final_time_ms: int = 0
    final_period: int = 0
    supply: dict[str, int] = field(default_factory=dict)
    slashes: list[SlashRecord] = field(default_factory=list)
    periods: list[PeriodSnapshot] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def blocks_per_s(self) -> float:
        return self.blocks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def txs_per_s(self) -> float:
        return self.txs / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self, timing: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["divergence"] = None if self.divergence is None else asdict(self.divergence)
        del out["elapsed_s"]
        if timing:
            out["elapsed_s"] = round(self.elapsed_s, 3)
            out["blocks_per_s"] = round(self.blocks_per_s, 1)
            out["txs_per_s"] = round(self.txs_per_s, 1)
        return out


# the pool's work -----------------------------------------------------------------------------------------
VoteItem = tuple[int, int, bytes, bytes, bytes]
"""(height, round, block_hash, validator, signature) of one precommit in a certificate."""

BlockWork = tuple[Sequence[bytes], Sequence[VoteItem]] | StoredBlock
"""What the pool checks of one block: its transactions and precommits, or the block as a node's
store holds it, which the pool decodes first."""


class Checked(NamedTuple):
    """What the pool found of one block."""

    block: SourceBlock | None
    """The block the pool decoded from a `StoredBlock`; None when the replay holds it already."""
    txs_root: bytes
    txs: list[Any]
    """Per transaction, in order: the decoded `Tx` (its hash, from a worker process) if it is well
    formed (`decode_tx`, the ledger's own check of form) and all its signatures verify, else None
    (left for the ledger to reject)."""
    votes_ok: list[bool]
    """Per precommit of the certificate: whether its signature verifies."""


class Unreadable(NamedTuple):
    """A `StoredBlock` that does not decode (`BlockUnreadable`); the pool stops its batch there."""

    height: int
    reason: str


def check_signature_batch(chain_id: str, work: Sequence[BlockWork]) -> list[Checked | Unreadable]:
    """Per block: the Merkle root of its transactions, each transaction's decoded `Tx` or None,
    each precommit's validity (see `Checked`)."""
    out: list[Checked | Unreadable] = []
    for item in work:
        block = None
        if isinstance(item, StoredBlock):
            try:
                block = item.decode()
            except BlockUnreadable as exc:
                out.append(Unreadable(exc.height, exc.reason))
                break
            block.header.hash  # computed here, and sent with the header  # noqa: B018
            txs, votes = block.txs, _vote_items(block.certificate)
            txs_root = block.header.txs_hash  # decoding checked merkle_root(txs) against it (Block)
        else:
            txs, votes = item
            txs_root = merkle_root(txs)
        checked: list[Tx | None] = []
        for raw in txs:  # every transaction decoded, then every signature checked (as prevalidate does)
            try:
                checked.append(decode_tx(raw))
            except Rejected:
                checked.append(None)
        for i, tx in enumerate(checked):
            if tx is not None:
                try:
                    verify_tx_signatures(tx, chain_id)
                except Rejected:
                    checked[i] = None
        votes_ok = [
            verify_signature(validator, vote_sign_bytes(chain_id, VoteKind.PRECOMMIT, height, round_, block_hash, validator), signature)
            for height, round_, block_hash, validator, signature in votes
        ]
        out.append(Checked(block, txs_root, checked, votes_ok))
    return out


def verify_signature_batch(chain_id: str, work: Sequence[BlockWork]) -> list[Checked | Unreadable]:
    """Runs in a worker: `check_signature_batch`, each checked transaction sent back as its hash
    only (32 bytes through the pipe instead of a pickled `Tx`); the replay rebuilds the `Tx` from
    the wire bytes (`ledger.tx.trusted_tx`)."""
    return [
        c._replace(txs=[None if tx is None else tx.hash for tx in c.txs]) if isinstance(c, Checked) else c
        for c in check_signature_batch(chain_id, work)
    ]


def _vote_items(certificate: CommitCertificate) -> list[VoteItem]:
    c = certificate
    return [(c.height, c.round, c.block_hash, s.validator, s.signature) for s in c.signatures]


@dataclass
class _Batch:
    items: list[SourceBlock | StoredBlock]
    unreadable: BlockUnreadable | None
    """Raised by the source right after these blocks."""
    verified: Task | _CheckedHere | None = None


class _CheckedHere:
    """jobs=1: a batch checked here, as it is queued (the same checks; the decoded transactions
    are kept as they are, nothing crosses a pipe). Answers as a pool's `Task` does."""

    def __init__(self, chain_id: str, work: Sequence[BlockWork]) -> None:
        self._checked = check_signature_batch(chain_id, work)

    def done(self) -> bool:
        return True

    def result(self) -> list[Checked | Unreadable]:
        return self._checked


class _ReplayStore:
    """The replay's in-memory store: a dict (ledger.store.Store); `values_of` looks many keys up at
    once and `count` counts the entries under a prefix without sorting them (`iterate` sorts, as
    every store iterates in key order)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def write_batch(self, changes: Mapping[bytes, bytes | None], sync: bool = True) -> None:
        data = self._data
        data.update(changes)  # type: ignore[arg-type]  # the deletions (None) are removed next
        if None in changes.values():
            for k, v in changes.items():
                if v is None:
                    del data[k]

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k in sorted(k for k in self._data if k.startswith(prefix)):
            yield k, self._data[k]

    def values_of(self, keys: Iterable[bytes]) -> list[bytes | None]:
        return list(map(self._data.get, keys))

    def count(self, prefix: bytes) -> int:
        return sum(1 for k in self._data if k.startswith(prefix))

    def close(self) -> None:
        pass


# the replay ------------------------------------------------------------------------------------------------
_ACCOUNT, _VALIDATOR, _UNBONDING = Account.PREFIX[0], Validator.PREFIX[0], Unbonding.PREFIX[0]
"""First byte of the state keys of the records the replay keeps its own sums of."""

ProgressFn = Callable[[int, int, int], None]
"""on_progress(height, source_height, txs so far), called after each verified block."""


class Replayer:
    def __init__(self, genesis: Genesis, jobs: int | None = None, on_progress: ProgressFn | None = None, snapshots: bool = True) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
        self.on_progress = on_progress
        self.snapshots = snapshots
        self._sets: dict[bytes, ValidatorSet] = {}
        self._node_state: NodeStateSource | None = None
        self._node_reader: Iterator[tuple[bytes, bytes]] | None = None
        self._node_read_ahead: list[tuple[bytes, bytes]] = []
        self._node_read_all = False
        self._current: ValidatorSet | None = None  # the set of head + 1, until a validator record changes
        self._set_hash_at: list[bytes] = [b""]  # index = height
        self._evidence_seen: set[bytes] = set()
        self._prev_hash = GENESIS_PREV_HASH
        self._period_blocks = 0
        self._period_txs = 0
        self.pool_pids: list[int] = []
        """The process ids of the last run's pool workers (none with jobs=1); every worker is
        reaped by the time `run` returns, so a caller's count of its children's CPU time includes
        the pool's."""

    ledger: LedgerDB
    index: KeyIndex

    _opened = False

    def _ensure_open(self) -> None:
        if not self._opened:
            self._open()

    def _open(self) -> None:
        """The replayed ledger at genesis and the replay's own sums (built while the pool checks
        the first batches)."""
        self._opened = True
        self.ledger = LedgerDB(_ReplayStore(), self.genesis, history_heights=0)  # no undo logs: nothing here serves past proofs
        records = self.genesis.initial_records()
        self.index = KeyIndex(records)
        self._validators: dict[bytes, Validator] = {k[1:]: r for k, r in records.items() if k[:1] == Validator.PREFIX}
        self._unbonding: dict[bytes, int] = {k[1:]: r.stake for k, r in records.items() if k[:1] == Unbonding.PREFIX}
        self._balance_sum = sum(r.balance for k, r in records.items() if k[:1] == Account.PREFIX)
        self._last_snapshot_totals = self.ledger.totals()

    def _read_node_state_ahead(self, answered: Task | _CheckedHere) -> None:
        """Read ahead the node's stored state, for the comparison at the end, NODE_STATE_CHUNK
        entries at a time, while the pool has not `answered` (time this process would wait), up
        to NODE_STATE_PREFETCH entries in all. Not otherwise: this process is the replay's
        bottleneck, and what it does while the workers share the cores with it takes longer than
        at the end, when it runs alone (reading a chunk before every batch: 0.517 x 2V against
        0.527, the medians of ten replays of 24 blocks)."""
        if self._node_state is None or self._node_read_all:
            return
        if self._node_reader is None:
            self._node_reader = self._node_state.stored_state()
        read_ahead = self._node_read_ahead
        while not answered.done() and len(read_ahead) < NODE_STATE_PREFETCH:
            chunk = [(STATE_PREFIX + k, v) for k, v in itertools.islice(self._node_reader, NODE_STATE_CHUNK)]
            read_ahead += chunk
            if len(chunk) < NODE_STATE_CHUNK:
                self._node_read_all = True
                return  # all read: the caller waits for the answer, it does not spin for it

    def _node_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """The node's stored state, by store key (with STATE_PREFIX): what was read ahead, then the rest."""
        if self._node_reader is None:
            self._node_reader = self._node_state.stored_state()  # type: ignore[union-attr]  # only with a node's state
        read_ahead, self._node_read_ahead = self._node_read_ahead, []
        return itertools.chain(read_ahead, ((STATE_PREFIX + k, v) for k, v in self._node_reader))

    # validator sets -------------------------------------------------------------------------------------
    def _current_set(self, height: int) -> ValidatorSet:
        """The set of `height` (= head + 1): the replayed validator records after height - 1."""
        if self._current is not None:
            return self._current
        infos = [ValidatorInfo(a, v.name, v.stake) for a, v in sorted(self._validators.items())]
        if not any(i.power > 0 for i in infos):
            raise _Diverged(height, "validator set", "no validator with voting power is left")
        vset = validator_set_of(infos)
        self._current = self._sets.setdefault(vset.hash, vset)
        return self._current

    def _set_at(self, height: int) -> ValidatorSet | None:
        if 1 <= height < len(self._set_hash_at):
            return self._sets[self._set_hash_at[height]]
        return None

    # the run --------------------------------------------------------------------------------------------
    def run(self, source: BlockSource) -> ReplayResult:
        started = time.perf_counter()
        result = ReplayResult(
            source=source.describe(),
            chain_id=self.chain_id,
            genesis_hash=self.genesis.hash.hex(),
            source_height=source.head_height(),
        )
        pool = WorkerPool(self.jobs, verify_signature_batch) if self.jobs > 1 else None  # before the source runs any thread
        try:
            self.pool_pids = [] if pool is None else sorted(pool.pids)
            self._run(source, pool, result)  # the ledger is opened once the pool has its first batches
            result.ok = True
        except _Diverged as exc:
            result.divergence = exc.divergence
        finally:
            if pool is not None:
                pool.close()  # returns once every worker has been reaped
            close = getattr(self._node_reader, "close", None)
            if close is not None:
                close()  # a store iterator left open by a replay that stopped early, closed while the store is open
        self._ensure_open()  # a replay that stopped before its first block reports the genesis state
        self._finish(result)
        result.elapsed_s = time.perf_counter() - started
        return result

    def _run(self, source: BlockSource, pool: WorkerPool | None, result: ReplayResult) -> None:
        self._node_state = source if isinstance(source, NodeStateSource) else None
        self._blocks_from(source, pool, result)
        height = self.ledger.head.height
        if height < result.source_height:
            raise _Diverged(height + 1, "block unreadable", f"the source ended at height {height}, before its head {result.source_height}")
        if self._node_state is not None and self.ledger.head.height == result.source_height:
            result.node_state_entries = self._compare_node_state(self._node_state)

    def _blocks_from(self, source: BlockSource, pool: WorkerPool | None, result: ReplayResult) -> None:
        in_flight: list[_Batch] = []
        batches = _batches(source)
        ahead = BATCHES_AHEAD * self.jobs
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < ahead:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                    break
                work = [b if isinstance(b, StoredBlock) else (b.txs, _vote_items(b.certificate)) for b in batch.items]
                batch.verified = _CheckedHere(self.chain_id, work) if pool is None else pool.submit(self.chain_id, work)
                in_flight.append(batch)
            self._ensure_open()  # the first time: while the pool checks the first batches
            if not in_flight:
                return
            batch = in_flight.pop(0)
            self._read_node_state_ahead(batch.verified)  # type: ignore[arg-type]  # set when queued
            results = batch.verified.result()  # type: ignore[union-attr]  # set when queued
            size = sum(len(c.txs) for c in results if isinstance(c, Checked)) + 1
            cache = SignatureCache(capacity=size, decoded_capacity=size)
            remember = cache.remember
            for item, checked in zip(batch.items, results):  # the results stop at an unreadable block
                if isinstance(checked, Unreadable):
                    raise _Diverged(checked.height, "block unreadable", checked.reason)
                block = item if checked.block is None else checked.block
                assert isinstance(block, SourceBlock)
                for raw, tx in zip(block.txs, checked.txs, strict=True):
                    if tx is not None:
                        remember(tx if type(tx) is Tx else trusted_tx(raw, tx))
                self._replay_block(block, cache, checked.txs_root, checked.votes_ok, result)
            if batch.unreadable is not None:
                raise _Diverged(batch.unreadable.height, "block unreadable", batch.unreadable.reason)

    def _replay_block(
        self, block: SourceBlock, verified: SignatureCache, txs_root: bytes, votes_ok: Sequence[bool], result: ReplayResult
    ) -> None:
        ledger = self.ledger
        head = ledger.head
        height = head.height + 1
        header = block.header
        if block.height != height or header.height != height:
            raise _Diverged(height, "header", f"the source gave height {header.height} where {height} follows")
        # 1. the header
        if header.chain_id != self.chain_id:
            raise _Diverged(height, "header", f"chain id {header.chain_id!r} is not {self.chain_id!r}")
        if header.prev_block_hash != self._prev_hash:
            raise _Diverged(height, "header", "prev_block_hash is not the hash of the previous block")
        if header.time_ms <= head.time_ms:
            raise _Diverged(height, "header", f"time {header.time_ms} is not after the previous block's {head.time_ms}")
        if txs_root != header.txs_hash:
            raise _Diverged(height, "header", "txs_hash does not match the transactions")
        if block.evidence is not None:
            if evidence_root(block.evidence) != header.evidence_hash:
                raise _Diverged(height, "header", "evidence_hash does not match the evidence")
        # 2. the validator set
        vset = self._current_set(height)
        if header.validators_hash != vset.hash:
            raise _Diverged(height, "validator set", "validators_hash is not the hash of this height's validator set")
        if header.proposer not in vset:
            raise _Diverged(height, "validator set", f"the proposer {header.proposer.hex()[:16]}… is not a validator of this height")
        # 3. the certificate
        result.certificate_signatures += _check_certificate(height, block.certificate, header.hash, vset, votes_ok)
        self._set_hash_at.append(vset.hash)
        # 4. the evidence
        self._check_evidence(height, block, result)
        # period bookkeeping: close the period the head is in before a block of a later one
        period = compute_period(header.time_ms, self.genesis.params.genesis_time_ms, self.genesis.params.period_seconds)
        if period > head.period and self._period_blocks:
            self._snapshot(result)
        # 5. execute
        try:
            executed = ledger.execute(BlockInput(height, header.time_ms, block.txs, block.slashes), verified)
        except Rejected as exc:
            check = "signature" if "BAD_SIGNATURE" in exc.message or exc.code.name == "BAD_SIGNATURE" else "transition"
            raise _Diverged(height, check, str(exc)) from None
        except InvariantViolation as exc:
            raise _Diverged(height, "conservation", str(exc)) from None
        if executed.state_root != header.state_root:
            raise _Diverged(
                height, "state root", f"re-executed root {executed.state_root.hex()} differs from the header's {header.state_root.hex()}"
            )
        if self._node_state is not None:
            stored = self._node_state.stored_root(height)
            if stored is not None and stored != header.state_root:
                raise _Diverged(height, "node state", f"the node recorded state root {stored.hex()} after this height, the certified header has {header.state_root.hex()}")
        slashed_before = ledger.totals().slashed
        offenders = [a for a in block.slashes if a in self._validators]
        self._track(executed.state.changes)
        ledger.commit(executed)
        # 6. conservation
        self._check_conservation(height)
        if offenders:
            amount = ledger.totals().slashed - slashed_before
            result.slashes.append(SlashRecord(height, [a.hex() for a in offenders], amount))
        self._prev_hash = header.hash
        result.blocks += 1
        result.txs += len(executed.txs)
        result.tx_signatures += sum(len(tx.signatures) for tx in executed.txs)
        self._period_blocks += 1
        self._period_txs += len(executed.txs)
        if self.on_progress is not None:
            self.on_progress(height, result.source_height, result.txs)

    def _compare_node_state(self, node: NodeStateSource) -> int:
        """The node's stored state, entry by entry, against the replayed state at the same head:
        one pass over the node's entries, each looked up in the replayed store, and the counts
        compared; on any difference, the merge of both in key order names the first one."""
        store = self.ledger.store
        assert isinstance(store, _ReplayStore)
        equal = 0
        entries = self._node_entries()
        while chunk := list(itertools.islice(entries, NODE_STATE_PREFETCH)):
            keys, values = zip(*chunk)
            if store.values_of(keys) != list(values):
                return self._first_node_state_difference(node)
            equal += len(chunk)
        if equal != store.count(STATE_PREFIX):
            return self._first_node_state_difference(node)
        return equal

    def _first_node_state_difference(self, node: NodeStateSource) -> int:
        height = self.ledger.head.height
        mine = ((k[len(STATE_PREFIX):], v) for k, v in self.ledger.store.iterate(STATE_PREFIX))
        theirs = node.stored_state()
        a, b = next(mine, None), next(theirs, None)
        equal = 0
        while a is not None or b is not None:
            if a is not None and b is not None and a[0] == b[0]:
                if a[1] != b[1]:
                    raise _Diverged(height, "node state", f"the node's state entry {a[0].hex()} differs from the replayed one")
                equal += 1
                a, b = next(mine, None), next(theirs, None)
            elif b is None or (a is not None and a[0] < b[0]):
                raise _Diverged(height, "node state", f"the node's state lacks the entry {a[0].hex()}")  # type: ignore[index]
            else:
                raise _Diverged(height, "node state", f"the node's state has an entry the replay does not: {b[0].hex()}")
        return equal

    def _check_evidence(self, height: int, block: SourceBlock, result: ReplayResult) -> None:
        if block.evidence is None:
            if block.slashes:
                result.evidence_summarised_only += 1
            return
        seen: set[bytes] = set()
        for evidence in block.evidence:
            key = evidence_id(evidence)
            if key in seen or key in self._evidence_seen:
                raise _Diverged(height, "evidence", "evidence committed twice")
            seen.add(key)
            vset = self._set_at(evidence.height) if evidence.height < height else None
            if vset is None:
                raise _Diverged(height, "evidence", f"evidence from height {evidence.height}, not an earlier one")
            try:
                evidence.verify(vset, self.chain_id)
            except MessageInvalid as exc:
                raise _Diverged(height, "evidence", str(exc)) from None
            result.evidence_checked += 1
        self._evidence_seen |= seen

    def _track(self, changes: dict[bytes, Any]) -> None:
        """Keep the replay's own sums and indexes from the keys a block wrote (before it is
        committed: the committed records are the previous values)."""
        get = self.ledger.committed.get
        delta = 0
        others = {}
        for key, record in changes.items():
            kind = key[0]
            if kind == _ACCOUNT:
                old = get(key)
                delta += (0 if record is None else record.balance) - (0 if old is None else old.balance)
            elif kind == _VALIDATOR:
                self._current = None
                if record is None:
                    self._validators.pop(key[1:], None)
                else:
                    self._validators[key[1:]] = record
            elif kind == _UNBONDING:
                if record is None:
                    self._unbonding.pop(key[1:], None)
                else:
                    self._unbonding[key[1:]] = record.stake
            else:
                others[key] = record
        self._balance_sum += delta
        self.index.update(others)

    def _check_conservation(self, height: int) -> None:
        t = self.ledger.totals()
        parts = (t.circulating, t.commons_pool, t.ubi_reserve, t.bonded)
        if sum(parts) != t.total_supply or t.total_supply != self.genesis.total_supply:
            raise _Diverged(height, "conservation", f"circulating + commons_pool + ubi_reserve + bonded = {sum(parts)}, total supply {t.total_supply}, genesis {self.genesis.total_supply}")
        if min(parts) < 0:
            raise _Diverged(height, "conservation", f"a supply part is negative: {t}")
        if self._balance_sum != t.circulating:
            raise _Diverged(height, "conservation", f"account balances add up to {self._balance_sum}, circulating is {t.circulating}")
        stakes = sum(v.stake for v in self._validators.values()) + sum(self._unbonding.values())
        if stakes != t.bonded:
            raise _Diverged(height, "conservation", f"validator stakes, bonded and unbonding, add up to {stakes}, bonded is {t.bonded}")

    def _snapshot(self, result: ReplayResult) -> None:
        if self.snapshots:
            snapshot = take_snapshot(self.ledger, self.index, self._last_snapshot_totals, self._period_blocks, self._period_txs)
            result.periods.append(snapshot)
        self._last_snapshot_totals = self.ledger.totals()
        self._period_blocks = 0
        self._period_txs = 0

    def _finish(self, result: ReplayResult) -> None:
        if self._period_blocks:
            self._snapshot(result)
        head = self.ledger.head
        result.final_height = head.height
        result.final_time_ms = head.time_ms
        result.final_period = head.period
        result.final_state_root = self.ledger.state_root.hex()
        result.supply = get_supply(self.ledger.view())


def _check_certificate(height: int, certificate: CommitCertificate, header_hash: bytes, vset: ValidatorSet, votes_ok: Sequence[bool]) -> int:
    """CommitCertificate.verify's rule, with each signature's validity computed by the pool."""
    if certificate.height != height:
        raise _Diverged(height, "certificate", f"the certificate is for height {certificate.height}")
    if certificate.block_hash != header_hash:
        raise _Diverged(height, "certificate", "the certificate is for another block than this header")
    power = 0
    for signature, ok in zip(certificate.signatures, votes_ok, strict=True):
        member = vset.get(signature.validator)
        if member is None:
            raise _Diverged(height, "certificate", f"signer {signature.validator.hex()[:16]}… is not in the validator set")
        if not ok:
            raise _Diverged(height, "certificate", f"bad precommit signature by {signature.validator.hex()[:16]}…")
        power += member.power
    if power < vset.quorum_power:
        raise _Diverged(height, "certificate", f"signers hold power {power}, below the quorum {vset.quorum_power}")
    return len(certificate.signatures)


def _batches(source: BlockSource) -> Iterator[_Batch]:
    """The source's blocks in batches (as `StoredBlock`s when it has them, for the pool to decode);
    a BlockUnreadable ends the last batch."""
    items: list[SourceBlock | StoredBlock] = []
    size = 0
    iterator: Iterator[SourceBlock | StoredBlock]
    iterator = source.stored_blocks(1) if isinstance(source, StoredBlockSource) else source.blocks(1)
    while True:
        try:
            item = next(iterator, None)
        except BlockUnreadable as exc:
            yield _Batch(items, exc)
            return
        if item is None:
            if items:
                yield _Batch(items, None)
            return
        items.append(item)
        size += len(item.block or b"") if isinstance(item, StoredBlock) else sum(map(len, item.txs))
        if size >= BATCH_BYTES_MAX or len(items) >= BATCH_BLOCKS_MAX:
            yield _Batch(items, None)
            items, size = [], 0


def replay(source: BlockSource, jobs: int | None = None, on_progress: ProgressFn | None = None, snapshots: bool = True) -> ReplayResult:
    """Replay `source` from its genesis. See the module docstring for what is checked."""
    return Replayer(source.genesis, jobs, on_progress, snapshots).run(source)
