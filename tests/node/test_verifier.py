"""Signature checks in worker processes: the same outcome as checking here, and a broken pool recovers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from consensus.verifier import INLINE_CHUNK, InlineChecks, Verifier, check_batch, prevalidate, run_as_batch_job
from ledger import Rejected, Tx, decode_tx
from ledger.tx import SignatureCache, trusted_tx
from ledger.crypto import sha256
from ledger.errors import Code
from tests.ledger.helpers import CHAIN_ID, member_add_tx, signed_tx, transfer_tx
from tests.node.helpers import LoopTurns, collector_off, live_refusals


def batch() -> list[bytes]:
    good = [transfer_tx(1, 2, 5, n) for n in range(3)]
    forged = bytearray(transfer_tx(1, 2, 5, 3))
    forged[-1] ^= 1
    other_chain = transfer_tx(1, 2, 5, 4).replace(CHAIN_ID.encode(), b"x" * len(CHAIN_ID))
    return [*good, bytes(forged), b"\x00garbage", other_chain]


def outcome(items: list[Tx | Rejected]) -> list[object]:
    return [item.hash if isinstance(item, Tx) else item.code for item in items]


def test_refusals_prevalidate_returns_hold_no_frames() -> None:
    """Neither a malformed transaction's refusal nor a bad signature's keeps its traceback (or the
    decoder's exception it was raised from): kept in the list of results, it would hold that list's
    frame and so itself, a cycle only the collector frees (ledger `detached`)."""
    forged = bytearray(transfer_tx(1, 2, 10, 0))
    forged[-1] ^= 1
    with collector_off():
        before = live_refusals()
        out = prevalidate([b"\x00garbage", bytes(forged), transfer_tx(1, 2, 10, 1)], CHAIN_ID)
        assert [r.code if isinstance(r, Rejected) else "ok" for r in out] == [Code.TX_MALFORMED, Code.BAD_SIGNATURE, "ok"]
        assert all(r.__traceback__ is None and r.__context__ is None for r in out if isinstance(r, Rejected))
        del out
        assert live_refusals() == before


def test_workers_reach_the_same_verdicts_as_this_process() -> None:
    raws = batch()

    async def main() -> tuple[list[Tx | Rejected], list[Tx | Rejected]]:
        verifier = Verifier(workers=1)
        verifier.start()
        try:
            with pytest.raises(ValueError):
                await verifier.check(raws, CHAIN_ID, [sha256(raws[0])])
            return await verifier.check(raws, CHAIN_ID), await verifier.check(raws, CHAIN_ID, [sha256(raw) for raw in raws])
        finally:
            verifier.stop()

    checked, given_hashes = asyncio.run(main())
    assert outcome(checked) == outcome(prevalidate(raws, CHAIN_ID)) == outcome(given_hashes)
    assert [tx for tx in given_hashes if isinstance(tx, Tx)] == [tx for tx in checked if isinstance(tx, Tx)]
    codes = [item.code for item in checked if isinstance(item, Rejected)]
    assert Code.BAD_SIGNATURE in codes and Code.TX_MALFORMED in codes
    assert all(isinstance(item, Tx) for item in checked[:3])
    assert check_batch(raws[:1], CHAIN_ID) == [None]


def test_without_workers_the_checks_run_here_in_chunks_with_the_same_verdicts() -> None:
    """Verifier(0): no process started, every verdict as prevalidate's (a batch of more than two
    chunks, with the forged and malformed ones among them), and the event loop gets a turn between
    chunks: a task that counts its turns ran while the check went on."""
    raws = batch() * ((2 * INLINE_CHUNK) // len(batch()) + 2)
    assert len(raws) > 2 * INLINE_CHUNK

    async def main() -> tuple[list[Tx | Rejected], int, list[int]]:
        verifier = Verifier(workers=0)
        verifier.start()
        try:
            async with LoopTurns() as turns:
                checked = await verifier.check(raws, CHAIN_ID, [sha256(raw) for raw in raws])
            return checked, turns.count, verifier.pids()
        finally:
            verifier.stop()

    checked, turns_during, pids = asyncio.run(main())
    assert pids == []
    assert outcome(checked) == outcome(prevalidate(raws, CHAIN_ID))
    assert [tx for tx in checked if isinstance(tx, Tx)] == [decode_tx(raw) for raw in raws if isinstance(prevalidate([raw], CHAIN_ID)[0], Tx)]
    assert turns_during >= len(raws) // INLINE_CHUNK  # one turn between each two chunks, at least


def test_without_workers_a_priority_batch_goes_first_and_a_turn_checks_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's two verifiers without workers share one InlineChecks: a priority batch (a block's
    unseen transactions) queued behind a large gossip batch is answered before it, and however many
    batches wait, each turn of the loop checks at most INLINE_CHUNK transactions."""
    gossip_raws = [transfer_tx(1, 2, 5, n) for n in range(3 * INLINE_CHUNK)]
    block_raws = [transfer_tx(3, 2, 5, n) for n in range(INLINE_CHUNK // 2)]
    checked_per_turn: list[int] = []
    real = prevalidate

    def counting(raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
        checked_per_turn[-1] += len(raws)
        return real(raws, chain_id, hashes)

    async def main() -> list[str]:
        inline = InlineChecks()
        gossip, priority = Verifier(0, inline), Verifier(0, inline, priority=True)
        finished: list[str] = []
        stop = False

        async def turns() -> None:
            while not stop:
                checked_per_turn.append(0)
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(turns())
        await asyncio.sleep(0)

        async def run(name: str, verifier: Verifier, raws: list[bytes]) -> None:
            result = await verifier.check(raws, CHAIN_ID)
            assert outcome(result) == outcome(real(raws, CHAIN_ID))
            finished.append(name)

        first = asyncio.ensure_future(run("gossip", gossip, gossip_raws))
        await asyncio.sleep(0)  # the gossip batch is being checked
        await asyncio.gather(first, run("block", priority, block_raws))
        stop = True
        await counter
        return finished

    monkeypatch.setattr("consensus.verifier.prevalidate", counting)
    finished = asyncio.run(main())
    assert finished == ["block", "gossip"]
    assert sum(checked_per_turn) == len(gossip_raws) + len(block_raws)
    assert max(checked_per_turn) <= INLINE_CHUNK


def test_without_workers_a_signature_another_batch_checked_meanwhile_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the node's SignatureCache, a transaction waiting in a gossip batch that a priority batch
    (a block's unseen transactions) checks first is answered from the cache when its own batch's
    turn comes: each signature checked once, both callers answered as without the cache, and the
    refused ones checked each time (a refusal is not remembered)."""
    shared = [transfer_tx(1, 2, 5, n) for n in range(INLINE_CHUNK // 2)]
    forged = bytearray(transfer_tx(1, 2, 5, INLINE_CHUNK))
    forged[-1] ^= 1
    gossip_raws = [transfer_tx(3, 2, 5, n) for n in range(INLINE_CHUNK)] + shared + [bytes(forged)]
    block_raws = shared[::-1] + [bytes(forged)]
    checked: list[bytes] = []
    real = prevalidate

    def counting(raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
        checked.extend(raws)
        return real(raws, chain_id, hashes)

    async def main() -> tuple[list[Tx | Rejected], list[Tx | Rejected], InlineChecks, SignatureCache]:
        cache = SignatureCache()
        inline = InlineChecks(cache)
        gossip, priority = Verifier(0, inline), Verifier(0, inline, priority=True)
        first = asyncio.ensure_future(gossip.check(gossip_raws, CHAIN_ID))
        await asyncio.sleep(0)  # the gossip batch's first chunk is checked; the shared ones wait
        from_block = await priority.check(block_raws, CHAIN_ID)
        return await first, from_block, inline, cache

    monkeypatch.setattr("consensus.verifier.prevalidate", counting)
    from_gossip, from_block, inline, cache = asyncio.run(main())
    assert outcome(from_gossip) == outcome(real(gossip_raws, CHAIN_ID))
    assert outcome(from_block) == outcome(real(block_raws, CHAIN_ID))
    assert sorted(checked) == sorted(gossip_raws[:INLINE_CHUNK] + shared + [bytes(forged)] * 2)
    assert (inline.checked, inline.spared) == (len(checked), len(shared))
    assert all(cache.decoded(raw) is not None for raw in gossip_raws[:-1]) and cache.decoded(bytes(forged)) is None


def test_hashes_the_caller_has_are_used_not_computed_again_and_stay_with_their_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """`check(raws, chain, hashes)` without workers: each decoded transaction carries the hash the
    caller gave for its bytes, none is computed again, and where the cache answers some of a chunk
    the others keep their own hashes (the cache's transactions come back as they are)."""
    raws = [transfer_tx(1, 2, 5, n) for n in range(INLINE_CHUNK + 10)]
    known = raws[3:INLINE_CHUNK + 7:2]  # in the cache already, across both chunks
    hashes = [sha256(raw) for raw in raws]
    computed: list[bytes] = []
    real_sha256 = __import__("hashlib").sha256

    def counting_sha256(data: bytes = b"") -> Any:
        computed.append(data)
        return real_sha256(data)

    async def main() -> list[Tx | Rejected]:
        cache = SignatureCache()
        for tx in prevalidate(known, CHAIN_ID):
            cache.remember(tx)
        monkeypatch.setattr("ledger.tx._sha256", counting_sha256)
        return await Verifier(0, InlineChecks(cache)).check(raws, CHAIN_ID, hashes)

    out = asyncio.run(main())
    assert computed == []
    assert [tx.hash for tx in out] == hashes  # type: ignore[union-attr]
    assert [tx.raw for tx in out] == raws  # type: ignore[union-attr]
    assert decode_tx(raws[0], hashes[0]) == decode_tx(raws[0])
    assert prevalidate(raws[:4], CHAIN_ID, hashes[:4]) == prevalidate(raws[:4], CHAIN_ID)


def test_without_workers_a_check_that_breaks_fails_its_caller_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should prevalidate ever raise (it gives every input a verdict), that batch's caller gets the
    error and the batches behind it are still checked."""
    raws = batch()

    def broken_once(items: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
        monkeypatch.setattr("consensus.verifier.prevalidate", prevalidate)
        raise RuntimeError("a bug")

    monkeypatch.setattr("consensus.verifier.prevalidate", broken_once)

    async def main() -> tuple[object, list[Tx | Rejected]]:
        verifier = Verifier(0)
        both = asyncio.gather(verifier.check(raws, CHAIN_ID), verifier.check(raws, CHAIN_ID), return_exceptions=True)
        first, second = await asyncio.wait_for(both, 10)  # bounded: a broken checker left them waiting
        assert not isinstance(second, BaseException)
        return first, second

    first, second = asyncio.run(main())
    assert isinstance(first, RuntimeError)
    assert outcome(second) == outcome(prevalidate(raws, CHAIN_ID))


def test_a_killed_worker_is_replaced_and_the_batch_still_checked() -> None:
    raws = batch()

    async def main() -> tuple[list[Tx | Rejected], int]:
        verifier = Verifier(workers=1)
        verifier.start()
        try:
            await verifier.check(raws[:1], CHAIN_ID)  # the worker is up
            pids = verifier.pids()
            assert pids
            for pid in pids:  # killed from outside, as an operator's mistake might
                os.kill(pid, signal.SIGKILL)
            checked = await verifier.check(raws, CHAIN_ID)
            return checked, verifier.restarts
        finally:
            verifier.stop()

    checked, restarts = asyncio.run(main())
    assert restarts >= 1
    assert outcome(checked) == outcome(prevalidate(raws, CHAIN_ID))


async def _caught_mid_batch(verifier: Verifier, raws: list[bytes]) -> tuple[Any, asyncio.Future[list[Tx | Rejected]]]:
    """The verifier's one worker, up, and a check of `raws` written to it and not yet answered."""
    await verifier.check(raws[:1], CHAIN_ID)
    (worker,) = verifier._pool
    pending = asyncio.ensure_future(verifier.check(raws, CHAIN_ID))
    for _ in range(1000):  # loop turns until the batch is written to the worker
        if worker.in_flight:
            break
        await asyncio.sleep(0)
    assert worker.in_flight == 1
    return worker, pending


def test_a_worker_killed_mid_batch_has_its_batch_rerun() -> None:
    """The batch in flight when its worker dies is checked again on a new worker; the caller sees
    only the verdicts. Then `stop` leaves no worker running."""
    raws = [transfer_tx(1, 2, 5, n) for n in range(3000)] + batch()  # long enough to be caught mid-check

    async def main() -> tuple[list[Tx | Rejected], int, list[int]]:
        verifier = Verifier(workers=1)
        verifier.start()
        try:
            victim, pending = await _caught_mid_batch(verifier, raws)
            os.kill(victim.process.pid, signal.SIGKILL)
            checked = await asyncio.wait_for(pending, 60)
            return checked, verifier.restarts, verifier.pids()
        finally:
            verifier.stop()

    checked, restarts, pids = asyncio.run(main())
    assert restarts == 1
    assert outcome(checked) == outcome(prevalidate(raws, CHAIN_ID))
    assert pids and not any(os.path.exists(f"/proc/{pid}") for pid in pids), "stop left a worker running"


def test_stopping_with_a_check_in_flight_finishes_it_here_and_starts_no_worker() -> None:
    """`stop` while a batch is at a worker: the check still answers (in this process), no worker is
    started again, and none is left running."""
    import multiprocessing

    raws = [transfer_tx(1, 2, 5, n) for n in range(2000)] + batch()

    async def main() -> tuple[list[Tx | Rejected], list[int], list[object]]:
        verifier = Verifier(workers=1)
        verifier.start()
        _, pending = await _caught_mid_batch(verifier, raws)
        verifier.stop()
        checked = await asyncio.wait_for(pending, 60)
        return checked, verifier.pids(), [p for p in multiprocessing.active_children() if p.name == "hearth-verifier"]

    checked, pids, children = asyncio.run(main())
    assert outcome(checked) == outcome(prevalidate(raws, CHAIN_ID))
    assert pids == [] and children == []


def test_trusted_parse_gives_the_very_tx_decode_gives() -> None:
    """What the node builds from a worker's pass is the `Tx` decode_tx builds: every transaction
    type the helpers make, one signer and several."""
    raws = [
        transfer_tx(1, 2, 5, 0),
        member_add_tx(7, 0),  # a council's: two signatures
        signed_tx("housing_apply", 3, 4, household=2, needs=1),
    ]
    for raw in raws:
        assert trusted_tx(raw) == decode_tx(raw)
        assert type(trusted_tx(raw).signatures[0]) is tuple


def test_workers_exit_when_their_node_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A node killed with SIGKILL leaves no signature worker behind."""
    import time
    from pathlib import Path

    script = (
        "import asyncio, sys\n"
        "from consensus.verifier import Verifier\n"
        "async def main():\n"
        "    v = Verifier(workers=1); v.start(); await v.check([b'x'], 'c')\n"
        "    print(' '.join(str(p) for p in v.pids()), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    root = Path(__file__).resolve().parents[2]
    node = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        workers = [int(p) for p in node.stdout.readline().split()]
        assert workers and all(Path(f"/proc/{p}").exists() for p in workers)
    finally:
        node.kill()
        node.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "a worker outlived its node"


def _batch_policy_allowed() -> bool:
    """Whether this system lets a process take SCHED_BATCH (tried in a throwaway child: a container's
    seccomp filter may refuse it)."""
    if not hasattr(os, "SCHED_BATCH"):
        return False
    probe = "import os; os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(not _batch_policy_allowed(), reason="this system does not let a process take SCHED_BATCH")
def test_workers_run_under_the_batch_policy_and_the_node_keeps_its_own() -> None:
    """A worker woken by a batch must not preempt its node's event loop: workers take SCHED_BATCH
    (checked on the live worker, after it has answered a batch), the node keeps the policy it had."""
    before = os.sched_getscheduler(0)

    async def main() -> tuple[list[int], int]:
        verifier = Verifier(workers=1)  # one worker, so the one asked is the one that answered
        verifier.start()
        try:
            checked = await verifier.check([transfer_tx(1, 2, 5, 0)], CHAIN_ID)
            assert isinstance(checked[0], Tx)
            return [os.sched_getscheduler(pid) for pid in verifier.pids()], os.sched_getscheduler(0)
        finally:
            verifier.stop()

    workers, node = asyncio.run(main())
    assert workers == [os.SCHED_BATCH]
    assert node == before


def test_a_refused_or_missing_batch_policy_leaves_the_worker_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the call is refused or the platform has none, the worker runs all the same, unchanged."""

    def refuse(*args: Any) -> None:
        raise PermissionError("refused")

    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    monkeypatch.setattr(os, "SCHED_BATCH", 3, raising=False)
    assert run_as_batch_job() is False
    monkeypatch.delattr(os, "sched_setscheduler")
    assert run_as_batch_job() is False
    monkeypatch.delattr(os, "SCHED_BATCH")
    assert run_as_batch_job() is False
