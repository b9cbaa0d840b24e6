"""`pytest tests/simulation --seed N` runs the simulation of one seed, as a failure message says."""

from __future__ import annotations

import pytest

DEFAULT_SEEDS = 300


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simulation")
    group.addoption("--seed", type=int, default=None, help="simulate only this seed (replays a failure)")
    group.addoption("--seeds", type=int, default=DEFAULT_SEEDS, help="simulate seeds 0 to N-1")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" not in metafunc.fixturenames:
        return
    # getoption with a default: this conftest is not an initial one when pytest runs all of tests/,
    # and then the options are not registered.
    one = metafunc.config.getoption("seed", default=None)
    count = metafunc.config.getoption("seeds", default=DEFAULT_SEEDS)
    metafunc.parametrize("seed", [one] if one is not None else list(range(count)))
