"""The benchmark load generator's view of commits (tests/benchmarks/loadgen.py `watch`): a
subscription the node ends is taken up again, and the blocks committed meanwhile are fetched, so a
step is never scored on a silent subscription."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from consensus.config import ConsensusConfig
from consensus.node import Node
from ledger.crypto import sha256
from tests.benchmarks.loadgen import PLAN_SLICE, Generator, _first_id, run
from tests.ledger.helpers import transfer_tx
from tests.node.helpers import LoopTurns, wait_until
from tests.node.test_node_inprocess import lone_validator_home


@contextlib.asynccontextmanager
async def _aimed_at_a_lone_validator(tmp_path: Path) -> AsyncIterator[tuple[Node, Generator]]:
    """A lone validator, started, and a generator (no accounts of its own) aimed at it."""
    home = lone_validator_home(tmp_path, ConsensusConfig(block_interval_ms=50, empty_block_interval_ms=100))
    node = Node(home.root)
    await node.start()
    try:
        yield node, Generator({"chain_id": node.chain_id, "validators": [{"rpc_url": node.rpc.url}]}, 0)
    finally:
        await node.stop()


def test_the_watcher_resubscribes_and_fetches_the_blocks_it_missed(tmp_path: Path) -> None:
    async def main() -> None:
        async with _aimed_at_a_lone_validator(tmp_path) as (node, gen), aiohttp.ClientSession() as session:
            watcher = asyncio.create_task(gen.watch(session))
            try:
                await wait_until(lambda: gen.last_height is not None, 20, "a first block")
                for conn in list(node.rpc.websockets):  # the node ends the subscription
                    await conn.close()
                raw = transfer_tx(1, 2, 1, 0)
                await node.submit_tx(raw)
                await wait_until(lambda: gen.watch_gaps >= 1 and sha256(raw) in gen.committed_at, 20, "the commit seen after the gap")
                # the missed blocks, fetched: heights from before the gap up to the head
                before = gen.last_height
                gen.last_height = 0
                gen.committed_at.clear()
                await gen._backfill(session)
                assert sha256(raw) in gen.committed_at and gen.last_height >= before
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    asyncio.run(main())


def test_each_step_marks_its_window_for_a_profiled_process() -> None:
    """With `window_pid`, a step sends that process SIGUSR1 as its first tick goes out and again once
    its transactions are counted: two snapshots a step, so a profile covers the step alone."""
    marks: list[str] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: marks.append("mark"))
    try:
        gen = Generator({"chain_id": "c", "validators": [{"rpc_url": "http://127.0.0.1:9"}]}, 0)

        async def main() -> None:
            async with aiohttp.ClientSession() as session:
                assert (await gen.step(session, 0, 0.05))["submitted"] == 0  # unmarked: no window_pid
                gen.window_pid = os.getpid()
                for step in range(2):
                    await gen.step(session, 0, 0.05)
                    marks.append(f"step {step} returned")

        asyncio.run(main())
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert marks == ["mark", "mark", "step 0 returned", "mark", "mark", "step 1 returned"]


def test_the_generator_settles_before_each_later_step_and_the_half_step_not_after_the_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settling (leftovers committed, nonces read again) comes before a step that follows another,
    so the last step's window is followed by nothing of the generator's; with `resume` (a chain an
    earlier generator loaded) the nonces are read before the first step."""
    calls: list[str] = []
    kept = iter([True, True, False])

    async def step(self: Generator, session: object, rate: float, seconds: float) -> dict[str, object]:
        calls.append(f"step {rate:g}")
        return {"kept_up": next(kept, True), "committed_per_s": 2 * rate}

    async def settle(self: Generator, session: object, seconds: float) -> None:
        calls.append(f"settle {seconds:g}")

    async def watch(self: Generator, session: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(Generator, "step", step)
    monkeypatch.setattr(Generator, "settle", settle)
    monkeypatch.setattr(Generator, "watch", watch)
    monkeypatch.setattr(asyncio, "sleep", _no_wait(asyncio.sleep))
    (tmp_path / "devnet.json").write_text(json.dumps({"chain_id": "c", "validators": [{"rpc_url": "http://127.0.0.1:9"}]}))
    asyncio.run(run(tmp_path, 0, 1.0, [10, 20, 30, 40]))
    assert calls == ["step 10", "settle 2", "step 20", "settle 2", "step 30", "settle 5", "step 20"]
    calls.clear()
    kept = iter([True, True])
    asyncio.run(run(tmp_path, 0, 1.0, [10, 20], half_step=False))
    assert calls == ["step 10", "settle 2", "step 20"]

    async def read_nonces(self: Generator, session: object) -> None:
        calls.append("nonces")

    monkeypatch.setattr(Generator, "read_nonces", read_nonces)
    calls.clear()
    kept = iter([True])
    asyncio.run(run(tmp_path, 0, 1.0, [10], half_step=False, resume=True))  # a chain an earlier generator loaded
    assert calls == ["nonces", "step 10"]


def _no_wait(sleep):  # type: ignore[no-untyped-def]
    """asyncio.sleep without the wait (the generator's pause before its first step)."""
    async def no_wait(delay: float, result: object = None) -> object:
        return await sleep(0, result)
    return no_wait


def test_planning_a_step_leaves_the_event_loop_turns_between_slices() -> None:
    """A step's transfers are signed and its bodies built in slices (PLAN_SLICE), with the loop's
    other callbacks running in between: a loop held for the seconds a whole step takes answers no
    websocket ping, and the node closed the generator's block subscription before every step."""
    gen = Generator({"chain_id": "c", "validators": [{"rpc_url": "http://127.0.0.1:9"}, {"rpc_url": "http://127.0.0.1:10"}]}, 7)
    count = 2 * PLAN_SLICE + 5

    async def main() -> tuple[list[tuple[list[bytes], list[tuple[int, str, int, int]]]], int]:
        async with LoopTurns() as turns:
            ticks = await gen.plan(count / 2.0, 2.0)
        return ticks, turns.count

    ticks, turns = asyncio.run(main())
    assert turns >= count // PLAN_SLICE + 1
    assert sum(len(hashes) for hashes, _ in ticks) == count and sum(gen.nonces) == count
    assert sum(calls for _, requests in ticks for _, _, calls, _ in requests) == count
    assert {node for _, requests in ticks for node, _, _, _ in requests} == {0, 1}
    ids = [item["id"] for _, requests in ticks for _, body, _, _ in requests for item in json.loads(body)]
    assert ids == list(range(count))  # unique across the step, so each answer finds its batch
    assert all(json.loads(body)[0]["id"] == first for _, requests in ticks for _, body, _, first in requests)


def _batch(first_id: int, raws: list[bytes]) -> str:
    return "[" + ",".join(f'{{"jsonrpc":"2.0","id":{first_id + j},"method":"submit_tx","params":{{"tx":"{raw.hex()}"}}}}' for j, raw in enumerate(raws)) + "]"


def test_batches_go_over_one_websocket_and_each_answer_finds_its_batch(tmp_path: Path) -> None:
    """A validator's batches share one websocket; answers are matched by their first call's id,
    refusals are counted by their message, and a connection the node ends is made again."""

    async def main() -> None:
        async with _aimed_at_a_lone_validator(tmp_path) as (node, gen), aiohttp.ClientSession() as session:
            submitter = gen.submitters[0]
            raws = [transfer_tx(1, 2, 1, n) for n in range(3)]
            first, second = await asyncio.gather(submitter.call(session, 10, _batch(10, raws[:2])), submitter.call(session, 20, _batch(20, raws[2:])))
            assert [(a["id"], a["result"]["hash"]) for a in json.loads(first)] == [(10, sha256(raws[0]).hex()), (11, sha256(raws[1]).hex())]
            assert [(a["id"], a["result"]["hash"]) for a in json.loads(second)] == [(20, sha256(raws[2]).hex())]
            assert len(node.rpc.websockets) == 1
            for conn in list(node.rpc.websockets):  # the node ends the connection
                await conn.close()
            await wait_until(lambda: submitter._ws is not None and submitter._ws.closed, 20, "the close seen")
            await gen._send(session, 0, _batch(30, [transfer_tx(1, 2, 1, 3)]), 1, 30)  # connects again
            forged = bytearray(transfer_tx(1, 2, 1, 4))
            forged[-1] ^= 1
            await gen._send(session, 0, _batch(40, [bytes(forged), transfer_tx(1, 2, 1, 4)]), 2, 40)
            assert gen.refused == 1 and sum(gen.refusals.values()) == 1 and sha256(transfer_tx(1, 2, 1, 3)) in node.mempool
            await submitter.close()

    asyncio.run(main())


def test_a_batch_waiting_on_a_websocket_that_ends_is_refused_and_an_error_without_id_goes_to_the_oldest() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if "close-please" in msg.data:
                await ws.close()
            elif "null-please" in msg.data:
                await ws.send_str('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"busy"}}')
        return ws

    async def main() -> tuple[Generator, str]:
        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            gen = Generator({"chain_id": "c", "validators": [{"rpc_url": f"http://127.0.0.1:{port}"}]}, 0)
            async with aiohttp.ClientSession() as session:
                answer = await gen.submitters[0].call(session, 5, '[{"id":5,"null-please":1}]')
                await gen._send(session, 0, '[{"id":7,"close-please":1}]', 3, 7)
                await gen.submitters[0].close()
            return gen, answer
        finally:
            await runner.cleanup()

    gen, answer = asyncio.run(main())
    assert json.loads(answer)["error"]["message"] == "busy"
    assert gen.refused == 3 and gen.refusals == {"ConnectionError": 3}


def test_the_first_id_of_an_answer_is_read_without_parsing_it() -> None:
    assert _first_id('[{"jsonrpc":"2.0","id":42,"result":{"hash":"ab"}},{"jsonrpc":"2.0","id":43}]') == 42
    assert _first_id('{"jsonrpc":"2.0","id":null,"error":{"code":1}}') is None
    assert _first_id("[]") is None
