"""The peer layer: authenticated websocket links between nodes, carrying msgpack frames.

A frame is the msgpack of `[kind, payload]`, `kind` a short text the node registered. The peer layer
knows nothing of consensus: it authenticates peers, bounds what they may send and what is queued for
them, and hands each well-formed frame to the node's handler. Whether the payload means anything is
the handler's question.

Handshake (both sides at once, on every new websocket):

    -> ["hello", {"chain_id", "node_id", "challenge", "moniker", "version"}]
    <- ["hello", ...the peer's...]
    -> ["auth", {"signature": sign(HANDSHAKE_DOMAIN + chain_id + 0x00 + peer_challenge + own node_id)}]
    <- ["auth", ...]

A peer on another chain, with a bad signature, with the wrong node id (when the dialled address
named one), with our own id, or cut by the devnet admin switch, is refused and counted. The link is
not encrypted: node keys authenticate who is talking, and every consensus message is signed anyway.

Bounds: a frame larger than `max_message_bytes` is dropped and counted (far larger ones close the
link, then the dialler reconnects); each peer has a send queue of `send_queue_max` frames, and a frame
for a full queue is dropped and counted (consensus resends what matters); at most `max_peers` links.
Malformed frames are dropped and counted; nothing a peer sends can raise out of this module.

Two nodes that dial each other at once end up with one link: both keep the one dialled by the node
with the smaller id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack
from aiohttp import web

from consensus.config import P2PConfig, parse_host_port, parse_peer
from ledger.crypto import Keypair, verify_signature
from ledger.encoding import EncodingError, decode

__all__ = ["P2P", "Peer", "HANDSHAKE_DOMAIN", "encode_frame", "handshake_sign_bytes"]

log = logging.getLogger("hearth.p2p")

HANDSHAKE_DOMAIN = b"hearth/p2p-handshake/v1\x00"
PROTOCOL_VERSION = 1
OVERSIZE_SLACK_BYTES = 1 << 20
"""Frames up to this much over the limit are read and dropped; beyond it the link is closed."""
HEARTBEAT_S = 5.0
SHUTDOWN_TIMEOUT_S = 1.0
"""How long stopping waits for a half-open link (a peer redialling as we close) before dropping it."""

FrameHandler = Callable[["Peer", str, Any], None]
PeerCallback = Callable[["Peer"], None]


class HandshakeFailed(Exception):
    pass


def encode_frame(kind: str, payload: Any) -> bytes:
    return msgpack.packb([kind, payload], use_bin_type=True)


def handshake_sign_bytes(chain_id: str, challenge: bytes, signer_id: bytes) -> bytes:
    return HANDSHAKE_DOMAIN + chain_id.encode() + b"\x00" + challenge + signer_id


@dataclass(eq=False)
class Peer:
    node_id: bytes
    moniker: str
    outbound: bool
    remote: str
    ws: Any
    queue: asyncio.Queue[bytes | None]
    dialer_id: bytes
    data: dict[str, Any] = field(default_factory=dict)
    """Free for the node's per-peer state (its reported height, ...)."""

    @property
    def name(self) -> str:
        return f"{self.moniker}({self.node_id.hex()[:8]})"


class P2P:
    def __init__(
        self,
        keypair: Keypair,
        chain_id: str,
        config: P2PConfig,
        handler: FrameHandler,
        kinds: Iterable[str],
        moniker: str = "node",
        on_connect: PeerCallback | None = None,
        on_disconnect: PeerCallback | None = None,
        admin: bool = False,
    ) -> None:
        self.keypair = keypair
        self.node_id = keypair.public_key
        self.chain_id = chain_id
        self.config = config
        self.moniker = moniker
        self._handler = handler
        self._kinds = frozenset(kinds)
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._admin = admin
        self.peers: dict[bytes, Peer] = {}
        self.stats: Counter[str] = Counter()
        self.blocked: frozenset[str] = frozenset()
        """Monikers or node ids (hex) this node refuses links with (devnet partitions)."""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._handshaking = 0
        self.listen_port: int | None = None

    # lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 16)
        app.router.add_get("/p2p", self._accept)
        if self._admin:
            app.router.add_post("/admin/partition", self._admin_partition)
            app.router.add_get("/admin/partition", self._admin_partition)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        host, port = parse_host_port(self.config.listen)
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        self.listen_port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        for peer in self.config.peers:
            self._spawn(self._dial_forever(peer))

    async def stop(self) -> None:
        self._closing = True
        for task in list(self._tasks):  # no more dialling
            task.cancel()
        for peer in list(self.peers.values()):
            await self._close_peer(peer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # sending ------------------------------------------------------------------------------------------
    def send(self, peer: Peer, kind: str, payload: Any) -> bool:
        return self.send_frame(peer, encode_frame(kind, payload))

    def send_frame(self, peer: Peer, frame: bytes) -> bool:
        if peer.queue.full():
            self.stats["dropped_send_queue_full"] += 1
            return False
        peer.queue.put_nowait(frame)
        return True

    def broadcast(self, kind: str, payload: Any, exclude: Peer | None = None, skip: AbstractSet[bytes] = frozenset()) -> int:
        """Send to every peer but `exclude` and those whose node ids are in `skip`; to how many."""
        recipients = [peer for peer in self.peers.values() if peer is not exclude]
        if skip:
            count = len(recipients)
            recipients = [peer for peer in recipients if peer.node_id not in skip]
            self.stats["skipped_linked"] += count - len(recipients)
        if recipients:
            frame = encode_frame(kind, payload)  # encoded once for every peer, and not for none
            for peer in recipients:
                self.send_frame(peer, frame)
        return len(recipients)

    # devnet partitions --------------------------------------------------------------------------------
    def set_blocked(self, names: Iterable[str]) -> None:
        """Refuse links with these peers (moniker or node id hex) and cut the current ones."""
        self.blocked = frozenset(names)
        for peer in list(self.peers.values()):
            if self._is_blocked(peer.node_id, peer.moniker):
                self._spawn(self._close_peer(peer))

    def _is_blocked(self, node_id: bytes, moniker: str) -> bool:
        return moniker in self.blocked or node_id.hex() in self.blocked

    async def _admin_partition(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                body = await request.json()
                names = body["blocked"]
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return web.json_response({"error": 'expected {"blocked": [names...]}'}, status=400)
            self.set_blocked(names)
            log.warning("devnet admin: links to %s cut", sorted(self.blocked) or "nobody")
        return web.json_response({"blocked": sorted(self.blocked), "peers": [p.moniker for p in self.peers.values()]})

    # connecting ---------------------------------------------------------------------------------------
    async def _dial_forever(self, peer_text: str) -> None:
        expected_id, host, port = parse_peer(peer_text)
        backoff_ms = self.config.reconnect_min_ms
        while not self._closing:
            known = self._peer_at(expected_id, f"{host}:{port}")
            if known is not None:
                await known.data["closed"].wait()
                continue
            try:
                ws = await self._session.ws_connect(  # type: ignore[union-attr]
                    f"http://{host}:{port}/p2p",
                    max_msg_size=self.config.max_message_bytes + OVERSIZE_SLACK_BYTES,
                    heartbeat=HEARTBEAT_S,
                    autoclose=True,
                )
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                self.stats["dial_failed"] += 1
                log.debug("dial %s:%s failed: %s", host, port, exc)
            else:
                peer_id = await self._run_link(ws, outbound=True, remote=f"{host}:{port}", expected_id=expected_id)
                if peer_id is not None:
                    expected_id = peer_id  # from now on, an inbound link from it counts as connected
                    backoff_ms = self.config.reconnect_min_ms
                    continue
            delay_ms = backoff_ms * random.uniform(0.5, 1.0)
            backoff_ms = min(backoff_ms * 2, self.config.reconnect_max_ms)
            await asyncio.sleep(delay_ms / 1000)

    def _peer_at(self, node_id: bytes | None, remote: str) -> Peer | None:
        for peer in self.peers.values():
            if (node_id is not None and peer.node_id == node_id) or (peer.outbound and peer.remote == remote):
                return peer
        return None

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            max_msg_size=self.config.max_message_bytes + OVERSIZE_SLACK_BYTES, heartbeat=HEARTBEAT_S
        )
        await ws.prepare(request)
        if len(self.peers) + self._handshaking >= self.config.max_peers:
            self.stats["refused_max_peers"] += 1
            await ws.close(code=1013, message=b"too many peers")
            return ws
        await self._run_link(ws, outbound=False, remote=str(request.remote), expected_id=None)
        return ws

    async def _run_link(self, ws: Any, outbound: bool, remote: str, expected_id: bytes | None) -> bytes | None:
        """Handshake, then read until the link closes. The peer's id if the handshake succeeded."""
        self._handshaking += 1  # links not yet authenticated count against max_peers too
        try:
            node_id, moniker = await asyncio.wait_for(
                self._handshake(ws, expected_id), self.config.handshake_timeout_ms / 1000
            )
        except (HandshakeFailed, asyncio.TimeoutError, aiohttp.ClientError, OSError, ConnectionError) as exc:
            self.stats["handshake_failed"] += 1
            log.info("handshake with %s failed: %s", remote, exc or type(exc).__name__)
            await _close_quietly(ws, 4001, str(exc)[:100])
            return None
        finally:
            self._handshaking -= 1
        peer = Peer(
            node_id=node_id,
            moniker=moniker,
            outbound=outbound,
            remote=remote,
            ws=ws,
            queue=asyncio.Queue(self.config.send_queue_max),
            dialer_id=self.node_id if outbound else node_id,
        )
        peer.data["closed"] = asyncio.Event()
        if not self._register(peer):
            await _close_quietly(ws, 4002, "duplicate link")
            return node_id
        writer = self._spawn(self._write_loop(peer))
        try:
            await self._read_loop(peer)
        finally:
            writer.cancel()
            await self._unregister(peer)
        return node_id

    async def _handshake(self, ws: Any, expected_id: bytes | None) -> tuple[bytes, str]:
        challenge = os.urandom(32)
        await ws.send_bytes(
            encode_frame(
                "hello",
                {
                    "chain_id": self.chain_id,
                    "node_id": self.node_id,
                    "challenge": challenge,
                    "moniker": self.moniker,
                    "version": PROTOCOL_VERSION,
                },
            )
        )
        hello = await _receive_handshake_frame(ws, "hello")
        peer_chain, peer_id, peer_challenge, moniker = (
            hello.get("chain_id"),
            hello.get("node_id"),
            hello.get("challenge"),
            hello.get("moniker"),
        )
        if peer_chain != self.chain_id:
            raise HandshakeFailed(f"peer is on chain {peer_chain!r}, this node is on {self.chain_id!r}")
        if not isinstance(peer_id, bytes) or len(peer_id) != 32:
            raise HandshakeFailed("peer node id is not 32 bytes")
        if not isinstance(peer_challenge, bytes) or len(peer_challenge) != 32:
            raise HandshakeFailed("peer challenge is not 32 bytes")
        if not isinstance(moniker, str) or len(moniker) > 64:
            raise HandshakeFailed("peer moniker is not text of at most 64 characters")
        if peer_id == self.node_id:
            raise HandshakeFailed("connected to itself")
        if expected_id is not None and peer_id != expected_id:
            raise HandshakeFailed(f"peer is {peer_id.hex()}, expected {expected_id.hex()}")
        if self._is_blocked(peer_id, moniker):
            self.stats["refused_blocked"] += 1
            raise HandshakeFailed(f"links to {moniker} are cut (devnet partition)")
        signature = self.keypair.sign(handshake_sign_bytes(self.chain_id, peer_challenge, self.node_id))
        await ws.send_bytes(encode_frame("auth", {"signature": signature}))
        auth = await _receive_handshake_frame(ws, "auth")
        peer_signature = auth.get("signature")
        if not isinstance(peer_signature, bytes) or not verify_signature(
            peer_id, handshake_sign_bytes(self.chain_id, challenge, peer_id), peer_signature
        ):
            raise HandshakeFailed("peer's handshake signature does not verify")
        return peer_id, moniker

    def _register(self, peer: Peer) -> bool:
        existing = self.peers.get(peer.node_id)
        if existing is not None:
            keeper = min(self.node_id, peer.node_id)
            # Keep the link dialled by the smaller id; between two links of the same dialler the
            # new one wins (the old one is likely dead and not yet noticed).
            if existing.dialer_id == keeper and peer.dialer_id != keeper:
                self.stats["duplicate_link"] += 1
                return False
            self._spawn(self._close_peer(existing))
            existing.data["replaced"] = True
        self.peers[peer.node_id] = peer
        log.info("peer %s connected (%s, %s)", peer.name, "outbound" if peer.outbound else "inbound", peer.remote)
        if self._on_connect is not None:
            self._on_connect(peer)
        return True

    async def _unregister(self, peer: Peer) -> None:
        if self.peers.get(peer.node_id) is peer:
            del self.peers[peer.node_id]
            log.info("peer %s disconnected", peer.name)
            if self._on_disconnect is not None:
                self._on_disconnect(peer)
        peer.data["closed"].set()
        await _close_quietly(peer.ws, 1000, "bye")

    async def _close_peer(self, peer: Peer) -> None:
        await _close_quietly(peer.ws, 1000, "closing")

    # the link -----------------------------------------------------------------------------------------
    async def _write_loop(self, peer: Peer) -> None:
        try:
            while True:
                frame = await peer.queue.get()
                if frame is None:
                    return
                await peer.ws.send_bytes(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError, OSError) as exc:
            log.debug("writing to %s failed: %s", peer.name, exc)
            await _close_quietly(peer.ws, 1011, "write failed")

    async def _read_loop(self, peer: Peer) -> None:
        limit = self.config.max_message_bytes
        async for msg in peer.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                if len(msg.data) > limit:
                    self.stats["dropped_oversize"] += 1
                    continue
                self._on_frame(peer, msg.data)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                self.stats["link_errors"] += 1  # includes frames past the slack: aiohttp closes
                log.info("link to %s failed: %s", peer.name, peer.ws.exception())
                return
            else:
                self.stats["dropped_malformed"] += 1  # text frames carry nothing here

    def _on_frame(self, peer: Peer, data: bytes) -> None:
        try:
            frame = decode(data, self.config.max_message_bytes)
        except EncodingError:
            self.stats["dropped_malformed"] += 1
            return
        if not (isinstance(frame, list) and len(frame) == 2 and isinstance(frame[0], str) and frame[0] in self._kinds):
            self.stats["dropped_malformed"] += 1
            return
        self.stats[f"received_{frame[0]}"] += 1
        try:
            self._handler(peer, frame[0], frame[1])
        except Exception:  # the handler validates; whatever it missed must not take the node down
            self.stats["handler_errors"] += 1
            log.exception("handling %s from %s failed", frame[0], peer.name)


async def _receive_handshake_frame(ws: Any, kind: str) -> dict[str, Any]:
    msg = await ws.receive()
    if msg.type != aiohttp.WSMsgType.BINARY:
        raise HandshakeFailed(f"expected a binary {kind} frame, got {msg.type.name}")
    try:
        frame = decode(msg.data, 1 << 12)
    except EncodingError as exc:
        raise HandshakeFailed(f"{kind} frame: {exc}") from None
    if not (isinstance(frame, list) and len(frame) == 2 and frame[0] == kind and isinstance(frame[1], dict)):
        raise HandshakeFailed(f"expected a {kind} frame")
    return frame[1]


async def _close_quietly(ws: Any, code: int, message: str) -> None:
    try:
        await ws.close(code=code, message=message.encode()[:120])
    except Exception:  # closing an already broken link
        pass
