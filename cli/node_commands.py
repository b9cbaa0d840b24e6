"""`hearth node init|start|id`: make a node's home, run it, show its id.

A thin layer: the home layout and config are consensus/config.py's, the runtime consensus/node.py's.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
from dataclasses import replace
from pathlib import Path

import click

from consensus.config import ConfigError, DevnetConfig, NodeConfig, NodeHome, P2PConfig, RPCConfig
from ledger.crypto import Keypair

__all__ = ["node"]


@click.group("node")
def node() -> None:
    """Run a Hearth node: a validator when its key is in the validator set, else a full node."""


@node.command("init")
@click.option("--home", "home_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The node's home directory.")
@click.option("--genesis", "genesis_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Copy this genesis into the home.")
@click.option("--moniker", default=None, help="The node's name, shown to peers and in logs (default: the home's name).")
@click.option("--p2p-listen", default=P2PConfig().listen, show_default=True, help="host:port for peer links.")
@click.option("--rpc-listen", default=RPCConfig().listen, show_default=True, help="host:port for the JSON-RPC.")
@click.option("--peers", default="", help="Comma-separated peers, each host:port or NODE_ID@host:port.")
@click.option("--devnet-admin", is_flag=True, help="Devnet only: enable the partition switch and the byzantine test flag.")
def node_init(
    home_dir: Path, genesis_file: Path | None, moniker: str | None, p2p_listen: str, rpc_listen: str, peers: str, devnet_admin: bool
) -> None:
    """Write a node key (kept if one exists) and a config; optionally copy a genesis."""
    home = NodeHome(home_dir)
    if home.key_path.exists():
        keypair = home.load_key()
        click.echo(f"keeping the existing node key {home.key_path}", err=True)
    else:
        keypair = Keypair.generate()
        home.write_key(keypair)
    config = NodeConfig(
        moniker=moniker or home_dir.resolve().name,
        p2p=replace(P2PConfig(), listen=p2p_listen, peers=tuple(p for p in (x.strip() for x in peers.split(",")) if p)),
        rpc=RPCConfig(listen=rpc_listen),
        devnet=DevnetConfig(admin=devnet_admin),
    )
    try:
        home.write_config(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if genesis_file is not None:
        shutil.copyfile(genesis_file, home.genesis_path)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"node id   {keypair.public_key.hex()}")
    click.echo(f"config    {home.config_path}")
    click.echo(f"node key  {home.key_path}")
    if not home.genesis_path.exists():
        click.echo(f"genesis   missing: put the chain's genesis at {home.genesis_path}")


@node.command("id")
@click.option("--home", "home_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def node_id(home_dir: Path) -> None:
    """Print the node id (its public key, which is also its validator address)."""
    try:
        click.echo(NodeHome(home_dir).load_key().public_key.hex())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@node.command("start")
@click.option("--home", "home_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning"]), show_default=True)
@click.option("--byzantine-equivocate", is_flag=True, hidden=True, help="Devnet test only: sign conflicting prevotes.")
def node_start(home_dir: Path, log_level: str, byzantine_equivocate: bool) -> None:
    """Run the node until SIGINT or SIGTERM; one log line per committed block."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from consensus.node import Node, tune_garbage_collection  # imported here: `hearth --help` stays fast

    try:
        if byzantine_equivocate and not NodeHome(home_dir).load_config().devnet.admin:
            raise click.ClickException("--byzantine-equivocate is for devnets: it needs devnet.admin in the config")
        instance = Node(home_dir, byzantine_equivocate=byzantine_equivocate)
    except (ConfigError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    tune_garbage_collection()
    try:
        asyncio.run(_run(instance))
    except OSError as exc:  # a listen address in use or not ours
        raise click.ClickException(f"cannot start the node: {exc}") from None


async def _run(instance: object) -> None:
    from consensus.node import Node

    assert isinstance(instance, Node)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await instance.run_until(stop)
