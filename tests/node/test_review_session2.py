"""Found in review of transaction gossip, the incremental mempool re-check and the signature workers:
each test failed on the code as reviewed and passes on the fix."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker, spawn
from pathlib import Path
from types import SimpleNamespace

import pytest

from consensus.mempool import Mempool
from consensus.node import TX_BATCH_QUEUE_MAX, Node
from consensus.verifier import Verifier
from ledger import BlockInput, SignatureCache
from ledger.crypto import sha256
from tests.ledger.helpers import CHAIN_ID, addr, community_genesis, council_tx, new_ledger, signed_tx, transfer_tx
from tests.node.test_mempool import _pool_state, update_running_every_entry
from tests.node.test_node_inprocess import lone_validator_home

PEER_A = SimpleNamespace(name="a", node_id=b"\x0a" * 32)
PEER_B = SimpleNamespace(name="b", node_id=b"\x0b" * 32)


# The incremental re-check -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "units"),
    [
        (council_tx("provider_add", 0, resource="water", provider=addr(7)), ()),
        (signed_tx("housing_apply", 3, 0, household=2, needs=1), ()),  # joins the waiting list
        (signed_tx("housing_apply", 3, 0, household=2, needs=1), (("u1", 2),)),  # granted a unit
    ],
    ids=["provider_add", "housing_apply_waiting", "housing_apply_granted"],
)
def test_incremental_recheck_keeps_writes_made_at_an_older_head_height(raw: bytes, units: tuple[tuple[str, int], ...]) -> None:
    """An entry whose writes embed the head's height (provider_add: Provider(registered_height);
    housing_apply: the application's applied_height or the right's granted_height) must run again
    on a new head, as a full re-check does: its recorded reads keep the head record (only the types
    in HEAD_PERIOD_ONLY_TYPES leave it out for the period). Were it kept, it would carry the height
    of the head it was first checked on and the pools would differ (the comparison the module's own
    hypothesis test makes, `_pool_state`, which offers transfers only)."""
    incremental, full = (Mempool(new_ledger(community_genesis(units=units)), SignatureCache()) for _ in range(2))
    for pool in (incremental, full):
        pool.add(raw)
        ledger = pool._ledger
        executed = ledger.execute(BlockInput(1, 1, ()), SignatureCache())  # same period, height 0 -> 1
        ledger.commit(executed)
        pool.update([]) if pool is incremental else update_running_every_entry(pool, [])
        assert not pool.rechecking
    assert _pool_state(incremental) == _pool_state(full)


# Gossip: what is being checked ---------------------------------------------------------------------------
def _unstarted_node(tmp_path: Path) -> Node:
    """A node whose gossip queue exists but whose check loops do not run, so what it received stays
    'being checked' (node._arriving) for as long as the test needs."""
    node = Node(lone_validator_home(tmp_path).root)
    node._tx_batches = asyncio.Queue(TX_BATCH_QUEUE_MAX)
    return node


def test_the_fetch_timer_does_not_forget_transactions_being_checked(tmp_path: Path) -> None:
    """node.py `_fetch_wanted` begins with `self._arriving: set[bytes] = set()` (a copy of the
    attribute's declaration): every fetch turn forgets which transactions are queued for their
    signature check. Then an announcement of one of them is waited for and fetched (GOSSIP-3: a
    node announced a hash it 'is checking now' waits for nothing), and a second whole copy is queued
    and checked again."""

    async def main() -> None:
        node = _unstarted_node(tmp_path)
        try:
            raw = transfer_tx(1, 2, 1, 0)
            tx_hash = sha256(raw)
            node._on_frame(PEER_A, "txs", [raw])  # received whole: queued for its check
            assert tx_hash in node._arriving and node._tx_batches.qsize() == 1
            node._on_frame(PEER_B, "tx_hashes", [b"\x01" * 32])  # any announcement schedules a fetch turn
            node._fetch_wanted()  # that turn (what the timer calls)
            node._on_frame(PEER_B, "tx_hashes", [tx_hash])
            assert tx_hash not in node._wanted, "a transaction being checked is waited for and will be fetched"
            node._on_frame(PEER_B, "txs", [raw])
            assert node._tx_batches.qsize() == 1, "a transaction being checked was queued a second time"
        finally:
            node.store.close()

    asyncio.run(main())


def test_unchecked_peer_transactions_are_bounded_in_number_not_only_in_frames(tmp_path: Path) -> None:
    """node.py `_receive_txs` bounds the queue for signature checks at TX_BATCH_QUEUE_MAX frames,
    whatever a frame holds: one peer's frames of tiny junk transactions (refused only once checked)
    are all held, with a hash and an `_arriving` entry each. Here 256 frames of 2,000 junk
    transactions (17 KB each) queue 512,000 unchecked transactions, ten times what the whole
    mempool may hold; with frames at p2p.max_message_bytes (8 MiB, ~1.2M five-byte
    transactions, ~150 MB of node memory each) the same bound is tens of GB."""

    async def main() -> None:
        node = _unstarted_node(tmp_path)
        try:
            n = 0
            for _ in range(TX_BATCH_QUEUE_MAX + 1):
                node._on_frame(PEER_A, "txs", [b"\x00" + (n + i).to_bytes(4, "big") for i in range(2_000)])
                n += 2_000
            queued = sum(len(batch) for _, batch, _ in node._tx_batches._queue)  # type: ignore[attr-defined]
            limit = node.mempool.max_txs
            assert queued <= limit, f"{queued} unchecked peer transactions queued (the mempool holds at most {limit})"
        finally:
            node.store.close()

    asyncio.run(main())


# Signature workers that keep failing -------------------------------------------------------------------
@contextmanager
def workers_that_cannot_start() -> Iterator[None]:
    """Every worker process the pools spawn exits at once (its executable is /bin/false), so each
    pool breaks, its replacement too: the case verifier.py promises to handle by checking in this
    process ("if that fails too, the batch is checked in this process")."""
    resource_tracker.ensure_running()  # started with the real interpreter, before the switch
    previous = spawn.get_executable()
    multiprocessing.set_executable("/bin/false")
    try:
        yield
    finally:
        multiprocessing.set_executable(previous)


def test_concurrent_checks_on_a_pool_that_keeps_breaking_all_fall_back_to_this_process() -> None:
    """verifier.py `check`: the first call to give up sets `self._pool = None` and falls back; a
    second call handling its own BrokenProcessPool then runs `self._pool.shutdown(...)` on None and
    raises AttributeError (and a call that restarted the pool has that new pool shut down, its batch
    cancelled, by the next call's handler)."""
    raws = [transfer_tx(1, 2, 5, n) for n in range(3)]

    async def main() -> list[object]:
        verifier = Verifier(workers=1)
        verifier.start()
        try:
            calls = [asyncio.ensure_future(verifier.check(raws, CHAIN_ID)) for _ in range(2)]
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        finally:
            verifier.stop()

    with workers_that_cannot_start():
        results = asyncio.run(main())
    for result in results:
        assert not isinstance(result, BaseException), f"a check raised {result!r}"
        assert [tx.hash for tx in result] == [sha256(raw) for raw in raws]  # type: ignore[union-attr]


def test_a_node_whose_signature_workers_cannot_start_keeps_serving_clients(tmp_path: Path) -> None:
    """Through the node: two RPC submissions a few loop turns apart are two `_admit_submitted`
    tasks on the priority verifier; its AttributeError escapes the task and `_task_done` stops the
    node (fatal) instead of the transactions being checked in this process."""
    home = lone_validator_home(tmp_path)

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            first = asyncio.ensure_future(node.submit_tx(transfer_tx(1, 2, 1, 0)))
            for _ in range(10_000):  # loop turns, not time: the second goes while the first is at the workers
                if node._submitted_done is not None:
                    break
                await asyncio.sleep(0)
            assert node._submitted_done is not None, "the first submission's check did not start"
            second = asyncio.ensure_future(node.submit_tx(transfer_tx(1, 2, 1, 1)))
            await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 30)
            await asyncio.sleep(0)  # let a failed task's done-callback run
            assert node._fatal is None, f"node stopped: {node._fatal!r}"
            assert first.result() == sha256(transfer_tx(1, 2, 1, 0)) and second.result() == sha256(transfer_tx(1, 2, 1, 1))
        finally:
            await node.stop()

    with workers_that_cannot_start():
        asyncio.run(main())



# Client submissions in order ------------------------------------------------------------------------------
def test_a_clients_consecutive_submissions_are_admitted_in_order_across_a_recheck(tmp_path: Path) -> None:
    """node.py `submit_tx`: submissions resume from their signature check in order
    (`_submitted_done`), but then each waits for `_mempool_ready` on its own. When the re-check's
    last chunk ends (`_recheck_loop` sets the event) in the loop turn in which a later submission's
    check answered, the later one runs first, finds the event set and is admitted before the earlier
    one, still queued on the event: a client's nonce 1 is refused NONCE_FUTURE although its nonce 0
    was submitted first (and is admitted a moment later)."""
    home = lone_validator_home(tmp_path)
    n0, n1 = transfer_tx(1, 2, 1, 0), transfer_tx(1, 2, 1, 1)

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            assert node._mempool_ready is not None
            ready = node._mempool_ready
            ready.clear()  # a re-check is running (what _after_commit does while mempool.rechecking)
            first = asyncio.ensure_future(node.submit_tx(n0))
            for _ in range(3_000):  # bounded: n0's check done, n0 now waits for the re-check
                if ready._waiters or first.done():  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.01)
            assert not first.done() and ready._waiters, "nonce 0 should be waiting for the re-check"  # type: ignore[attr-defined]
            real_check = node._priority_verifier.check

            async def answer_as_the_recheck_ends(raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[object]:
                result = await real_check(raws, chain_id, hashes)
                asyncio.get_running_loop().call_soon(ready.set)  # the re-check's last chunk, this same turn
                return result  # type: ignore[return-value]

            node._priority_verifier.check = answer_as_the_recheck_ends  # type: ignore[method-assign]
            second = asyncio.ensure_future(node.submit_tx(n1))
            await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 30)
            assert first.result() == sha256(n0)
            assert not isinstance(second.exception(), Exception), f"nonce 1 refused: {second.exception()!r}"
            assert second.result() == sha256(n1)
        finally:
            await node.stop()

    asyncio.run(main())
