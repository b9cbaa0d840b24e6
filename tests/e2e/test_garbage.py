"""Scenario 7 of issue 7: garbage sent to the RPC and peer ports does not stop any node.

Garbage of every layer: raw bytes on the TCP ports, malformed HTTP, malformed JSON-RPC, websocket
frames before and after an authenticated handshake (a stranger's key: links are authenticated, not
restricted to validators). Afterwards every node still runs, answers and commits, on one chain,
and the peer layer counted what it dropped."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from typing import Any

import aiohttp
import pytest

from cli.rpc_client import RpcCallError
from consensus.p2p import PROTOCOL_VERSION, encode_frame, handshake_sign_bytes
from devnet.manifest import ValidatorEntry
from devnet.processes import is_running
from ledger.crypto import Keypair
from ledger.encoding import decode
from tests.e2e.conftest import MakeDevnet
from tests.e2e.helpers import assert_one_chain, call, wait_for_growth

pytestmark = pytest.mark.timeout(120)

SOCKET_TIMEOUT_S = 2.0
FRAME_KINDS = ("status", "proposal", "vote", "block", "txs", "evidence", "get_blocks", "blocks")


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def raw_tcp(address: str, payloads: list[bytes]) -> None:
    """Send each payload on its own connection; read whatever comes back until close or timeout."""
    for payload in payloads:
        with socket.create_connection(host_port(address), timeout=SOCKET_TIMEOUT_S) as s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except OSError:
                pass  # the node may reset a connection that makes no sense: that is fine


def rng_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def rpc_garbage(entry: ValidatorEntry, rng: random.Random) -> None:
    host, port = host_port(entry.rpc_url.removeprefix("http://"))
    address = f"{host}:{port}"

    def post(body: bytes, content_type: str = "application/json") -> bytes:
        head = f"POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        return head.encode() + body

    raw_tcp(
        address,
        [
            rng_bytes(rng, 4096),
            b"\x00" * 10_000,
            b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 100_000 + b"\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n" + b"{" * 5000,
            post(b"not json"),
            post(b"[" * 10_000 + b"]" * 10_000),
            post(b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
            post(b"[]"),
            post(b"[1, 2, 3]"),
            post(b'{"jsonrpc": "2.0", "id": {}, "method": 7}'),
            post(b'{"jsonrpc": "2.0", "id": 1, "method": "account", "params": {"address": "zz"}}'),
            post(b'{"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": -1}}'),
            post(b'{"jsonrpc": "2.0", "id": 1, "method": "submit_tx", "params": {"tx": "' + rng_bytes(rng, 300).hex().encode() + b'"}}'),
            post(b'{"jsonrpc": "2.0", "id": 1, "method": "no_such_method"}'),
            post(rng_bytes(rng, 2000), "application/octet-stream"),
            b"GET /websocket HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + rng_bytes(rng, 500),
        ],
    )
    # Well-formed requests with wrong params are refused with an error, not a crash.
    for method, params in (("account", {"address": "00"}), ("block", {"height": "x"}), ("submit_tx", {"tx": "abcd"})):
        with pytest.raises(RpcCallError):
            call(entry, method, **params)


async def p2p_garbage(entry: ValidatorEntry, chain_id: str, rng: random.Random) -> None:
    url = f"http://{entry.p2p_address}/p2p"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # Before any handshake: junk instead of hello.
        for junk in (rng_bytes(rng, 256), encode_frame("hello", {"chain_id": 7}), encode_frame("vote", {})):
            async with session.ws_connect(url) as ws:
                await ws.receive(timeout=5)  # the node's hello
                await ws.send_bytes(junk)
                await ws.receive(timeout=5)  # closed
        async with session.ws_connect(url) as ws:
            await ws.send_str("text, not a frame")
            await ws.receive(timeout=5)

        # After an authenticated handshake, with a key nobody knows: garbage of every kind. The node
        # may drop a link that sends garbage; then the next frame goes on a new link.
        frames = [rng_bytes(rng, n) for n in (1, 17, 1000, 70_000)]
        not_text: Any = 7  # a frame kind that is not text, on purpose
        frames += [encode_frame("nonsense", {}), encode_frame(not_text, 7), b"\x92\xa4vote"]
        for kind in FRAME_KINDS:
            frames += [
                encode_frame(kind, None),
                encode_frame(kind, rng_bytes(rng, 64)),
                encode_frame(kind, {"height": 2**64 - 1, "from": 2**64 - 1, "count": -1}),
                encode_frame(kind, {"height": 3, "hash": rng_bytes(rng, 32), "block": rng_bytes(rng, 500), "signature": rng_bytes(rng, 64)}),
                encode_frame(kind, [rng_bytes(rng, 100) for _ in range(50)]),
            ]
        frames.append(encode_frame("get_blocks", {"from": 1, "count": 10**9}))
        frames.append(encode_frame("txs", [b"\x00" * 16_000] * 100))
        frames.append(b"\x00" * (9 << 20))  # over max_message_bytes: dropped, or the link closed
        ws = await authenticated_link(session, url, chain_id)
        try:
            for frame in frames:
                try:
                    await ws.send_bytes(frame)
                except (ConnectionError, aiohttp.ClientError):
                    await ws.close()
                    ws = await authenticated_link(session, url, chain_id)
        finally:
            await ws.close()


async def authenticated_link(session: aiohttp.ClientSession, url: str, chain_id: str) -> aiohttp.ClientWebSocketResponse:
    """A peer link that passes the handshake, with a fresh key (links are authenticated, not restricted)."""
    stranger = Keypair.generate()
    ws = await session.ws_connect(url, max_msg_size=16 << 20)
    hello = decode((await ws.receive(timeout=5)).data, 1 << 12)[1]
    await ws.send_bytes(
        encode_frame(
            "hello",
            {"chain_id": chain_id, "node_id": stranger.public_key, "challenge": os.urandom(32), "moniker": "garbage", "version": PROTOCOL_VERSION},
        )
    )
    signature = stranger.sign(handshake_sign_bytes(chain_id, hello["challenge"], stranger.public_key))
    await ws.send_bytes(encode_frame("auth", {"signature": signature}))
    auth = await ws.receive(timeout=5)
    assert decode(auth.data, 1 << 12)[0] == "auth", "the node refused an authenticated link"
    return ws


def test_garbage_on_rpc_and_peer_ports_stops_no_node(make_devnet: MakeDevnet) -> None:
    net = make_devnet()
    rng = random.Random(7)
    for entry in net.manifest.validators:
        rpc_garbage(entry, rng)
        asyncio.run(p2p_garbage(entry, net.manifest.chain_id, rng))
        raw_tcp(entry.p2p_address, [rng_bytes(rng, 5000), b"GET /p2p HTTP/1.1\r\n\r\n", b"\r\n" * 1000])

    names = list(net.manifest.names)
    wait_for_growth(net, names, 3, 45)
    assert all(is_running(e) for e in net.reload().validators)
    assert_one_chain(net)
    for entry in net.manifest.validators:
        status = call(entry, "status")
        dropped = status["p2p"].get("dropped_malformed", 0) + status["node_stats"]["invalid_messages"] + status["p2p"].get("handler_errors", 0)
        assert dropped > 0, f"{entry.name} saw none of the garbage: {status['p2p']} {status['node_stats']}"
        assert status["peers"] >= 3
