"""Where an auditor's blocks come from: a node's stores (`--home`) or any node's RPC (`--rpc`).

A source is trusted for nothing. It only hands over bytes; `cli.audit.replay` checks every one of
them. A source that cannot even decode a block raises `BlockUnreadable` naming the height, which the
replay reports as the first divergence.

The BlockSource interface (`BlockSource` below):

    genesis: Genesis            the genesis the auditor replays from (the auditor's own file)
    head_height() -> int        the last height the source holds
    blocks(from_height) -> Iterator[SourceBlock]
                                heights from_height, from_height+1, ... head_height(), in order
    describe() -> str           one line naming the source, for the summary
    close() -> None

A source over a node's own store also offers `stored_root(height)` and `stored_state()`, the roots
and the state the node itself recorded (`NodeStateSource`): the replay compares them with its own,
so tampering with the node's state is caught too. It also offers `stored_blocks(from_height)`, the
same blocks as `StoredBlock`s, their bytes not yet decoded (`StoredBlockSource`): `StoredBlock.decode()`
gives the `SourceBlock` or raises `BlockUnreadable`, in whichever process calls it (the replay's
pool decodes them, next to the signature checks).

A `SourceBlock` is one committed block as the source has it: its height, its header, its raw
transactions, the addresses its evidence slashes (in order of first appearance, each once), the
evidence itself when the source carries it whole (None when it carries a summary only, as the RPC
does), and the commit certificate that decided it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from consensus.block import Block, Header
from consensus.block_store import BlockStore
from consensus.errors import MessageInvalid
from consensus.evidence import DuplicateVoteEvidence
from consensus.types import CommitCertificate, CommitSignature
from ledger import Genesis, Rejected
from ledger.ledger_db import META_GENESIS, root_key
from ledger.state import STATE_PREFIX, decode_record
from ledger.store import Store

__all__ = [
    "BlockSource",
    "BlockUnreadable",
    "NodeStateSource",
    "SourceBlock",
    "SourceError",
    "StoreBlockSource",
    "StoredBlock",
    "StoredBlockSource",
    "open_home_source",
    "RpcBlockSource",
    "slashes_of",
]

RPC_PREFETCH_BLOCKS = 16
"""Blocks requested ahead of the replay over RPC (bounded: at most this many answers in memory)."""


class SourceError(Exception):
    """The source cannot be used at all (no such home, store locked, node unreachable, wrong genesis)."""


class BlockUnreadable(Exception):
    """The source holds something at `height` that is not a well-formed block with its certificate."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"height {height}: {reason}")
        self.height = height
        self.reason = reason


@dataclass(frozen=True)
class SourceBlock:
    height: int
    header: Header
    txs: tuple[bytes, ...]
    slashes: tuple[bytes, ...]
    evidence: tuple[DuplicateVoteEvidence, ...] | None
    certificate: CommitCertificate


class BlockSource(Protocol):
    genesis: Genesis

    def head_height(self) -> int: ...

    def blocks(self, from_height: int = 1) -> Iterator[SourceBlock]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


@runtime_checkable
class NodeStateSource(Protocol):
    def stored_root(self, height: int) -> bytes | None: ...

    def stored_state(self) -> Iterator[tuple[bytes, bytes]]: ...


@dataclass(frozen=True)
class StoredBlock:
    """A block and its commit certificate as a node's store holds them (None: missing)."""

    height: int
    block: bytes | None
    certificate: bytes | None

    def decode(self) -> SourceBlock:
        height = self.height
        if self.block is None:
            raise BlockUnreadable(height, "the block is missing from the store")
        if self.certificate is None:
            raise BlockUnreadable(height, "the commit certificate is missing from the store")
        try:
            block = Block.from_bytes(self.block)
        except MessageInvalid as exc:
            raise BlockUnreadable(height, f"the stored block does not decode: {exc}") from None
        try:
            certificate = CommitCertificate.from_bytes(self.certificate)
        except MessageInvalid as exc:
            raise BlockUnreadable(height, f"the stored commit certificate does not decode: {exc}") from None
        return SourceBlock(
            height, block.header, block.txs, slashes_of(e.validator for e in block.evidence), block.evidence, certificate
        )


@runtime_checkable
class StoredBlockSource(Protocol):
    def stored_blocks(self, from_height: int = 1) -> Iterator[StoredBlock]: ...


def slashes_of(validators: Any) -> tuple[bytes, ...]:
    """Offenders in order of first appearance, each once (the ledger app's rule)."""
    return tuple(dict.fromkeys(validators))


# a node's stores ---------------------------------------------------------------------------------------
class StoreBlockSource:
    """Blocks and certificates from a node's store (consensus/block_store.py's `blk/` and `cert/`).

    Reads only the block records, never the node's state: the replay rebuilds the state itself."""

    def __init__(self, store: Store, genesis: Genesis, name: str = "a node store", owned: bool = False) -> None:
        self.store = store
        self.genesis = genesis
        self._blocks = BlockStore(store)
        self._name = name
        self._owned = owned
        stored = store.get(META_GENESIS)
        if stored is not None and stored != genesis.hash:
            raise SourceError(f"{name} was made from another genesis (hash {stored.hex()[:16]}…, yours {genesis.hash.hex()[:16]}…)")

    def head_height(self) -> int:
        data = self.store.get(STATE_PREFIX + b"c")
        if data is None:
            return 0
        return int(decode_record(b"c", data).height)

    def blocks(self, from_height: int = 1) -> Iterator[SourceBlock]:
        for stored in self.stored_blocks(from_height):
            yield stored.decode()

    def stored_blocks(self, from_height: int = 1) -> Iterator[StoredBlock]:
        head = self.head_height()
        for height in range(from_height, head + 1):
            yield self.stored(height)

    def stored(self, height: int) -> StoredBlock:
        return StoredBlock(height, self._blocks.block_bytes(height), self._blocks.certificate_bytes(height))

    def read(self, height: int) -> SourceBlock:
        return self.stored(height).decode()

    # the node's own state, which a replay compares with its own once it reaches the node's head
    def stored_root(self, height: int) -> bytes | None:
        """The state root the node recorded after `height`."""
        return self.store.get(root_key(height))

    def stored_state(self) -> Iterator[tuple[bytes, bytes]]:
        """The node's state entries (key without the store prefix, value bytes), in key order."""
        for key, value in self.store.iterate(STATE_PREFIX):
            yield key[len(STATE_PREFIX):], value

    def describe(self) -> str:
        return self._name

    def close(self) -> None:
        if self._owned:
            self.store.close()


def open_home_source(home: str | Path, genesis_path: str | Path | None = None) -> StoreBlockSource:
    """The stores of a node home (`hearth node init` layout). The node must be stopped: LevelDB
    allows one process at a time (copy the data directory to audit a running node)."""
    from consensus.config import NodeHome
    from ledger.store import LevelDBStore

    node_home = NodeHome(Path(home))
    genesis = load_genesis(genesis_path or node_home.genesis_path)
    if not node_home.ledger_dir.is_dir():
        raise SourceError(f"no node store at {node_home.ledger_dir}")
    try:
        store = LevelDBStore(str(node_home.ledger_dir))
    except Exception as exc:  # plyvel raises its own IOError subclasses
        raise SourceError(f"cannot open {node_home.ledger_dir} ({exc}); stop the node or audit a copy of its data directory") from None
    return StoreBlockSource(store, genesis, f"node home {home}", owned=True)


def load_genesis(path: str | Path) -> Genesis:
    try:
        return Genesis.from_file(str(path))
    except FileNotFoundError:
        raise SourceError(f"no genesis file at {path}") from None
    except Rejected as exc:
        raise SourceError(f"{path}: {exc.message}") from None


# any node's RPC -------------------------------------------------------------------------------------------
class RpcBlockSource:
    """Blocks from the JSON-RPC `block` method of any node (consensus/rpc_methods.py).

    `client` has `call(method, **params)` (cli.rpc_client.RpcClient). The RPC serves each piece of
    evidence with its wire bytes, so its hash and equivocation signatures are checked as from a
    store. A node that serves only the summary (validator, height, round, kind) gives blocks with
    their slashes but not the evidence: then only the slashes' effect is checked, through the state
    root the certificate signs."""

    def __init__(self, client: Any, genesis: Genesis, url: str = "") -> None:
        self.client = client
        self.genesis = genesis
        self._url = url
        status = self._call("status")
        if not isinstance(status, dict):
            raise SourceError("the node's status answer is not an object")
        served = status.get("genesis_hash")
        if served is not None and served != genesis.hash.hex():
            raise SourceError(f"the node runs another genesis (hash {str(served)[:16]}…, yours {genesis.hash.hex()[:16]}…)")
        if status.get("chain_id") not in (None, genesis.chain_id):
            raise SourceError(f"the node runs chain {status.get('chain_id')!r}, your genesis is {genesis.chain_id!r}")
        self._head = int(status.get("height", 0))

    def _call(self, method: str, **params: Any) -> Any:
        """A call; the client's errors (unreachable, refused) propagate: they are not the chain's."""
        return self.client.call(method, **params)

    def head_height(self) -> int:
        return self._head

    def blocks(self, from_height: int = 1) -> Iterator[SourceBlock]:
        heights = range(from_height, self._head + 1)
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="audit-rpc") as pool:
            pending = [pool.submit(self._call, "block", height=h) for h in heights[:RPC_PREFETCH_BLOCKS]]
            next_index = len(pending)
            for height in heights:
                answer = pending.pop(0).result()
                if next_index < len(heights):
                    pending.append(pool.submit(self._call, "block", height=heights[next_index]))
                    next_index += 1
                yield block_from_json(height, answer)

    def describe(self) -> str:
        return f"RPC {self._url}" if self._url else "RPC"

    def close(self) -> None:
        pass


def block_from_json(height: int, answer: Any) -> SourceBlock:
    """A `block` answer (consensus/node.py get_block) as a SourceBlock; BlockUnreadable if malformed."""
    if answer is None:
        raise BlockUnreadable(height, "the node does not have this block")
    try:
        h = answer["header"]
        header = Header(
            chain_id=h["chain_id"],
            height=h["height"],
            time_ms=h["time_ms"],
            prev_block_hash=bytes.fromhex(h["prev_block_hash"]),
            txs_hash=bytes.fromhex(h["txs_hash"]),
            evidence_hash=bytes.fromhex(h["evidence_hash"]),
            state_root=bytes.fromhex(h["state_root"]),
            proposer=bytes.fromhex(h["proposer"]),
            validators_hash=bytes.fromhex(h["validators_hash"]),
        )
        txs = tuple(bytes.fromhex(t) for t in answer["txs"])
        served = answer.get("evidence", [])
        slashes = slashes_of(bytes.fromhex(e["validator"]) for e in served)
        evidence = (
            tuple(DuplicateVoteEvidence.from_bytes(bytes.fromhex(e["bytes"])) for e in served)
            if all("bytes" in e for e in served)
            else None
        )
        c = answer["commit"]
        certificate = CommitCertificate(
            c["height"],
            c["round"],
            bytes.fromhex(c["block_hash"]),
            tuple(CommitSignature(bytes.fromhex(s["validator"]), bytes.fromhex(s["signature"])) for s in c["signatures"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError, MessageInvalid) as exc:
        raise BlockUnreadable(height, f"the node's block answer is malformed: {type(exc).__name__}: {exc}") from None
    if evidence is not None and slashes != slashes_of(e.validator for e in evidence):
        raise BlockUnreadable(height, "the node's evidence summary names other validators than its evidence")
    return SourceBlock(height, header, txs, slashes, evidence, certificate)
