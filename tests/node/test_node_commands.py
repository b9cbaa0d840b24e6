"""`hearth node init|id|start` through click's CliRunner (no process is started here)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from consensus.config import NodeHome


def test_init_writes_a_private_key_and_a_config(tmp_path: Path) -> None:
    genesis = tmp_path / "g.json"
    genesis.write_text("{}")
    home = tmp_path / "n1"
    result = CliRunner().invoke(
        main,
        ["node", "init", "--home", str(home), "--genesis", str(genesis), "--moniker", "north",
         "--p2p-listen", "127.0.0.1:7001", "--rpc-listen", "127.0.0.1:7002", "--peers", "127.0.0.1:7101, 127.0.0.1:7201"],
    )
    assert result.exit_code == 0, result.output
    paths = NodeHome(home)
    assert stat.S_IMODE(paths.key_path.stat().st_mode) == 0o600
    config = paths.load_config()
    assert config.moniker == "north" and config.p2p.listen == "127.0.0.1:7001" and config.rpc.listen == "127.0.0.1:7002"
    assert config.p2p.peers == ("127.0.0.1:7101", "127.0.0.1:7201")
    assert not config.devnet.admin
    assert json.loads(paths.genesis_path.read_text()) == {}
    node_id = paths.load_key().public_key.hex()
    assert node_id in result.output
    shown = CliRunner().invoke(main, ["node", "id", "--home", str(home)])
    assert shown.output.strip() == node_id


def test_init_again_keeps_the_key(tmp_path: Path) -> None:
    home = tmp_path / "n"
    CliRunner().invoke(main, ["node", "init", "--home", str(home)])
    before = NodeHome(home).load_key().seed
    again = CliRunner().invoke(main, ["node", "init", "--home", str(home), "--moniker", "renamed"])
    assert again.exit_code == 0 and "keeping the existing node key" in again.output
    assert NodeHome(home).load_key().seed == before
    assert NodeHome(home).load_config().moniker == "renamed"


def test_init_refuses_a_malformed_address(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["node", "init", "--home", str(tmp_path / "n"), "--p2p-listen", "nowhere"])
    assert result.exit_code != 0 and "host:port" in result.output


def test_start_refuses_the_byzantine_flag_outside_a_devnet(tmp_path: Path) -> None:
    home = tmp_path / "n"
    CliRunner().invoke(main, ["node", "init", "--home", str(home)])
    result = CliRunner().invoke(main, ["node", "start", "--home", str(home), "--byzantine-equivocate"])
    assert result.exit_code != 0 and "devnet" in result.output


def test_start_without_a_genesis_says_what_is_missing(tmp_path: Path) -> None:
    home = tmp_path / "n"
    CliRunner().invoke(main, ["node", "init", "--home", str(home)])
    result = CliRunner().invoke(main, ["node", "start", "--home", str(home)])
    assert result.exit_code != 0 and "genesis" in result.output
