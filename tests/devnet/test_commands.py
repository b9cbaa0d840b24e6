"""devnet/commands.py through click's CliRunner, without starting any process."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from devnet.manifest import Manifest


def _hearth(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_up_no_start_writes_the_devnet_and_warns(tmp_path: Path) -> None:
    code, output = _hearth("devnet", "up", "--dir", str(tmp_path), "--validators", "3", "--period-seconds", "5", "--no-start")
    assert code == 0, output
    assert "UNENCRYPTED" in output
    manifest = Manifest.load(tmp_path)
    assert manifest.names == ("v1", "v2", "v3")
    assert json.loads((tmp_path / "genesis.json").read_text())["params"]["period_seconds"] == 5


def test_hosts_need_no_start(tmp_path: Path) -> None:
    code, output = _hearth("devnet", "up", "--dir", str(tmp_path), "--hosts", "a,b")
    assert code == 2 and "--no-start" in output
    code, output = _hearth("devnet", "up", "--dir", str(tmp_path), "--hosts", "a,b", "--no-start")
    assert code == 0, output
    assert "hearth node start --home" in output
    for command in (["kill", "v1"], ["start", "v1"], ["stop"], ["partition", "v1"], ["heal"]):
        code, output = _hearth("devnet", command[0], "--dir", str(tmp_path), *command[1:])
        assert code == 1 and "several machines" in output, (command, output)


def test_status_of_a_stopped_devnet(tmp_path: Path) -> None:
    _hearth("devnet", "up", "--dir", str(tmp_path), "--validators", "2", "--no-start")
    code, output = _hearth("devnet", "status", "--dir", str(tmp_path))
    assert code == 0, output
    assert output.count("stopped") == 2
    code, output = _hearth("devnet", "status", "--dir", str(tmp_path), "--json")
    assert [s["running"] for s in json.loads(output)] == [False, False]


def test_errors_are_one_line(tmp_path: Path) -> None:
    code, output = _hearth("devnet", "status", "--dir", str(tmp_path / "none"))
    assert code == 1 and "no devnet" in output
    _hearth("devnet", "up", "--dir", str(tmp_path), "--validators", "2", "--no-start")
    code, output = _hearth("devnet", "start", "--dir", str(tmp_path), "v9")
    assert code == 1 and "no validator named 'v9'" in output
    code, output = _hearth("devnet", "partition", "--dir", str(tmp_path), "v1", "v2")
    assert code == 1 and "leaves at least one out" in output
