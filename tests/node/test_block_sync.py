"""Block sync's decisions: when to ask, whom, how much; and what a peer serves."""

from __future__ import annotations

from consensus.block_sync import MAX_BLOCKS_PER_REQUEST, BlockSync, serve_blocks


def test_no_request_when_not_behind() -> None:
    sync = BlockSync()
    sync.on_status("a", 5)
    assert sync.next_request(head=5, now_s=0) is None
    assert not sync.is_syncing(5)


def test_one_behind_waits_for_the_grace_period() -> None:
    sync = BlockSync(lag_grace_s=1.0)
    sync.on_status("a", 6)
    assert sync.next_request(head=5, now_s=10.0) is None  # the peer just committed first
    assert sync.next_request(head=5, now_s=10.5) is None
    request = sync.next_request(head=5, now_s=11.0)
    assert request is not None and (request.peer, request.from_height, request.count) == ("a", 6, 1)


def test_two_behind_asks_at_once_in_bounded_batches() -> None:
    sync = BlockSync()
    sync.on_status("a", 500)
    request = sync.next_request(head=5, now_s=0)
    assert request is not None and request.from_height == 6 and request.count == MAX_BLOCKS_PER_REQUEST
    assert sync.is_syncing(5)
    assert sync.next_request(head=5, now_s=1) is None  # one request outstanding at a time


def test_expired_or_failed_peer_is_skipped_until_it_reports_a_new_height() -> None:
    sync = BlockSync(request_timeout_s=5)
    sync.on_status("a", 50)
    sync.on_status("b", 50)
    first = sync.next_request(head=5, now_s=0)
    assert first is not None
    second = sync.next_request(head=5, now_s=6)  # the first expired
    assert second is not None and second.peer != first.peer
    sync.on_response(second.peer, ok=False)
    assert sync.next_request(head=5, now_s=7) is None  # both are marked failed
    sync.on_status(first.peer, 51)
    again = sync.next_request(head=5, now_s=8)
    assert again is not None and again.peer == first.peer


def test_disconnect_forgets_the_peer_and_its_request() -> None:
    sync = BlockSync()
    sync.on_status("a", 9)
    assert sync.next_request(head=1, now_s=0) is not None
    sync.on_disconnect("a")
    assert sync.outstanding is None and sync.best_height() == 0


class FakeBlocks:
    def __init__(self, sizes: dict[int, int]) -> None:
        self.sizes = sizes

    def block_bytes(self, height: int) -> bytes | None:
        return b"b" * self.sizes[height] if height in self.sizes else None

    def certificate_bytes(self, height: int) -> bytes | None:
        return b"c" if height in self.sizes else None


def test_serve_blocks_fits_the_byte_budget_but_always_sends_one() -> None:
    blocks = FakeBlocks({h: 100 for h in range(1, 11)})
    assert len(serve_blocks(blocks, 1, 10, head=10, max_bytes=1 << 20)) == 10  # type: ignore[arg-type]
    assert len(serve_blocks(blocks, 1, 10, head=10, max_bytes=250)) == 2  # type: ignore[arg-type]
    assert len(serve_blocks(blocks, 1, 10, head=10, max_bytes=10)) == 1  # type: ignore[arg-type]
    assert serve_blocks(blocks, 11, 10, head=10, max_bytes=1 << 20) == []  # type: ignore[arg-type]
    assert len(serve_blocks(blocks, 4, 100, head=8, max_bytes=1 << 20)) == 5  # type: ignore[arg-type]
