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


def test_start_tunes_the_garbage_collector_once_the_node_is_loaded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`node start` freezes what the loaded node holds and sets GC_THRESHOLDS before it runs
    (checked in a child interpreter, so this process keeps its own collector settings)."""
    import subprocess
    import sys

    import consensus.node

    calls: list[str] = []

    class LoadedNode:
        def __init__(self, home: Path, byzantine_equivocate: bool = False) -> None:
            calls.append("loaded")

        async def run_until(self, stop: object) -> None:
            calls.append("ran")

    monkeypatch.setattr(consensus.node, "Node", LoadedNode)
    monkeypatch.setattr(consensus.node, "tune_garbage_collection", lambda: calls.append("tuned"))
    home = tmp_path / "n"
    CliRunner().invoke(main, ["node", "init", "--home", str(home)])
    result = CliRunner().invoke(main, ["node", "start", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert calls == ["loaded", "tuned", "ran"]

    script = (
        "import gc\n"
        "from consensus.node import GC_THRESHOLDS, tune_garbage_collection\n"
        "before = gc.get_freeze_count()\n"
        "tune_garbage_collection()\n"
        "assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()\n"
        "assert gc.get_freeze_count() > before\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=60)
