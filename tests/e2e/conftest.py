"""End-to-end tests: real validator processes of a devnet on loopback, driven through devnet/network.py
and the `hearth` CLI, checked over RPC.

Every devnet a test makes is torn down in a finally by SIGKILL of every validator it started, so no
test leaves a process behind, even when it fails; the nodes' logs are printed when a test fails.
Waits are bounded polls (devnet/processes.poll_until), never sleeps standing in for synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet import processes
from devnet.layout import create_devnet
from devnet.network import Devnet

START_TIMEOUT_S = 45.0
PERIOD_SECONDS = 2
"""Short periods so demurrage and UBI move within a test."""

MakeDevnet = Callable[..., Devnet]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Keep each phase's report on the item, so fixtures can print the nodes' logs when a test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def make_devnet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeDevnet]:
    """Build a devnet (started and at height 1 unless start=False); every one is killed afterwards."""
    made: list[Devnet] = []

    def make(validators: int = 4, period_seconds: int = PERIOD_SECONDS, start: bool = True) -> Devnet:
        manifest = create_devnet(tmp_path / f"net{len(made)}", validators=validators, period_seconds=period_seconds)
        net = Devnet(manifest.directory)
        made.append(net)
        if start:
            net.start_all()
            net.wait_for_height(1, START_TIMEOUT_S)
        return net

    try:
        yield make
    finally:
        report = getattr(request.node, "report_call", None)
        for net in made:
            kill_everything(net)
            if report is not None and report.failed:
                print(node_logs(net))


def kill_everything(net: Devnet) -> None:
    """SIGKILL every validator of `net` still running; does not raise (it runs in a finally)."""
    for entry in net.reload().validators:
        try:
            processes.kill_validator(entry)
        except Exception as exc:  # noqa: BLE001 - keep killing the others
            print(f"could not kill {entry.name} (pid {entry.pid}): {exc}")


def node_logs(net: Devnet, lines: int = 40) -> str:
    out = []
    for entry in net.manifest.validators:
        path = processes.log_path(entry)
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        out.append(f"--- {entry.name} {path} (last {lines} lines)\n" + "\n".join(text[-lines:]))
    return "\n".join(out)
