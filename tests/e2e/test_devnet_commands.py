"""The `hearth devnet` process commands against a running devnet: what each says and does."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from devnet.network import Devnet
from tests.e2e.conftest import MakeDevnet

pytestmark = pytest.mark.timeout(120)


def devnet_cli(net: Devnet, *args: str) -> str:
    result = CliRunner().invoke(main, ["devnet", args[0], "--dir", str(net.directory), *args[1:]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def running(net: Devnet) -> dict[str, bool]:
    return {s["name"]: s["running"] for s in json.loads(devnet_cli(net, "status", "--json"))}


def test_kill_start_restart_partition_heal_and_a_scenario(make_devnet: MakeDevnet) -> None:
    net = make_devnet()
    assert "killed v2" in devnet_cli(net, "kill", "v2")
    assert running(net) == {"v1": True, "v2": False, "v3": True, "v4": True}
    assert "started v2" in devnet_cli(net, "start", "v2")
    old_pid = net.reload().validator("v3").pid
    assert "restarted v3" in devnet_cli(net, "restart", "v3")
    assert net.reload().validator("v3").pid != old_pid
    assert all(running(net).values())

    assert "v1 v2 | v3 v4" in devnet_cli(net, "partition", "v1", "v2")
    assert net.reload().blocked == {"v1": ("v3", "v4"), "v2": ("v3", "v4"), "v3": ("v1", "v2"), "v4": ("v1", "v2")}
    assert "healed" in devnet_cli(net, "heal")
    assert net.reload().blocked == {}

    assert "crash-one" in devnet_cli(net, "scenario")
    output = devnet_cli(net, "scenario", "crash-one")
    assert "[crash-one 5/5] OneChain" in output and "crash-one: passed" in output

    assert "stopped every validator" in devnet_cli(net, "stop")
    assert not any(running(net).values())
