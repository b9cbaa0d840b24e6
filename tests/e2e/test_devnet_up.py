"""Scenarios 1 and 6 of issue 7, and `hearth devnet up` itself: four validators commit one chain, a
transfer sent to one is visible on all, and the supply is conserved while demurrage and UBI move."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from devnet.manifest import Manifest, ValidatorEntry
from devnet.processes import is_running, poll_until
from tests.e2e.conftest import MakeDevnet, kill_everything
from tests.e2e.helpers import assert_one_chain, call, check_conservation, hearth, wait_for_growth
from devnet.network import Devnet

pytestmark = pytest.mark.timeout(120)

SAMPLE_INTERVAL_S = 0.02


def test_a_transfer_sent_to_one_validator_is_committed_on_all_with_one_chain(make_devnet: MakeDevnet) -> None:
    net = make_devnet()
    before = {name: hearth(net, "wallet", "balance", name, "--periods", "0") for name in ("alice", "bob")}
    sent = hearth(net, "wallet", "send", "--from", "alice", "--to", "bob", "--amount", "7", "--wait", via="v3")
    assert sent["committed"]
    for entry in net.manifest.validators:
        found = poll_until(lambda: call(entry, "tx", hash=sent["hash"]), 20, f"the transfer on {entry.name}")
        assert found["height"] == sent["height"]
    wait_for_growth(net, list(net.manifest.names), 2, 30)
    top = assert_one_chain(net)
    assert top >= sent["height"]
    bob = hearth(net, "wallet", "balance", "bob", "--periods", "0", via="v1")
    assert bob["balance"] > before["bob"]["balance"] - 10**6  # +7 coins, less at most a period's demurrage


def test_supply_is_conserved_at_every_height_while_demurrage_and_ubi_move(make_devnet: MakeDevnet) -> None:
    net = make_devnet(period_seconds=2)
    entries = list(net.manifest.validators)
    first_period = call(entries[0], "status")["period"]
    samples: dict[str, dict[int, dict[str, int]]] = {e.name: {} for e in entries}
    done = threading.Event()
    errors: list[BaseException] = []

    def sample(entry: ValidatorEntry) -> None:
        # One sampler per node, polling faster than blocks commit, so (nearly) every height is read.
        while not done.is_set():
            try:
                supply = call(entry, "supply")
                samples[entry.name].setdefault(supply["height"], supply)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            time.sleep(SAMPLE_INTERVAL_S)

    threads = [threading.Thread(target=sample, args=(e,), daemon=True) for e in entries]
    for t in threads:
        t.start()
    try:
        # Demurrage and UBI are settled when an account is touched: keep touching accounts across periods.
        def three_periods_on() -> bool:
            hearth(net, "wallet", "send", "--from", "alice", "--to", "carol", "--amount", "1", "--wait")
            return bool(call(entries[0], "status")["period"] >= first_period + 3)

        poll_until(three_periods_on, 60, "three periods of transfers", interval_s=0.2)
    finally:
        done.set()
        for t in threads:
            t.join(10)
    assert not errors, errors

    for name, by_height in samples.items():
        for supply in by_height.values():
            check_conservation(supply)
        heights = sorted(by_height)
        coverage = len(heights) / (heights[-1] - heights[0] + 1)
        print(f"{name}: sampled {coverage:.0%} of heights {heights[0]}..{heights[-1]}")
        assert coverage >= 0.9, f"{name}: sampled only {coverage:.0%} of heights {heights[0]}..{heights[-1]}"
    # Deterministic: every node reports the same totals at a height.
    reference = samples[entries[0].name]
    for name, by_height in samples.items():
        for h, supply in by_height.items():
            if h in reference:
                assert supply == reference[h], f"{name} and {entries[0].name} disagree on the supply at height {h}"
    # Visible movement: demurrage collected and UBI paid grew at several heights, never shrank.
    ordered = [reference[h] for h in sorted(reference)]
    for field in ("demurrage_collected", "ubi_paid"):
        values = [s[field] for s in ordered]
        assert values == sorted(values), f"{field} went down"
        assert len(set(values)) >= 3, f"{field} moved at fewer than 2 heights: {sorted(set(values))}"
    assert_one_chain(net)


def test_devnet_up_runs_until_interrupted_and_stops_every_validator(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    out_path = tmp_path / "up.out"
    with open(out_path, "w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "devnet", "up", "--dir", str(directory), "--validators", "4", "--period-seconds", "3"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        poll_until(lambda: up.poll() is not None or "Ctrl-C" in out_path.read_text(), 90, "up to report the devnet running")
        assert up.poll() is None, out_path.read_text()
        net = Devnet(directory)
        entries = net.reload().validators
        assert all(is_running(e) for e in entries)
        doc = json.loads((directory / "devnet.json").read_text())
        assert "UNENCRYPTED" in doc["warning"]

        # Another terminal kills and restarts a validator: up reports both, and still stops it at the end.
        net.kill("v2")
        poll_until(lambda: "v2 is not running" in out_path.read_text(), 10, "up to report v2 down")
        net.start("v2")
        poll_until(lambda: "v2 is running again" in out_path.read_text(), 10, "up to report v2 up")
        entries = net.reload().validators

        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
        output = out_path.read_text()
        assert "UNENCRYPTED" in output and "HEARTH_HOME=" in output and "stopped" in output
        for line in ("NAME", "v1", "v4"):
            assert line in output
        assert not any(is_running(e) for e in entries)
        assert all(v.pid is None for v in Manifest.load(directory).validators)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        if (directory / "devnet.json").exists():
            kill_everything(Devnet(directory))



def test_up_fails_in_one_message_when_a_validator_cannot_start_and_leaves_nothing_running(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    runner = CliRunner()
    created = runner.invoke(main, ["devnet", "up", "--dir", str(directory), "--no-start"])
    assert created.exit_code == 0, created.output
    (directory / "validators" / "v2" / "config.json").write_text("{ not json")
    try:
        result = runner.invoke(main, ["devnet", "up", "--dir", str(directory), "--detach"])
        assert result.exit_code == 1, result.output
        assert "v2 exited while starting" in result.output and "config is not JSON" in result.output
        assert "Traceback" not in result.output
        assert not any(is_running(e) for e in Manifest.load(directory).validators)
    finally:
        kill_everything(Devnet(directory))
