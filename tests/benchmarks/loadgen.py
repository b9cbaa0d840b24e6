"""Open-loop load generator for the network benchmark, run as its own process:

    python -m tests.benchmarks.loadgen --devnet DIR --accounts N --seconds S --rates R1,R2,... --out FILE

Each step offers rate R for S seconds of pre-signed transfers (signed, and their JSON-RPC batch
bodies built, before the step starts, so the step costs the generator only sending them, over one
websocket per validator: `Submitter`). Transactions go
out on a fixed schedule every TICK_S whatever the answers (open loop); a transaction's latency runs from its scheduled submit time to the
moment a `new_block` notification naming it arrives on a websocket subscription to the first
validator. Account i submits only to validator i mod 4, and an account's consecutive transfers are
`accounts` transactions apart, so the node sees each account's nonces in order.

A step is kept up with when, within DRAIN_S after it ends, at least KEEP_UP of its transactions are
committed and fewer than 1% were refused; the steps stop at the first that is not (or after the list),
and then one more step runs at half the best committed rate. The result (a JSON file) lists every step.

With `--window-pid PID` the generator sends PID a SIGUSR1 as each step's first tick goes out and
another once its transactions are counted, so a profiled validator (tests/benchmarks/cpu_phases_node.py)
can take the step alone: not the generator's start, nor the settling and nonce reads between steps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from ledger import make_tx
from ledger.crypto import Keypair, sha256

TICK_S = 0.02
BATCH_MAX = 100
"""JSON-RPC calls per batch (the server's max_batch)."""
IN_FLIGHT_MAX = 16
"""Batches outstanding per validator; later ones wait their turn (their latency still runs from
their scheduled time, so a slow submit path shows as latency, not as dropped transfers). Below the
server's max_pending_per_websocket (32), which a batch's answer can reach before its call is done."""
ANSWER_TIMEOUT_S = 30.0
DRAIN_S = 4.0
KEEP_UP = 0.97
PLAN_SLICE = 2_000
"""Transfers signed between two turns of the generator's event loop while a step is planned."""
AMOUNT = 1


def _percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None


def _first_id(answer: str) -> int | None:
    """The id of the first answer in a batch's answer text (`[{"jsonrpc":"2.0","id":7,...`), or
    None (an error about the whole message has id null)."""
    at = answer.find('"id":')
    if at < 0:
        return None
    try:
        return int(answer[at + 5 : answer.find(",", at)])
    except ValueError:
        return None


class Submitter:
    """One validator's websocket for submissions (its RPC's `/ws`): each JSON-RPC batch goes out as
    one text message, and its answer is matched back by the id of its first call (the generator's
    call ids are unique). A message costs the node and the generator far less than an HTTP request
    each (README, "Performance"); CometBFT's load generators submit over
    websockets too. If the connection ends, the batches waiting on it fail (counted as refused)
    and the next batch connects again."""

    def __init__(self, rpc_url: str) -> None:
        self.url = rpc_url.replace("http://", "ws://") + "/ws"
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._waiting: dict[int, asyncio.Future[str]] = {}

    async def call(self, session: aiohttp.ClientSession, first_id: int, body: str) -> str:
        """Send one batch; its answer's text."""
        ws, waiting = await self._connection(session)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiting[first_id] = future
        try:
            await ws.send_str(body)
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                return await future
        finally:
            waiting.pop(first_id, None)

    async def _connection(self, session: aiohttp.ClientSession) -> tuple[aiohttp.ClientWebSocketResponse, dict[int, asyncio.Future[str]]]:
        """The open connection and the batches waiting on it (each connection its own: a closed one
        fails only what was sent on it)."""
        async with self._connecting:
            if self._ws is None or self._ws.closed:
                self._ws = await session.ws_connect(self.url, max_msg_size=1 << 26, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=10))
                self._waiting = {}
                self._reader = asyncio.create_task(self._read(self._ws, self._waiting))
            return self._ws, self._waiting

    @staticmethod
    async def _read(ws: aiohttp.ClientWebSocketResponse, waiting: dict[int, asyncio.Future[str]]) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                first_id = _first_id(msg.data)
                if first_id is not None:
                    future = waiting.get(first_id)  # None: a batch that gave up waiting
                else:  # an error about a whole message: the oldest batch's
                    future = next(iter(waiting.values()), None)
                if future is not None and not future.done():
                    future.set_result(msg.data)
        finally:
            for future in list(waiting.values()):
                if not future.done():
                    future.set_exception(ConnectionError(f"the submission websocket closed ({ws.close_code})"))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def account_key(i: int) -> Keypair:
    """The benchmark's funded account i (deterministic, so the genesis and the generator agree)."""
    return Keypair.from_seed(b"hearth-bench-account" + i.to_bytes(12, "big"))


class Generator:
    def __init__(self, manifest: dict[str, Any], accounts: int) -> None:
        self.chain_id: str = manifest["chain_id"]
        self.urls: list[str] = [v["rpc_url"] for v in manifest["validators"]]
        self.keys = [account_key(i) for i in range(accounts)]
        self.nonces = [0] * accounts
        self.window_pid: int | None = None
        """A process to send SIGUSR1 as each step starts and ends (`--window-pid`)."""
        self.next_sender = 0
        self.committed_at: dict[bytes, float] = {}
        self.refused: int = 0
        self.refusals: dict[str, int] = {}
        self.in_flight = [asyncio.Semaphore(IN_FLIGHT_MAX) for _ in self.urls]
        self.submitters = [Submitter(url) for url in self.urls]
        self.next_call_id = 0
        """The id of the next submit_tx call planned: unique across the run, so answers match their batch."""
        self.late_ticks = 0
        self.blocks: list[tuple[float, int]] = []
        self.last_height: int | None = None
        self.watch_gaps = 0
        self.acks: list[float] = []

    def sign(self, count: int) -> list[tuple[int, bytes, bytes]]:
        """`count` transfers: (validator index, raw, hash), senders in turn, each to the next account."""
        out = []
        n = len(self.keys)
        for _ in range(count):
            s = self.next_sender
            self.next_sender = (s + 1) % n
            raw = make_tx(self.chain_id, "transfer", self.keys[s], self.nonces[s], to=self.keys[(s + 1) % n].address, amount=AMOUNT)
            self.nonces[s] += 1
            out.append((s % len(self.urls), raw, sha256(raw)))
        return out

    async def watch(self, session: aiohttp.ClientSession) -> None:
        """Commit times from validator 0's `new_block` notifications. If the websocket ends (a node
        closes a subscriber it finds too slow, as a loaded generator can be), subscribe again and
        fetch the blocks missed meanwhile, their transactions timed on arrival (later than they
        committed: a pessimistic latency). Each such gap is counted in `watch_gaps`."""
        while True:
            url = self.urls[0].replace("http://", "ws://") + "/ws"
            try:
                async with session.ws_connect(url, max_msg_size=1 << 26, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
                    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"event": "new_block"}}))
                    subscribed = False
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        data = json.loads(msg.data)
                        if not subscribed and data.get("id") == 1:  # subscribed: what committed before it is fetched
                            subscribed = True
                            if self.last_height is not None:
                                await self._backfill(session)
                            continue
                        self._on_notification(data, time.monotonic())
                    print(f"loadgen: block subscription ended ({ws.close_code}); subscribing again", file=sys.stderr, flush=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure (a refused call, a lost connection): subscribe again
                print(f"loadgen: block subscription failed ({type(exc).__name__}: {exc}); retrying", file=sys.stderr, flush=True)
                await asyncio.sleep(0.5)
            self.watch_gaps += 1

    def _on_notification(self, data: dict[str, Any], now: float) -> None:
        result = data.get("params", {}).get("result")
        if not result:
            if data.get("params", {}).get("error"):
                print(f"loadgen: subscription error {data['params']['error']}", file=sys.stderr)
            return
        self._record_block(result["header"]["height"], result.get("tx_hashes", []), now)

    def _record_block(self, height: int, hashes: list[str], now: float) -> None:
        if self.last_height is not None and height <= self.last_height:
            return
        self.last_height = height
        self.blocks.append((now, len(hashes)))
        for h in hashes:
            self.committed_at.setdefault(bytes.fromhex(h), now)

    async def _backfill(self, session: aiohttp.ClientSession) -> None:
        """The blocks committed while the subscription was down, from validator 0's `block`."""
        assert self.last_height is not None
        async with session.post(self.urls[0] + "/", json={"jsonrpc": "2.0", "id": 1, "method": "status"}) as response:
            head = (await response.json(content_type=None))["result"]["height"]
        for height in range(self.last_height + 1, head + 1):
            async with session.post(self.urls[0] + "/", json={"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": height}}) as response:
                block = (await response.json(content_type=None))["result"]
            self._record_block(height, [sha256(bytes.fromhex(raw)).hex() for raw in block["txs"]], time.monotonic())

    async def _post(self, session: aiohttp.ClientSession, node: int, body: str, count: int, first_id: int, at: float) -> None:
        async with self.in_flight[node]:
            await self._send(session, node, body, count, first_id)
        self.acks.append(time.monotonic() - at)  # scheduled submit to the node's answer (admitted)

    async def _send(self, session: aiohttp.ClientSession, node: int, body: str, count: int, first_id: int) -> None:
        try:
            text = await self.submitters[node].call(session, first_id, body)
            if '"error"' not in text:
                return  # every call answered with a result: no need to parse the answer
            answer = json.loads(text)
            if not isinstance(answer, list):
                answer = [answer] * count
            for item in answer:
                if "error" in item:
                    self.refused += 1
                    key = str(item["error"].get("message", item["error"]))[:60]
                    self.refusals[key] = self.refusals.get(key, 0) + 1
        except Exception as exc:  # a lost request: count every call in it as refused
            self.refused += count
            key = type(exc).__name__
            self.refusals[key] = self.refusals.get(key, 0) + count

    def _mark_window(self) -> None:
        if self.window_pid is not None:
            os.kill(self.window_pid, signal.SIGUSR1)

    async def plan(self, rate: float, seconds: float) -> list[tuple[list[bytes], list[tuple[int, str, int, int]]]]:
        """The step's schedule, built before it starts: for each tick, the hashes it submits and its
        batches (validator, JSON-RPC batch text, calls in it, the first call's id), so the step itself only sends.
        Built in slices with the event loop's turns in between: signing a step's transfers takes
        seconds, and a loop held that long answers none of the node's websocket pings, so the node
        closed the block subscription as dead before each step (a gap, fetched again by `_backfill`)."""
        count = int(rate * seconds)
        txs: list[tuple[int, bytes, bytes]] = []
        while len(txs) < count:
            txs += self.sign(min(PLAN_SLICE, count - len(txs)))
            await asyncio.sleep(0)
        ticks = []
        sent = 0
        tick = 0
        while sent < len(txs):
            due = min(len(txs), int(rate * (tick + 1) * TICK_S))
            per_node: dict[int, list[bytes]] = {}
            for node, raw, _ in txs[sent:due]:
                per_node.setdefault(node, []).append(raw)
            requests = []
            for node, raws in per_node.items():
                for i in range(0, len(raws), BATCH_MAX):
                    chunk = raws[i : i + BATCH_MAX]
                    first = self.next_call_id
                    self.next_call_id += len(chunk)
                    calls = ",".join(
                        f'{{"jsonrpc":"2.0","id":{first + j},"method":"submit_tx","params":{{"tx":"{raw.hex()}"}}}}' for j, raw in enumerate(chunk)
                    )
                    requests.append((node, f"[{calls}]", len(chunk), first))
            ticks.append(([h for _, _, h in txs[sent:due]], requests))
            sent = due
            tick += 1
            if tick % 100 == 0:
                await asyncio.sleep(0)
        return ticks

    async def step(self, session: aiohttp.ClientSession, rate: float, seconds: float) -> dict[str, Any]:
        ticks = await self.plan(rate, seconds)
        self.acks = []
        cpu_before = time.process_time()  # the generator's own CPU during the step, recorded: it shares the cores
        refused_before = self.refused
        scheduled: list[tuple[bytes, float]] = []
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic() + 0.2
        for tick, (hashes, requests) in enumerate(ticks):
            at = start + tick * TICK_S
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -TICK_S:
                self.late_ticks += 1
            if tick == 0:
                self._mark_window()
            scheduled.extend((h, at) for h in hashes)
            for node, body, count, first_id in requests:
                task = asyncio.create_task(self._post(session, node, body, count, first_id, at))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if not ticks:
            self._mark_window()  # an empty step's window opens here
        end = start + seconds
        deadline = time.monotonic() + seconds + DRAIN_S + 60  # bounded drain
        while time.monotonic() < deadline:
            done = sum(1 for h, _ in scheduled if h in self.committed_at)
            if done >= len(scheduled) or time.monotonic() > end + DRAIN_S:
                break
            await asyncio.sleep(0.25)
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        self._mark_window()
        latencies = sorted(self.committed_at[h] - at for h, at in scheduled if h in self.committed_at and self.committed_at[h] <= end + DRAIN_S)
        committed = len(latencies)
        refused = self.refused - refused_before
        in_window = [t for t, _ in self.blocks if start <= t <= end + DRAIN_S]
        result = {
            "offered_per_s": round(rate),
            "seconds": seconds,
            "submitted": len(scheduled),
            "committed": committed,
            "refused": refused,
            "committed_per_s": round(committed / seconds, 1),
            "kept_up": committed >= KEEP_UP * len(scheduled) and refused < 0.01 * len(scheduled),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3) if latencies else None,
            "latency_max_s": round(latencies[-1], 3) if latencies else None,
            "blocks": len(in_window),
            "watch_gaps": self.watch_gaps,
            "late_ticks": self.late_ticks,
            "generator_cpu_s": round(time.process_time() - cpu_before, 2),
            "submit_ack_p50_s": _percentile(self.acks, 0.5),
            "submit_ack_p99_s": _percentile(self.acks, 0.99),
            "refusals": dict(self.refusals),
        }
        self.refusals.clear()
        self.late_ticks = 0
        print(f"loadgen: {json.dumps(result)}", file=sys.stderr, flush=True)
        return result

    async def settle(self, session: aiohttp.ClientSession, seconds: float) -> None:
        """Let the previous step's leftovers commit (until a block with no transactions, at most 120 s
        more), then take every account's nonce from the chain: refused transfers leave gaps."""
        await asyncio.sleep(seconds)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not self.blocks or self.blocks[-1][1] > 0):
            await asyncio.sleep(0.5)
        await self.read_nonces(session)

    async def read_nonces(self, session: aiohttp.ClientSession) -> None:
        """Every account's next nonce, from the chain."""
        for i in range(0, len(self.keys), BATCH_MAX):
            body = [{"jsonrpc": "2.0", "id": j, "method": "account", "params": {"address": self.keys[j].address.hex()}} for j in range(i, min(i + BATCH_MAX, len(self.keys)))]
            async with session.post(self.urls[0] + "/", json=body) as response:
                for item in await response.json(content_type=None):
                    self.nonces[item["id"]] = item["result"]["nonce"]


async def run(
    devnet: Path, accounts: int, seconds: float, rates: list[float], half_step: bool = True, window_pid: int | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    manifest = json.loads((devnet / "devnet.json").read_text())
    gen = Generator(manifest, accounts)
    gen.window_pid = window_pid
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
        watcher = asyncio.create_task(gen.watch(session))
        await asyncio.sleep(1.0)
        steps = []
        best: dict[str, Any] | None = None
        if resume:
            await gen.read_nonces(session)  # a chain an earlier generator used: its accounts' nonces go on
        for index, rate in enumerate(rates):
            if index:
                await gen.settle(session, 2.0)  # before a step, not after the last
            result = await gen.step(session, rate, seconds)
            steps.append(result)
            if not result["kept_up"]:
                break
            best = result
        half = None
        if best is not None and half_step:
            await gen.settle(session, 5.0)
            half = await gen.step(session, best["committed_per_s"] / 2, seconds)
        for submitter in gen.submitters:
            await submitter.close()
        watcher.cancel()
        try:
            await watcher
        except (asyncio.CancelledError, Exception):
            pass
    return {"steps": steps, "best": best, "half": half, "nonces_used": sum(gen.nonces)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devnet", type=Path, required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rates", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-half", action="store_true", help="skip the step at half the best rate (for profiling)")
    parser.add_argument("--window-pid", type=int, help="send this process SIGUSR1 as each step starts and ends (for profiling)")
    parser.add_argument("--resume", action="store_true", help="read the accounts' nonces from the chain first (a devnet an earlier generator loaded)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")][:12]
    result = asyncio.run(run(args.devnet, args.accounts, args.seconds, rates, half_step=not args.no_half, window_pid=args.window_pid, resume=args.resume))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
