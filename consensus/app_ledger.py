"""The consensus `Application` over the Hearth ledger: what a block is, who validates it, how it is stored.

- A proposer builds a block with `LedgerDB.build` from the mempool's oldest transactions and the
  pending evidence; the header's `state_root` is the root after executing the block, so the hash
  validators vote for commits to the resulting state.
- A validator executes a proposal before it prevotes (`validate_block`) and keeps the
  `ExecutedBlock`, so the commit that follows writes it without executing again. Both the build and
  the execution apply the effects the node's mempool recorded where they still hold, instead of
  running those transactions again (ledger `apply_known_effect`).
- `commit` writes the state, the block, its certificate and the indexes in one atomic batch.
- `apply_synced` is block sync's path: check the certificate against the validator set of the
  height, execute, commit.

Validator set (specs/consensus.md): the set of height h is the ledger's validator records after
block h-1 is applied, power = stake // 10**6. A slash in block h therefore takes effect at h+1.

Block time (specs/consensus.md, "Block time"): the proposer stamps max(its clock, previous block
time + 1 ms). A block is valid only if its time is strictly after the previous block's. The drift
rule (no prevote for a proposal too far ahead of the local clock) reads the clock, so it is not part
of `validate_block` (APP-1): `ahead_of_clock_ms` tells the node, which holds such a block back from
the engine until the clock catches up.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from consensus.block import GENESIS_PREV_HASH, MAX_EVIDENCE_PER_BLOCK, Block
from consensus.block_store import BlockStore, ValidatorInfo, evidence_id, validator_set_of
from consensus.clock import Clock
from consensus.config import ConsensusConfig
from consensus.errors import ConsensusInvariantViolation, MessageInvalid, check_invariant
from consensus.evidence import DuplicateVoteEvidence
from consensus.mempool import Mempool
from consensus.types import CommitCertificate, ValidatorSet
from ledger import BlockInput, ExecutedBlock, LedgerDB, Rejected, SignatureCache, Tx, detached
from ledger.crypto import sha256
from ledger.records import Validator
from ledger.state import STATE_PREFIX, decode_record

__all__ = ["LedgerApp", "EvidencePool", "CommittedBlock", "BlockRefused"]

log = logging.getLogger("hearth.app")

BLOCK_OVERHEAD_BYTES = 64 * 1024
"""Room kept in a block's byte budget for the header and the evidence."""
MAX_DECODED_BLOCKS = 16
MAX_PENDING_EVIDENCE = 1024


class BlockRefused(Exception):
    """A block (or a synced block with its certificate) that must not be committed; says why."""


@dataclass(frozen=True)
class CommittedBlock:
    block: Block
    block_bytes: bytes
    certificate: CommitCertificate
    txs: list[Tx]


class EvidencePool:
    """Verified evidence not yet committed, oldest first, bounded."""

    def __init__(self) -> None:
        self._pending: OrderedDict[bytes, DuplicateVoteEvidence] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, evidence: DuplicateVoteEvidence) -> bool:
        key = evidence_id(evidence)
        if key in self._pending or len(self._pending) >= MAX_PENDING_EVIDENCE:
            return False
        self._pending[key] = evidence
        return True

    def pending(self, limit: int) -> list[DuplicateVoteEvidence]:
        return list(self._pending.values())[:limit]

    def remove(self, evidence: list[DuplicateVoteEvidence] | tuple[DuplicateVoteEvidence, ...]) -> None:
        for e in evidence:
            self._pending.pop(evidence_id(e), None)


class LedgerApp:
    def __init__(
        self,
        ledger: LedgerDB,
        blocks: BlockStore,
        mempool: Mempool,
        evidence: EvidencePool,
        verified: SignatureCache,
        clock: Clock,
        address: bytes,
        config: ConsensusConfig,
        check_recorded_effects: bool = False,
    ) -> None:
        """`check_recorded_effects` (devnets and tests): build and execute every block a second
        time without the mempool's recorded effects, and stop (ConsensusInvariantViolation) if the
        two differ in anything: block, writes, state root, or refusal."""
        self.ledger = ledger
        self.blocks = blocks
        self.mempool = mempool
        self.evidence = evidence
        self.verified = verified
        self.clock = clock
        self.address = address
        self.config = config
        self.check_recorded_effects = check_recorded_effects
        self.chain_id = ledger.chain_id
        self._validators_cache: tuple[int, tuple[ValidatorInfo, ...]] | None = None
        self._decoded: OrderedDict[bytes, Block] = OrderedDict()  # by sha256 of the block bytes
        self._executed: dict[bytes, ExecutedBlock] = {}  # by block hash, for the height being decided

    # validator sets -------------------------------------------------------------------------------
    def validator_infos(self, height: int) -> tuple[ValidatorInfo, ...]:
        """The validators of `height`: the ledger's records after block height-1."""
        head = self.ledger.head.height
        if height == head + 1:
            cached = self._validators_cache
            if cached is None or cached[0] != head:
                cached = (head, self._read_validators())
                self._validators_cache = cached
            return cached[1]
        if 1 <= height <= head:
            stored = self.blocks.validators_at(height)
            if stored is None:
                raise BlockRefused(f"the validator set of height {height} is not stored here")
            return stored
        raise ConsensusInvariantViolation(f"validator set of height {height} asked at head {head}")

    def _read_validators(self) -> tuple[ValidatorInfo, ...]:
        prefix = STATE_PREFIX + Validator.PREFIX
        out = []
        for key, data in self.ledger.store.iterate(prefix):
            record = decode_record(key[len(STATE_PREFIX):], data)
            out.append(ValidatorInfo(key[len(prefix):], record.name, record.stake))
        return tuple(out)

    def validator_set(self, height: int) -> ValidatorSet:
        return validator_set_of(self.validator_infos(height))

    # the Application protocol -----------------------------------------------------------------------
    def propose_block(self, height: int, round: int, time_ms: int) -> tuple[bytes, bytes]:
        head = self.ledger.head
        check_invariant(height == head.height + 1, "a proposal builds on the head")
        time_ms = max(time_ms, head.time_ms + 1)
        evidence = tuple(e for e in self.evidence.pending(MAX_EVIDENCE_PER_BLOCK) if self._evidence_problem(e, height) is None)
        budget = self.config.max_block_bytes - BLOCK_OVERHEAD_BYTES
        candidates = self.mempool.reap(self.config.max_block_txs, budget)
        block_input = BlockInput(height, time_ms, (), _slashes(evidence))
        executed = self.ledger.build(block_input, candidates, self.verified, self.mempool.known_effects())
        if self.check_recorded_effects:
            full = self.ledger.build(block_input, candidates, self.verified)
            check_invariant(
                (full.block, full.encoded, full.state_root) == (executed.block, executed.encoded, executed.state_root),
                f"height {height}: the build from recorded effects differs from a full build",
            )
        block = Block.build(
            chain_id=self.chain_id,
            height=height,
            time_ms=time_ms,
            prev_block_hash=self._prev_block_hash(),
            state_root=executed.state_root,
            proposer=self.address,
            validators_hash=self.validator_set(height).hash,
            txs=executed.block.txs,
            evidence=evidence,
        )
        data = block.to_bytes()
        self._remember(sha256(data), block)
        self._executed[block.hash] = executed
        log.debug("proposing block %d round %d: %d txs, %d evidence", height, round, len(block.txs), len(evidence))
        return data, block.hash

    def block_hash(self, block: bytes) -> bytes | None:
        decoded = self.decode(block)
        return None if decoded is None else decoded.hash

    def validate_block(self, height: int, block: bytes) -> bool:
        decoded = self.decode(block)
        if decoded is None or decoded.header.height != height:
            return False
        if decoded.hash in self._executed:
            return True
        try:
            self._executed[decoded.hash] = self._check_and_execute(decoded)
        except BlockRefused as exc:
            log.info("refusing block %d %s: %s", height, decoded.hash.hex()[:12], exc)
            return False
        return True

    # decoding -------------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Block | None:
        """The block these bytes encode, or None. Remembered by the digest of the bytes, so the
        relay check, the engine and the validation decode a proposal once."""
        if len(data) > self.config.max_block_bytes:
            return None
        digest = sha256(data)
        cached = self._decoded.get(digest)
        if cached is not None:
            return cached
        try:
            block = Block.from_bytes(data)
        except MessageInvalid:
            return None
        self._remember(digest, block)
        return block

    def _remember(self, digest: bytes, block: Block) -> None:
        self._decoded[digest] = block
        while len(self._decoded) > MAX_DECODED_BLOCKS:
            self._decoded.popitem(last=False)

    # checks -----------------------------------------------------------------------------------------
    def _prev_block_hash(self) -> bytes:
        head = self.ledger.head.height
        if head == 0:
            return GENESIS_PREV_HASH
        stored = self.blocks.block_hash(head)
        check_invariant(stored is not None, "the head block is stored")
        return stored  # type: ignore[return-value]

    def _evidence_problem(self, evidence: DuplicateVoteEvidence, height: int) -> str | None:
        if evidence.height >= height:
            return "evidence from this height or later"
        if self.blocks.has_evidence(evidence):
            return "evidence already committed"
        try:
            evidence.verify(self.validator_set(evidence.height), self.chain_id)
        except (MessageInvalid, BlockRefused) as exc:
            return str(exc)
        return None

    def ahead_of_clock_ms(self, block: Block) -> int:
        """How far the block's time is beyond the local clock plus the allowed drift (<= 0: fine)."""
        return block.header.time_ms - (self.clock.now_ms() + self.config.max_clock_drift_ms)

    def _check_and_execute(self, block: Block) -> ExecutedBlock:
        header = block.header
        head = self.ledger.head
        if header.chain_id != self.chain_id:
            raise BlockRefused(f"block is for chain {header.chain_id!r}")
        if header.height != head.height + 1:
            raise BlockRefused(f"height {header.height} does not follow the head {head.height}")
        if header.prev_block_hash != self._prev_block_hash():
            raise BlockRefused("previous block hash is not the head's")
        if header.time_ms <= head.time_ms:
            raise BlockRefused(f"time {header.time_ms} is not after the previous block's {head.time_ms}")
        validators = self.validator_set(header.height)
        if header.validators_hash != validators.hash:
            raise BlockRefused("validators_hash is not the hash of this height's validator set")
        if header.proposer not in validators:
            raise BlockRefused("the proposer is not a validator of this height")
        seen: set[bytes] = set()
        for evidence in block.evidence:
            key = evidence_id(evidence)
            problem = "evidence repeated in the block" if key in seen else self._evidence_problem(evidence, header.height)
            if problem is not None:
                raise BlockRefused(problem)
            seen.add(key)
        block_input = BlockInput(header.height, header.time_ms, block.txs, _slashes(block.evidence))
        outcome = _execution(self.ledger, block_input, self.verified, self.mempool.known_effects())
        if self.check_recorded_effects:
            full = _execution(self.ledger, block_input, self.verified, None)
            check_invariant(_same_outcome(outcome, full), f"height {header.height}: executing with recorded effects differs from a full run")
        if isinstance(outcome, Rejected):
            raise BlockRefused(str(outcome))
        executed = outcome
        if executed.state_root != header.state_root:
            raise BlockRefused("state root after execution differs from the header's")
        return executed

    # committing -------------------------------------------------------------------------------------
    def commit(self, block_hash: bytes, block_bytes: bytes, certificate: CommitCertificate) -> CommittedBlock:
        """Write a decided block (its validity already established by the engine)."""
        block = self.decode(block_bytes)
        check_invariant(block is not None and block.hash == block_hash, "the decided block decodes to its hash")
        assert block is not None
        executed = self._executed.get(block_hash)
        if executed is None:
            executed = self._check_and_execute(block)
        return self._commit(block, block_bytes, certificate, executed)

    def apply_synced(self, block_bytes: bytes, certificate_bytes: bytes) -> CommittedBlock:
        """Block sync: verify the certificate against the set of the block's height, then commit."""
        try:
            block = Block.from_bytes(block_bytes)
            certificate = CommitCertificate.from_bytes(certificate_bytes)
        except MessageInvalid as exc:
            raise BlockRefused(f"undecodable: {exc}") from None
        height = self.ledger.head.height + 1
        if block.header.height != height or certificate.height != height:
            raise BlockRefused(f"expected height {height}, got block {block.header.height} certificate {certificate.height}")
        if certificate.block_hash != block.hash:
            raise BlockRefused("the certificate is for another block")
        try:
            certificate.verify(self.validator_set(height), self.chain_id)
        except MessageInvalid as exc:
            raise BlockRefused(str(exc)) from None
        executed = self._executed.get(block.hash) or self._check_and_execute(block)
        return self._commit(block, block_bytes, certificate, executed)

    def _commit(self, block: Block, data: bytes, certificate: CommitCertificate, executed: ExecutedBlock) -> CommittedBlock:
        height = block.header.height
        records = self.blocks.commit_records(block, data, certificate, self.validator_infos(height), executed.txs)
        self.ledger.commit(executed, extra=records)
        check_invariant(self.ledger.state_root == block.header.state_root, "committed state root is the header's")
        self._executed.clear()
        self.evidence.remove(block.evidence)
        return CommittedBlock(block, data, certificate, executed.txs)


def _execution(ledger: LedgerDB, block: BlockInput, verified: SignatureCache, known: Any) -> ExecutedBlock | Rejected:
    """`LedgerDB.execute`'s result, or the Rejected it raised."""
    try:
        return ledger.execute(block, verified, known)
    except Rejected as exc:
        return detached(exc)


def _same_outcome(a: ExecutedBlock | Rejected, b: ExecutedBlock | Rejected) -> bool:
    if isinstance(a, Rejected) or isinstance(b, Rejected):
        return isinstance(a, Rejected) and isinstance(b, Rejected) and (a.code, a.message) == (b.code, b.message)
    return (a.encoded, a.state_root, [tx.hash for tx in a.txs]) == (b.encoded, b.state_root, [tx.hash for tx in b.txs])


def _slashes(evidence: tuple[DuplicateVoteEvidence, ...]) -> tuple[bytes, ...]:
    """Offenders in order of first appearance, each once."""
    return tuple(dict.fromkeys(e.validator for e in evidence))
