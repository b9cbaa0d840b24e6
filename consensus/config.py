"""A node's home directory: its key, its configuration, its genesis and its data.

Layout of `--home DIR`:

    DIR/config.json        this file's `NodeConfig`, edited by hand or by the devnet
    DIR/genesis.json       the chain's genesis (identical on every node)
    DIR/node_key           the node's ed25519 seed, 64 hex characters, mode 0600
    DIR/data/ledger/       LevelDB: ledger state, blocks and commit certificates
    DIR/data/signer_state  the double-sign guard's last signed height/round/step and lock (two slots)
    DIR/data/wal/          consensus messages of the current height

The node key is also the validator key: a node is a validator when its public key is in the
validator set. Every tunable value has a default here and a stated bound.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ledger.crypto import Keypair

__all__ = [
    "ConsensusConfig",
    "DevnetConfig",
    "MempoolConfig",
    "NodeConfig",
    "NodeHome",
    "P2PConfig",
    "RPCConfig",
    "TxIndexConfig",
    "ConfigError",
    "parse_peer",
]


class ConfigError(ValueError):
    """The home directory or its config is missing or malformed; the message says what to fix."""


@dataclass(frozen=True)
class P2PConfig:
    listen: str = "127.0.0.1:26656"
    peers: tuple[str, ...] = ()
    """Peers to dial, each `host:port` or `NODE_ID_HEX@host:port` (then the handshake must prove that key)."""
    max_message_bytes: int = 8 * 1024 * 1024
    """Largest frame accepted from a peer; a larger one is dropped and counted. Bounds a block's size."""
    send_queue_max: int = 1024
    """Frames queued for one peer; a frame for a full queue is dropped and counted (consensus resends)."""
    max_peers: int = 64
    reconnect_min_ms: int = 100
    reconnect_max_ms: int = 5_000
    handshake_timeout_ms: int = 5_000


@dataclass(frozen=True)
class RPCConfig:
    listen: str = "127.0.0.1:26657"
    rate_per_s: int = 100
    """JSON-RPC calls per second each client address may sustain (a batch costs one per call)."""
    rate_burst: int = 200


@dataclass(frozen=True)
class ConsensusConfig:
    timeout_propose_ms: int = 3_000
    """As CometBFT's: a proposer that lags its peers (a slow commit, a slow check of a block's
    signatures) still gets its block in. At 1 s, a lag under load cost a round and a block twice
    the size. A crashed proposer costs this much per round it holds."""
    timeout_prevote_ms: int = 500
    timeout_precommit_ms: int = 500
    timeout_delta_ms: int = 250
    """Each timeout grows by this much per round, so a slow network eventually fits in a round."""
    block_interval_ms: int = 400
    """Least time between deciding a block and proposing the next (the commit itself counts towards
    it): lets transactions gather. Each height costs a validator a few ms whatever its size (a
    proposal, two rounds of votes signed and checked, the WAL's and the signer guard's durable
    writes, the top of the state tree): at 5,000 transfers/s a devnet ran 3.4 heights a second at
    200 ms and about 2 at 400, which costs 0.1-0.2 s more submit-to-commit latency
    (tests/benchmarks/README.md, "block_interval_ms")."""
    empty_block_interval_ms: int = 0
    """When the mempool is empty after a commit, wait up to this long (if longer than
    block_interval_ms) before starting the next height; a transaction arriving ends the wait.
    0: no longer wait, empty blocks follow each other every block_interval_ms."""
    max_clock_drift_ms: int = 2_000
    """A proposal whose time is further than this ahead of the validator's clock is refused."""
    max_block_bytes: int = 4 * 1024 * 1024
    max_block_txs: int = 10_000
    gossip_interval_ms: int = 500
    """How often a node resends its current-height messages and its status while the height stands."""


@dataclass(frozen=True)
class MempoolConfig:
    max_txs: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    signature_workers: int = 1
    """Worker processes of each of the node's two signature verifiers (peers' gossip; and what
    someone waits on: a block's unseen transactions, clients' submissions). They keep the checks off
    the event loop's core. 0: the checks run in the node's own process, on its event loop, a few
    hundred transactions a turn: for a node that shares its cores with others (a devnet of at least
    as many validators as cores), where a worker adds no core to check on, only the cost of sending
    it the transactions and parsing them again (consensus/verifier.py)."""


@dataclass(frozen=True)
class TxIndexConfig:
    enabled: bool = True
    """Keep the transaction indexes (by hash, and each account's history) that RPC `tx` and
    `account_txs` answer from. Off, as CometBFT's `indexer = "null"`, for a validator that serves no
    such queries: they are three writes a transfer, spread over the whole key space, which LevelDB's
    compactions then keep rewriting (consensus/block_store.py). Those calls then answer -32005. Turned on
    again, the indexes cover the blocks from then on (`status.tx_index_from_height`)."""


@dataclass(frozen=True)
class DevnetConfig:
    admin: bool = False
    """Devnet only: serves `/admin/partition` on the p2p listener (cut and restore links to named
    peers) and allows `hearth node start --byzantine-equivocate`. Never enable it on a real network."""
    check_recorded_effects: bool = False
    """Build and execute every block twice, with and without the mempool's recorded effects (ledger
    `apply_known_effect`), and stop the node if the two differ. A safety net for devnets and tests (it
    doubles block execution); the devnets `hearth devnet up` makes have it on, the benchmarks off."""


@dataclass(frozen=True)
class NodeConfig:
    moniker: str = "node"
    p2p: P2PConfig = field(default_factory=P2PConfig)
    rpc: RPCConfig = field(default_factory=RPCConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    tx_index: TxIndexConfig = field(default_factory=TxIndexConfig)
    devnet: DevnetConfig = field(default_factory=DevnetConfig)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "NodeConfig":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not JSON: {exc}") from None
        return _from_dict(cls, doc, "config")

    def validate(self) -> None:
        parse_host_port(self.p2p.listen)
        parse_host_port(self.rpc.listen)
        for peer in self.p2p.peers:
            parse_peer(peer)
        c = self.consensus
        for name in ("timeout_propose_ms", "timeout_prevote_ms", "timeout_precommit_ms", "timeout_delta_ms"):
            _bounded(name, getattr(c, name), 1, 600_000)
        _bounded("block_interval_ms", c.block_interval_ms, 0, 600_000)
        _bounded("empty_block_interval_ms", c.empty_block_interval_ms, 0, 3_600_000)
        _bounded("max_clock_drift_ms", c.max_clock_drift_ms, 0, 3_600_000)
        _bounded("gossip_interval_ms", c.gossip_interval_ms, 10, 600_000)
        _bounded("max_block_txs", c.max_block_txs, 1, 10_000)
        _bounded("max_block_bytes", c.max_block_bytes, 1024, self.p2p.max_message_bytes // 2)
        _bounded("p2p.max_message_bytes", self.p2p.max_message_bytes, 64 * 1024, 256 * 1024 * 1024)
        _bounded("p2p.send_queue_max", self.p2p.send_queue_max, 1, 1_000_000)
        _bounded("rpc.rate_per_s", self.rpc.rate_per_s, 1, 10_000_000)
        _bounded("rpc.rate_burst", self.rpc.rate_burst, 100, 10_000_000)
        _bounded("mempool.max_txs", self.mempool.max_txs, 1, 10_000_000)
        _bounded("mempool.max_bytes", self.mempool.max_bytes, 1024, 1 << 34)
        _bounded("mempool.signature_workers", self.mempool.signature_workers, 0, 16)


def _bounded(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def _from_dict(cls: Any, doc: Any, where: str) -> Any:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where} must be an object")
    known = {f.name: f for f in fields(cls)}
    unknown = set(doc) - known.keys()
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in doc.items():
        default = getattr(cls(), name)
        if hasattr(default, "__dataclass_fields__"):
            values[name] = _from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}.{name} must be a list of strings")
            values[name] = tuple(value)
        elif type(value) is not type(default):
            raise ConfigError(f"{where}.{name} must be {type(default).__name__}, got {type(value).__name__}")
        else:
            values[name] = value
    return replace(cls(), **values)


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{text!r} is not host:port")
    return host, int(port)


def parse_peer(text: str) -> tuple[bytes | None, str, int]:
    """`[NODE_ID_HEX@]host:port` -> (node id or None, host, port)."""
    node_id: bytes | None = None
    address = text
    if "@" in text:
        id_hex, _, address = text.partition("@")
        try:
            node_id = bytes.fromhex(id_hex)
        except ValueError:
            raise ConfigError(f"peer {text!r}: node id must be hex") from None
        if len(node_id) != 32:
            raise ConfigError(f"peer {text!r}: node id must be 64 hex characters")
    host, port = parse_host_port(address)
    return node_id, host, port


@dataclass(frozen=True)
class NodeHome:
    """Paths inside a node's home directory."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    @property
    def key_path(self) -> Path:
        return self.root / "node_key"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ledger_dir(self) -> Path:
        return self.data_dir / "ledger"

    @property
    def signer_path(self) -> Path:
        return self.data_dir / "signer_state"

    @property
    def legacy_signer_path(self) -> Path:
        """Where nodes from before the slotted signer state kept it (read once, then removed)."""
        return self.data_dir / "signer.json"

    @property
    def wal_dir(self) -> Path:
        return self.data_dir / "wal"

    # key ----------------------------------------------------------------------------------------------
    def write_key(self, keypair: Keypair) -> None:
        """Write the seed readable by the owner only; refuse to overwrite an existing key."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(keypair.seed.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def load_key(self) -> Keypair:
        try:
            text = self.key_path.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(f"no node key at {self.key_path}; run `hearth node init --home {self.root}`") from None
        try:
            return Keypair.from_seed(bytes.fromhex(text))
        except ValueError:
            raise ConfigError(f"{self.key_path} must hold 64 hex characters (an ed25519 seed)") from None

    # config -------------------------------------------------------------------------------------------
    def write_config(self, config: NodeConfig) -> None:
        config.validate()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(config.to_json())
        os.replace(tmp, self.config_path)

    def load_config(self) -> NodeConfig:
        try:
            text = self.config_path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"no config at {self.config_path}; run `hearth node init --home {self.root}`") from None
        config = NodeConfig.from_json(text)
        config.validate()
        return config
