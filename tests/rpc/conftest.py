from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.rpc_client import RpcClient
from ledger import Genesis
from tests.ledger.helpers import make_genesis
from tests.rpc.fake_node import ServedNode

COIN = 1_000_000


def rpc_genesis() -> Genesis:
    """Accounts 1 and 2 hold coins, 1 is a member, 3 is a validator, 0 is the registrar."""
    return make_genesis({1: 50 * COIN, 2: 20 * COIN}, commons_pool=100 * COIN, members=(1,), validators={3: 10 * COIN})


@pytest.fixture
def served() -> Iterator[ServedNode]:
    with ServedNode(rpc_genesis()) as s:
        yield s


@pytest.fixture
def client(served: ServedNode) -> RpcClient:
    return RpcClient(served.url)
