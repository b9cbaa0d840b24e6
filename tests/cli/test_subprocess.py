"""The main member flow through real `hearth` processes against the fake node on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import PASSWORD, seed_file
from tests.rpc.fake_node import ServedNode

REPO = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_member_flow_in_subprocesses(served: ServedNode, home: Path, tmp_path: Path, password_file: Path) -> None:
    env = {**os.environ, "HEARTH_RPC": served.url, "HEARTH_HOME": str(home)}
    imported = run(env, "keys", "import", "alice", "--seed-file", str(seed_file(tmp_path, 1)), "--password-file", str(password_file))
    assert imported.returncode == 0, imported.stderr
    assert run(env, "keys", "new", "bob", "--password-file", str(password_file)).returncode == 0
    balance = json.loads(run(env, "wallet", "balance", "alice", "--json").stdout)
    assert balance["balance"] == 50_000_000
    sent = run(env, "wallet", "send", "--from", "alice", "--to", "bob", "--amount", "12.5", "--wait", "--password-file", str(password_file), "--json")
    assert sent.returncode == 0, sent.stderr
    outcome = json.loads(sent.stdout)
    assert outcome["committed"] is True and outcome["height"] == 1
    shown = run(env, "tx", "show", outcome["hash"])
    assert shown.returncode == 0 and "12.500000 coins" in shown.stdout
    assert "12.500000" in run(env, "wallet", "balance", "bob").stdout
    assert json.loads(run(env, "status", "--json").stdout)["height"] == 1
    for result in (imported, sent, shown):
        assert PASSWORD not in result.stdout + result.stderr


def test_user_errors_exit_non_zero_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "HEARTH_RPC": "http://127.0.0.1:9", "HEARTH_HOME": str(tmp_path)}
    unreachable = run(env, "status")
    assert unreachable.returncode == 3 and unreachable.stderr.startswith("error: cannot reach the node")
    unknown_key = run(env, "wallet", "send", "--from", "nobody", "--to", "ab" * 32, "--amount", "1")
    assert unknown_key.returncode == 1 and unknown_key.stderr.count("\n") == 1
    for result in (unreachable, unknown_key):
        assert "Traceback" not in result.stderr
