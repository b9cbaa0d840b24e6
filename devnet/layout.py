"""Writing a devnet to disk: validator homes, the shared genesis, the demo keyring and devnet.json.

    DIR/devnet.json            the manifest (devnet/manifest.py)
    DIR/genesis.json           the genesis every home holds a copy of
    DIR/keyring/keys/*.json    demo keys, UNENCRYPTED (HEARTH_HOME=DIR/keyring for the CLI)
    DIR/validators/NAME/       each validator's node home (consensus/config.py), its log in node.log

Local devnets listen on loopback ports picked below the kernel's ephemeral range, so an outgoing
connection of any program cannot take a validator's port between `up` and a later `start`.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cli.keystore import Keystore
from consensus.config import DevnetConfig, MempoolConfig, NodeConfig, NodeHome, P2PConfig, RPCConfig
from devnet.genesis_builder import DEMO_KEY_NAMES, DevnetEconomy, build_genesis_document, make_demo_keys
from devnet.manifest import MANIFEST_NAME, Manifest, ManifestError, ValidatorEntry
from ledger.crypto import Keypair

__all__ = ["DEFAULT_P2P_PORT", "DEFAULT_RPC_PORT", "create_devnet", "pick_free_ports", "signature_workers_for", "validator_names"]

PORT_RANGE = (20_000, 32_000)
"""Where local devnet ports are picked: below Linux's default ephemeral range (32768-60999)."""
DEFAULT_P2P_PORT = 26656
DEFAULT_RPC_PORT = 26657
VALIDATORS_MAX = 64
RECONNECT_MAX_MS = 1_000
"""Devnet peers redial at least once a second, so a healed partition or a restart reconnects fast."""


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system tells it, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def signature_workers_for(validators_here: int, cores: int) -> int:
    """`mempool.signature_workers` for a devnet's validators when `validators_here` of them share
    `cores` cores: none when there are at least as many validators as cores (every core already
    has a node's event loop to run, so a worker adds only the cost of handing it the transactions),
    else the node's default, one."""
    return 0 if validators_here >= cores else MempoolConfig().signature_workers


def validator_names(count: int) -> tuple[str, ...]:
    return tuple(f"v{i}" for i in range(1, count + 1))


def pick_free_ports(count: int, low: int = PORT_RANGE[0], high: int = PORT_RANGE[1]) -> list[int]:
    """`count` distinct loopback ports in [low, high) that nothing listens on now, from a random start
    (so concurrent devnets rarely race for the same ones)."""
    ports: list[int] = []
    start = random.randrange(low, high)
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"fewer than {count} free loopback ports in {low}-{high}")


def create_devnet(
    directory: Path,
    validators: int = 4,
    period_seconds: int = DevnetEconomy.period_seconds,
    hosts: tuple[str, ...] = (),
    chain_id: str | None = None,
    extra_accounts: Sequence[tuple[bytes, int]] = (),
) -> Manifest:
    """Write a new devnet at `directory` (which must not hold one) and return its manifest.

    With `hosts`, one validator per host (host names or addresses the validators can reach each
    other at), each listening on all interfaces at the default ports; else `validators` on loopback.
    `extra_accounts`: further funded (address, balance) accounts in the genesis (benchmarks)."""
    directory = directory.resolve()
    if (directory / MANIFEST_NAME).exists():
        raise ManifestError(f"{directory} already holds a devnet; use it, or delete the directory for a new one")
    count = len(hosts) if hosts else validators
    if not 1 <= count <= VALIDATORS_MAX:
        raise ValueError(f"a devnet has 1 to {VALIDATORS_MAX} validators, not {count}")
    names = validator_names(count)
    chain_id = chain_id or f"hearth-devnet-{secrets.token_hex(4)}"
    listen, advertised = _addresses(hosts, count)

    keypairs = [Keypair.generate() for _ in names]
    # validators on loopback share this machine's cores; with hosts, each has a machine (the default)
    workers = MempoolConfig().signature_workers if hosts else signature_workers_for(count, usable_cores())
    entries = []
    for i, name in enumerate(names):
        home = NodeHome(directory / "validators" / name)
        home.write_key(keypairs[i])
        home.data_dir.mkdir(parents=True, exist_ok=True)
        peers = tuple(f"{keypairs[j].public_key.hex()}@{advertised[j][0]}" for j in range(count) if j != i)
        config = NodeConfig(
            moniker=name,
            p2p=replace(P2PConfig(), listen=listen[i][0], peers=peers, reconnect_max_ms=RECONNECT_MAX_MS),
            rpc=RPCConfig(listen=listen[i][1]),
            mempool=MempoolConfig(signature_workers=workers),
            devnet=DevnetConfig(admin=not hosts, check_recorded_effects=True),  # the partition switch only on loopback devnets
        )
        home.write_config(config)
        entries.append(
            ValidatorEntry(
                name=name,
                node_id=keypairs[i].public_key.hex(),
                home=str(home.root),
                rpc_url=f"http://{advertised[i][1]}",
                p2p_address=advertised[i][0],
            )
        )

    demo = make_demo_keys()
    keyring = directory / "keyring"
    keystore = Keystore(keyring)
    for name, keypair in demo.items():
        keystore.create(name, keypair, None)  # unencrypted: devnet demo keys, said in devnet.json
    genesis = build_genesis_document(
        chain_id,
        int(time.time() * 1000),
        [(name, kp.public_key) for name, kp in zip(names, keypairs)],
        {name: kp.address for name, kp in demo.items()},
        replace(DevnetEconomy(), period_seconds=period_seconds),
        extra_accounts,
    )
    text = json.dumps(genesis, indent=2) + "\n"
    (directory / "genesis.json").write_text(text)
    for entry in entries:
        NodeHome(Path(entry.home)).genesis_path.write_text(text)

    manifest = Manifest(
        chain_id=chain_id,
        directory=str(directory),
        keyring=str(keyring),
        keys=dict(DEMO_KEY_NAMES),
        validators=tuple(entries),
        local=not hosts,
    )
    manifest.save()
    return manifest


def _addresses(hosts: tuple[str, ...], count: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Per validator: (p2p, rpc) listen addresses and (p2p, rpc) addresses others reach it at."""
    if not hosts:
        ports = pick_free_ports(2 * count)
        loopback = [(f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}") for i in range(count)]
        return loopback, loopback
    listen, advertised = [], []
    seen: dict[str, int] = {}
    for host in hosts:
        k = seen.get(host, 0)  # a host named twice runs two validators: the next ports up
        seen[host] = k + 1
        p2p, rpc = DEFAULT_P2P_PORT + 10 * k, DEFAULT_RPC_PORT + 10 * k
        listen.append((f"0.0.0.0:{p2p}", f"0.0.0.0:{rpc}"))
        advertised.append((f"{host}:{p2p}", f"{host}:{rpc}"))
    return listen, advertised
