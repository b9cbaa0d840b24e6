"""What the JSON-RPC server needs from a running node, and nothing more.

The RPC server (consensus/rpc_server.py) is written against `NodeServices` alone, so it serves the
real node and the in-process fake of the tests (tests/rpc/fake_node.py) alike. The node runtime
implements this protocol; `BlockFeed` and `tx_addresses` are helpers it may use to do so.

Threading: the RPC calls every method on the node's event loop thread and reads `ledger` there.
The node must commit blocks to `ledger` on that same thread, so that a read (say, the head's
height and its state root) never sees half of a commit.

JSON-ready means: dicts, lists, str, int, bool and None only; byte strings as lowercase hex.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from consensus.mempool import MempoolFull
from ledger import Genesis, LedgerDB
from ledger.constants import ADDRESS_BYTES
from ledger.tx import Tx

__all__ = ["BlockFeed", "MempoolFull", "NodeServices", "TooManySubscribers", "TxIndexDisabled", "TxResult", "tx_addresses"]


class TxIndexDisabled(Exception):
    """This node keeps no transaction indexes (`tx_index.enabled` is false in its config), so it
    cannot look a committed transaction up by hash or list an account's."""


class TooManySubscribers(Exception):
    """The block feed has as many subscribers as it allows."""


@dataclass(frozen=True)
class TxResult:
    """A committed transaction: where it is in the chain and what executing it did.

    A block only carries transactions that applied, so `result` is `{"code": 0}` unless a later
    transaction type reports more (JSON-ready, for example events).
    """

    hash: bytes
    height: int
    index: int  # position in its block, from 0
    time_ms: int  # its block's time
    raw: bytes  # the signed canonical bytes
    result: Mapping[str, Any] = field(default_factory=lambda: {"code": 0})


class NodeServices(Protocol):
    """The node as the RPC server sees it."""

    @property
    def ledger(self) -> LedgerDB:
        """The committed ledger. The RPC only reads it (`head`, `state_root`, `view()`, `prove`)."""
        ...

    @property
    def genesis(self) -> Genesis: ...

    @property
    def chain_id(self) -> str: ...

    async def submit_tx(self, raw: bytes) -> bytes:
        """Admit a signed transaction to the mempool and return its hash.

        Raises ledger.Rejected (its code is what the client sees) if the transaction cannot apply
        on top of the head and the pending ones, and consensus.mempool.MempoolFull when the
        mempool is at its bound. A transaction already pending returns its hash again.
        """
        ...

    async def submit_txs(self, raws: list[bytes]) -> list[bytes | Exception]:
        """`submit_tx` for many at once, in order: for each its hash or the Rejected / MempoolFull
        that refused it (the JSON-RPC server's path for a batch of submit_tx calls)."""
        ...

    async def wait_for_tx(self, tx_hash: bytes, timeout_s: float) -> TxResult | None:
        """The transaction's result once committed, or None if it is not committed within timeout_s.

        Returns at once if it is already committed (so submit-then-wait has no race).
        """
        ...

    def get_tx(self, tx_hash: bytes) -> TxResult | None:
        """A committed transaction by hash, or None if this node does not know it. Raises
        TxIndexDisabled on a node that keeps no transaction indexes."""
        ...

    def get_account_txs(self, address: bytes, limit: int, before: tuple[int, int] | None) -> list[TxResult]:
        """Up to `limit` committed transactions that name `address` (see `tx_addresses`), newest
        first, each positioned (height, index) strictly before `before` (None: from the head down).
        Raises TxIndexDisabled on a node that keeps no transaction indexes."""
        ...

    def get_block(self, height: int) -> dict[str, Any] | None:
        """A committed block, JSON-ready, or None if this node does not have it:
        `{"header": {...}, "txs": [hex, ...], "commit": {...}}`. The header has at least
        `height`, `hash` and `time_ms`; `commit` is the commit certificate (the precommits)."""
        ...

    def validators(self, height: int) -> list[dict[str, Any]] | None:
        """The validator set that signs blocks at `height`, JSON-ready, or None if unknown.
        Each entry has at least `address`, `name`, `stake` and `power`."""
        ...

    def status_extra(self) -> dict[str, Any]:
        """What only the node knows: `syncing` (bool), `peers` (int), `is_validator` (bool),
        `block_hash` (hex of the head block's hash, None at height 0), `tx_index_from_height`
        (the first height its transaction indexes cover, None when it keeps none)."""
        ...

    def subscribe_blocks(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue that receives each newly committed block's summary:
        `{"header": {...}, "tx_hashes": [hex, ...]}`. The node never waits on it: a subscriber that
        falls behind gets None and no more blocks (`BlockFeed` does exactly this).
        Raises TooManySubscribers at the node's bound."""
        ...

    def unsubscribe_blocks(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop feeding `queue`. Unknown queues are ignored."""
        ...


class BlockFeed:
    """Fans committed blocks out to subscribers without ever blocking the publisher.

    Each subscriber has a bounded queue. One that is full when a block arrives has fallen behind:
    it is dropped, its queue emptied and closed with None, so it knows it missed blocks.
    """

    def __init__(self, queue_max: int = 64, subscribers_max: int = 1024) -> None:
        self._queue_max = queue_max
        self._subscribers_max = subscribers_max
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        if len(self._queues) >= self._subscribers_max:
            raise TooManySubscribers(f"the block feed allows {self._subscribers_max} subscribers")
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self._queue_max)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)

    def publish(self, summary: dict[str, Any]) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(summary)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    def __len__(self) -> int:
        return len(self._queues)


def tx_addresses(tx: Tx) -> set[bytes]:
    """The accounts a transaction names: its sender and every address-sized byte field of its body
    (recipient, member, ...). What a node indexes for `get_account_txs`."""
    found = {value for value in tx.body.values() if type(value) is bytes and len(value) == ADDRESS_BYTES}  # msgpack's bin is bytes
    found.add(tx.sender)
    return found
