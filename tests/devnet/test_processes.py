"""devnet/processes.py: which pids count as a validator's, and signalling only those."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet import processes
from devnet.manifest import Manifest, ManifestError, ValidatorEntry
from devnet.processes import DevnetTimeout, is_running, kill_validator, partition_plan, poll_until, stop_validator

SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: exit(0)); time.sleep(60)"


def _entry(home: Path, pid: int | None) -> ValidatorEntry:
    return ValidatorEntry("v1", "aa" * 32, str(home), "http://127.0.0.1:1", "127.0.0.1:2", pid)


@pytest.fixture
def fake_node(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line looks like a validator's of home tmp_path/v1 (python ignores the rest)."""
    process = subprocess.Popen([sys.executable, "-c", SLEEPER, "node", "start", "--home", str(tmp_path / "v1")])
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.parametrize("have_proc", [True, False], ids=["proc", "ps"])
def test_only_the_validators_own_process_counts(tmp_path: Path, fake_node: subprocess.Popen[bytes], have_proc: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "HAVE_PROC", have_proc)
    poll_until(lambda: is_running(_entry(tmp_path / "v1", fake_node.pid)), 10, "the fake node to exec")
    assert not is_running(_entry(tmp_path / "v", fake_node.pid)), "a prefix of the home is another validator"
    assert not is_running(_entry(tmp_path / "v1", None))
    assert not is_running(_entry(tmp_path / "v1", os.getpid())), "a recycled pid running something else"


def test_a_child_still_inside_execve_counts_as_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Popen returns before the kernel has set the child's command line: /proc shows it empty for a moment
    (seen as `devnet restart` failing with "exited while starting"). A child of ours is judged by its args."""
    process = subprocess.Popen([sys.executable, "-c", SLEEPER, "node", "start", "--home", str(tmp_path / "v1")])
    try:
        monkeypatch.setitem(processes._children, process.pid, process)
        monkeypatch.setattr(processes, "_process_info", lambda pid: ("R", ""))  # what /proc said mid-execve
        assert is_running(_entry(tmp_path / "v1", process.pid))
        assert not is_running(_entry(tmp_path / "v", process.pid)), "our child, but another validator's home"
        process.kill()
        process.wait(10)
        assert not is_running(_entry(tmp_path / "v1", process.pid)), "exited: no longer running, whatever /proc says"
        assert process.pid not in processes._children
    finally:
        process.kill()
        process.wait(10)


def test_kill_and_stop_only_return_once_the_process_is_gone(tmp_path: Path, fake_node: subprocess.Popen[bytes]) -> None:
    entry = _entry(tmp_path / "v1", fake_node.pid)
    poll_until(lambda: is_running(entry), 10, "the fake node to exec")
    stop_validator(entry)  # SIGTERM; a zombie of ours counts as gone (and is reaped)
    assert not is_running(entry)
    fake_node.wait(5)  # its status may be gone with the reaping: only that it ended matters
    kill_validator(entry)  # not running: nothing to do, no error


def test_kill_an_unreaped_child(tmp_path: Path, fake_node: subprocess.Popen[bytes]) -> None:
    entry = _entry(tmp_path / "v1", fake_node.pid)
    poll_until(lambda: is_running(entry), 10, "the fake node to exec")
    kill_validator(entry)
    assert not is_running(entry)
    fake_node.wait(5)  # reaped already by is_running (os.waitpid): any status


def test_poll_until_has_a_deadline() -> None:
    with pytest.raises(DevnetTimeout, match="waiting for nothing"):
        poll_until(lambda: None, 0.2, "nothing", interval_s=0.05)
    assert poll_until(lambda: 3, 1, "three") == 3


def test_partition_plan_cuts_both_directions(tmp_path: Path) -> None:
    entries = tuple(ValidatorEntry(f"v{i}", "aa" * 32, str(tmp_path / f"v{i}"), "http://x:1", "x:2") for i in range(1, 5))
    manifest = Manifest("c", str(tmp_path), str(tmp_path / "k"), {}, entries)
    assert partition_plan(manifest, ["v1", "v2"]) == {"v1": ("v3", "v4"), "v2": ("v3", "v4"), "v3": ("v1", "v2"), "v4": ("v1", "v2")}
    assert partition_plan(manifest, ["v4"])["v1"] == ("v4",)
    with pytest.raises(ManifestError):
        partition_plan(manifest, ["v9"])
    with pytest.raises(ManifestError):
        partition_plan(manifest, ["v1", "v2", "v3", "v4"])
