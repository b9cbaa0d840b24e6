"""Block sync: a node behind its peers fetches committed blocks with their certificates and applies them.

Protocol (frames of the peer layer):

    status      {"height": H}                 a node's committed head, sent on connect and every
                                              gossip interval
    get_blocks  {"from": h, "count": n}       ask for blocks h .. h+n-1 (n <= MAX_BLOCKS_PER_REQUEST)
    blocks      {"items": [[block, certificate], ...]}   consecutive blocks from h, as many as fit
                                              the peer's frame limit (at least one)

The requester trusts nothing in a response: each block is applied only if it is the next height,
its certificate carries precommits of more than 2/3 of the power of the validator set of that
height (the set its own ledger state gives, starting from genesis), the certificate names the
block's hash, and executing the block gives the header's state root (consensus/app_ledger.py,
`apply_synced`). A peer whose response fails is not asked again until it reports a new height.

When to ask: a peer two or more heights ahead means this node missed a decision; a peer one
height ahead is normal for a moment (it committed first), so the node asks only if that lasts
`lag_grace_s`. One request is outstanding at a time; an unanswered one expires after
`request_timeout_s` and another peer is asked.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from consensus.block_store import BlockStore

__all__ = ["BlockSync", "SyncRequest", "MAX_BLOCKS_PER_REQUEST", "serve_blocks"]

MAX_BLOCKS_PER_REQUEST = 32


@dataclass
class SyncRequest:
    peer: Hashable
    from_height: int
    count: int
    sent_s: float


@dataclass
class BlockSync:
    lag_grace_s: float = 1.0
    request_timeout_s: float = 5.0
    peer_heights: dict[Hashable, int] = field(default_factory=dict)
    failed: set[Hashable] = field(default_factory=set)
    outstanding: SyncRequest | None = None
    behind_since_s: float | None = None
    _next_peer: int = 0

    def on_status(self, peer: Hashable, height: int) -> None:
        if height != self.peer_heights.get(peer):
            self.failed.discard(peer)
        self.peer_heights[peer] = height

    def on_disconnect(self, peer: Hashable) -> None:
        self.peer_heights.pop(peer, None)
        self.failed.discard(peer)
        if self.outstanding is not None and self.outstanding.peer == peer:
            self.outstanding = None

    def best_height(self) -> int:
        return max(self.peer_heights.values(), default=0)

    def is_syncing(self, head: int) -> bool:
        return self.best_height() > head + 1

    def next_request(self, head: int, now_s: float) -> SyncRequest | None:
        """What to ask for now, if anything; the caller sends it."""
        if self.outstanding is not None:
            if now_s - self.outstanding.sent_s < self.request_timeout_s:
                return None
            self.failed.add(self.outstanding.peer)
            self.outstanding = None
        best = self.best_height()
        if best <= head:
            self.behind_since_s = None
            return None
        if self.behind_since_s is None:
            self.behind_since_s = now_s
        if best == head + 1 and now_s - self.behind_since_s < self.lag_grace_s:
            return None
        candidates = sorted(
            (p for p, h in self.peer_heights.items() if h > head and p not in self.failed), key=repr
        )
        if not candidates:
            return None
        peer = candidates[self._next_peer % len(candidates)]
        self._next_peer += 1
        count = min(MAX_BLOCKS_PER_REQUEST, self.peer_heights[peer] - head)
        self.outstanding = SyncRequest(peer, head + 1, count, now_s)
        return self.outstanding

    def on_response(self, peer: Hashable, ok: bool) -> None:
        if self.outstanding is not None and self.outstanding.peer == peer:
            self.outstanding = None
        if not ok:
            self.failed.add(peer)

    def on_progress(self, now_s: float) -> None:
        """The head moved: the lag clock restarts."""
        self.behind_since_s = None


def serve_blocks(blocks: BlockStore, from_height: int, count: int, head: int, max_bytes: int) -> list[list[bytes]]:
    """Consecutive [block, certificate] pairs from `from_height`, at least one if there is any, and
    no more than fit in `max_bytes`."""
    items: list[list[bytes]] = []
    total = 0
    last = min(head, from_height + min(count, MAX_BLOCKS_PER_REQUEST) - 1)
    for height in range(max(from_height, 1), last + 1):
        block, certificate = blocks.block_bytes(height), blocks.certificate_bytes(height)
        if block is None or certificate is None:
            break
        size = len(block) + len(certificate) + 16
        if items and total + size > max_bytes:
            break
        items.append([block, certificate])
        total += size
    return items
