"""Scenarios 2, 3 and 4 of issue 7: crashes and partitions of a four-validator devnet, driven with
`hearth devnet kill|start|partition|heal` and checked over RPC."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from cli.main import main
from devnet.network import Devnet
from devnet.processes import is_running
from tests.e2e.conftest import MakeDevnet
from tests.e2e.helpers import assert_one_chain, heights, wait_for_growth

pytestmark = pytest.mark.timeout(150)

STALL_WINDOW_S = 5.0
"""How long a stalled network is watched for a commit: over two rounds of its timeouts."""
PROGRESS_TIMEOUT_S = 45.0
ALL = ["v1", "v2", "v3", "v4"]


def devnet_cli(net: Devnet, *args: str) -> str:
    result = CliRunner().invoke(main, ["devnet", args[0], "--dir", str(net.directory), *args[1:]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def watch_stalled(net: Devnet, names: list[str], window_s: float) -> dict[str, int]:
    """Watch `names` for `window_s`: after at most one block already under way when the fault hit,
    no node's height moves; the heights at the end."""
    start = heights(net, names)
    settled: dict[str, int] | None = None
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        now = heights(net, names)
        for name in names:
            assert now[name] <= start[name] + 1, f"{name} committed {now[name] - start[name]} blocks while the network should stall"
        if settled is None and time.monotonic() > deadline - window_s / 2:
            settled = now
        time.sleep(0.2)  # observation interval: the assertion is that nothing happens in the window
    end = heights(net, names)
    assert settled is not None and end == settled, f"heights moved in the second half of the window: {settled} -> {end}"
    return end


def test_one_of_four_killed_the_rest_commit_and_it_catches_up_when_restarted(make_devnet: MakeDevnet) -> None:
    net = make_devnet()
    devnet_cli(net, "kill", "v4")
    assert not is_running(net.reload().validator("v4"))
    wait_for_growth(net, ["v1", "v2", "v3"], 5, PROGRESS_TIMEOUT_S)

    devnet_cli(net, "start", "v4")
    head = max(heights(net, ["v1", "v2", "v3"]).values())
    net.wait_for_height(head + 2, PROGRESS_TIMEOUT_S, ["v4"])
    top = assert_one_chain(net)
    assert top >= head


def test_two_of_four_killed_nothing_commits_and_nothing_forks_then_commits_resume(make_devnet: MakeDevnet) -> None:
    net = make_devnet()
    devnet_cli(net, "kill", "v3")
    devnet_cli(net, "kill", "v4")
    watch_stalled(net, ["v1", "v2"], STALL_WINDOW_S)
    assert_one_chain(net, ["v1", "v2"])

    devnet_cli(net, "start", "v3")
    devnet_cli(net, "start", "v4")
    wait_for_growth(net, ALL, 3, PROGRESS_TIMEOUT_S)
    assert_one_chain(net)


def test_partition_two_from_two_no_conflicting_commits_then_progress_after_healing(make_devnet: MakeDevnet) -> None:
    net = make_devnet()
    output = devnet_cli(net, "partition", "v1", "v2")
    assert "v1 v2 | v3 v4" in output
    watch_stalled(net, ALL, STALL_WINDOW_S)
    # Neither side has two thirds of the stake: no side committed anything the other did not.
    assert_one_chain(net)
    assert net.reload().blocked == {"v1": ("v3", "v4"), "v2": ("v3", "v4"), "v3": ("v1", "v2"), "v4": ("v1", "v2")}

    devnet_cli(net, "heal")
    assert net.reload().blocked == {}
    wait_for_growth(net, ALL, 3, PROGRESS_TIMEOUT_S)
    assert_one_chain(net)


def test_a_partition_survives_a_restart_of_a_cut_off_validator(make_devnet: MakeDevnet) -> None:
    """One validator cut off from three: the three commit, and restarting it does not heal it."""
    net = make_devnet()
    devnet_cli(net, "partition", "v4")
    wait_for_growth(net, ["v1", "v2", "v3"], 3, PROGRESS_TIMEOUT_S)
    devnet_cli(net, "restart", "v4")
    stuck = heights(net, ["v4"])["v4"]
    wait_for_growth(net, ["v1", "v2", "v3"], 3, PROGRESS_TIMEOUT_S)
    assert heights(net, ["v4"])["v4"] == stuck, "v4 got blocks through a partition"
    devnet_cli(net, "heal")
    net.wait_for_height(max(heights(net, ["v1"]).values()), PROGRESS_TIMEOUT_S, ["v4"])
    assert_one_chain(net)
