from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from tests.ledger.helpers import key
from tests.rpc.conftest import rpc_genesis
from tests.rpc.fake_node import ServedNode

PASSWORD = "correct horse battery staple"

Hearth = Callable[..., Result]


@pytest.fixture
def served() -> Iterator[ServedNode]:
    with ServedNode(rpc_genesis()) as s:
        yield s


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def hearth(served: ServedNode, home: Path) -> Hearth:
    """Run `hearth ARGS...` against the served fake node with HOME set; returns click's Result."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        environment = {"HEARTH_RPC": served.url, "HEARTH_HOME": str(home), **(env or {})}
        return CliRunner().invoke(main, list(args), input=input, env=environment, catch_exceptions=False)

    return run


def seed_file(tmp_path: Path, i: int) -> Path:
    """A file holding the seed of test key i (key 1 and 2 hold coins in rpc_genesis)."""
    path = tmp_path / f"seed{i}"
    path.write_text(key(i).seed.hex() + "\n")
    return path


@pytest.fixture
def alice(hearth: Hearth, tmp_path: Path, password_file: Path) -> str:
    """Key 'alice' = test key 1 (50 coins, a member), encrypted under PASSWORD."""
    result = hearth("keys", "import", "alice", "--seed-file", str(seed_file(tmp_path, 1)), "--password-file", str(password_file))
    assert result.exit_code == 0, result.output
    return key(1).address.hex()


@pytest.fixture
def bob(hearth: Hearth, tmp_path: Path) -> str:
    """Key 'bob' = test key 2 (20 coins), unencrypted (devnet style)."""
    result = hearth("keys", "import", "bob", "--seed-file", str(seed_file(tmp_path, 2)), "--insecure-unencrypted")
    assert result.exit_code == 0, result.output
    return key(2).address.hex()
