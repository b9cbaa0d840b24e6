"""The peer layer: authenticated handshakes, bounded frames, partitions, and garbage that must not hurt."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp

from consensus.config import P2PConfig
from consensus.p2p import P2P, Peer, encode_frame, handshake_sign_bytes
from ledger.crypto import Keypair
from tests.node.helpers import free_ports, wait_until

CHAIN = "hearth-p2p-test"


def keypair(i: int) -> Keypair:
    return Keypair.from_seed(bytes([i]) * 32)


class Node:
    def __init__(self, i: int, peers: tuple[str, ...] = (), chain: str = CHAIN, listen: str = "127.0.0.1:0", **cfg: Any) -> None:
        self.received: list[tuple[str, str, Any]] = []
        config = P2PConfig(listen=listen, peers=peers, reconnect_min_ms=20, reconnect_max_ms=200, **cfg)
        self.p2p = P2P(keypair(i), chain, config, self.handle, kinds={"ping", "boom"}, moniker=f"n{i}")

    def handle(self, peer: Peer, kind: str, payload: Any) -> None:
        if kind == "boom":
            raise RuntimeError("handler bug")
        self.received.append((peer.moniker, kind, payload))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.p2p.listen_port}"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_two_nodes_connect_and_exchange_frames() -> None:
    async def main() -> None:
        a = Node(1)
        await a.p2p.start()
        b = Node(2, peers=(f"{keypair(1).public_key.hex()}@{a.address}",))
        await b.p2p.start()
        try:
            await wait_until(lambda: len(a.p2p.peers) == 1 and len(b.p2p.peers) == 1, what="link")
            b.p2p.broadcast("ping", {"n": 1})
            await wait_until(lambda: a.received == [("n2", "ping", {"n": 1})], what="ping")
        finally:
            await b.p2p.stop()
            await a.p2p.stop()

    run(main())


def test_mutual_dial_leaves_one_link() -> None:
    async def main() -> None:
        pa, pb = free_ports(2)
        a = Node(1, peers=(f"127.0.0.1:{pb}",), listen=f"127.0.0.1:{pa}")
        b = Node(2, peers=(f"127.0.0.1:{pa}",), listen=f"127.0.0.1:{pb}")
        await asyncio.gather(a.p2p.start(), b.p2p.start())
        try:
            keeper = min(keypair(1).public_key, keypair(2).public_key)

            def one_link() -> bool:  # both sides settle on the link the smaller id dialled
                return all(
                    len(n.p2p.peers) == 1 and next(iter(n.p2p.peers.values())).dialer_id == keeper for n in (a, b)
                )

            await wait_until(one_link, what="one link, dialled by the smaller id")
            a.p2p.broadcast("ping", 1)
            await wait_until(lambda: b.received == [("n1", "ping", 1)], what="ping over the one link")
        finally:
            await a.p2p.stop()
            await b.p2p.stop()

    run(main())


def test_handshake_rejects_wrong_chain() -> None:
    async def main() -> None:
        a = Node(1)
        await a.p2p.start()
        b = Node(2, peers=(a.address,), chain="another-chain")
        await b.p2p.start()
        try:
            await wait_until(lambda: a.p2p.stats["handshake_failed"] >= 1 and b.p2p.stats["handshake_failed"] >= 1)
            assert not a.p2p.peers and not b.p2p.peers
        finally:
            await b.p2p.stop()
            await a.p2p.stop()

    run(main())


def test_handshake_rejects_wrong_expected_id() -> None:
    async def main() -> None:
        a = Node(1)
        await a.p2p.start()
        b = Node(2, peers=(f"{keypair(9).public_key.hex()}@{a.address}",))
        await b.p2p.start()
        try:
            await wait_until(lambda: b.p2p.stats["handshake_failed"] >= 1)
            assert not b.p2p.peers
        finally:
            await b.p2p.stop()
            await a.p2p.stop()

    run(main())


async def raw_handshake(session: aiohttp.ClientSession, address: str, signer: Keypair, claimed: Keypair) -> Any:
    """Handshake as `claimed`, signing with `signer` (a different key forges the signature)."""
    ws = await session.ws_connect(f"http://{address}/p2p")
    await ws.send_bytes(encode_frame("hello", {"chain_id": CHAIN, "node_id": claimed.public_key, "challenge": os.urandom(32), "moniker": "raw", "version": 1}))
    hello = await ws.receive()
    import msgpack

    their = msgpack.unpackb(hello.data)[1]
    signature = signer.sign(handshake_sign_bytes(CHAIN, their["challenge"], claimed.public_key))
    await ws.send_bytes(encode_frame("auth", {"signature": signature}))
    return ws


def test_handshake_rejects_bad_signature() -> None:
    async def main() -> None:
        a = Node(1)
        await a.p2p.start()
        try:
            async with aiohttp.ClientSession() as session:
                ws = await raw_handshake(session, a.address, signer=keypair(7), claimed=keypair(8))
                await wait_until(lambda: a.p2p.stats["handshake_failed"] == 1)
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.BINARY:  # the server's own auth frame came first
                    msg = await ws.receive()
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert not a.p2p.peers
        finally:
            await a.p2p.stop()

    run(main())


def test_garbage_frames_are_dropped_and_counted() -> None:
    async def main() -> None:
        a = Node(1, max_message_bytes=64 * 1024)
        await a.p2p.start()
        try:
            async with aiohttp.ClientSession() as session:
                ws = await raw_handshake(session, a.address, signer=keypair(8), claimed=keypair(8))
                await wait_until(lambda: len(a.p2p.peers) == 1, what="authenticated raw peer")
                await ws.send_bytes(b"\xc1\xff\x00garbage")  # not msgpack
                await ws.send_bytes(encode_frame("unknown-kind", 1))
                await ws.send_bytes(encode_frame("ping", 1)[:-1] + b"\x92")  # valid then trailing junk
                await ws.send_str("text is not a frame")
                await ws.send_bytes(encode_frame("ping", b"x" * (64 * 1024 + 10)))  # over the limit
                await ws.send_bytes(encode_frame("boom", None))  # the handler raises
                await ws.send_bytes(encode_frame("ping", "still alive"))
                await wait_until(lambda: ("raw", "ping", "still alive") in a.received, what="valid frame after garbage")
                assert a.p2p.stats["dropped_malformed"] >= 3
                assert a.p2p.stats["dropped_oversize"] == 1
                assert a.p2p.stats["handler_errors"] == 1
                assert len(a.p2p.peers) == 1
                await ws.close()
        finally:
            await a.p2p.stop()

    run(main())


def test_partition_cuts_and_heal_restores() -> None:
    async def main() -> None:
        a = Node(1)
        await a.p2p.start()
        b = Node(2, peers=(a.address,))
        await b.p2p.start()
        try:
            await wait_until(lambda: len(a.p2p.peers) == 1 and len(b.p2p.peers) == 1, what="link")
            a.p2p.set_blocked(["n2"])
            await wait_until(lambda: not a.p2p.peers and not b.p2p.peers, what="cut")
            await wait_until(lambda: a.p2p.stats["refused_blocked"] >= 1, what="redial refused")
            assert not a.p2p.peers
            a.p2p.set_blocked([])
            await wait_until(lambda: len(a.p2p.peers) == 1 and len(b.p2p.peers) == 1, what="healed link")
        finally:
            await b.p2p.stop()
            await a.p2p.stop()

    run(main())
