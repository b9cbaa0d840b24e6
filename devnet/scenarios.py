"""Fault scenarios as data: each a named sequence of steps against a running local devnet.

A step either perturbs the network (kill, start, restart, partition, heal) or checks it over the
validators' public RPC (commits, stalls, catches up, one chain). `run_scenario` performs the steps in
order; a check that fails raises `ScenarioFailed` naming the scenario and the step. The end-to-end
tests run every scenario of `SCENARIOS` against a fresh four-validator devnet, and
`hearth devnet scenario NAME` runs one against yours. Every wait has a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Union

from devnet.manifest import ValidatorEntry
from devnet.network import Devnet
from devnet.processes import DevnetTimeout, rpc

__all__ = [
    "CatchesUp",
    "Commits",
    "Heal",
    "Kill",
    "OneChain",
    "Partition",
    "Restart",
    "SCENARIOS",
    "Scenario",
    "ScenarioFailed",
    "Stalls",
    "Start",
    "Step",
    "assert_one_chain",
    "get_heights",
    "run_scenario",
]

RPC_TIMEOUT_S = 5.0
PROGRESS_TIMEOUT_S = 45.0
"""How long a step waits for blocks a healthy network commits in a few seconds."""
STALL_WINDOW_S = 5.0
"""How long a network that must not commit is watched: several rounds of its timeouts."""
OBSERVE_INTERVAL_S = 0.2


class ScenarioFailed(AssertionError):
    """A check of a scenario did not hold; the message names the scenario, the step and what was seen."""


# reading the chain ------------------------------------------------------------------------------------------
def _entries(net: Devnet, names: Iterable[str] | None) -> list[ValidatorEntry]:
    manifest = net.reload()
    return list(manifest.validators) if names is None else [manifest.validator(n) for n in names]


def get_heights(net: Devnet, names: Iterable[str] | None = None) -> dict[str, int]:
    return {e.name: int(rpc(e, "status", RPC_TIMEOUT_S)["height"]) for e in _entries(net, names)}


def get_chain(entry: ValidatorEntry, first: int, last: int) -> list[tuple[str, str]]:
    """(block hash, state root) at each height first..last, as `entry` serves them."""
    out = []
    for h in range(first, last + 1):
        block = rpc(entry, "block", RPC_TIMEOUT_S, height=h)
        if block is None:
            raise ScenarioFailed(f"{entry.name} has no block {h}")
        out.append((block["header"]["hash"], block["header"]["state_root"]))
    return out


def assert_one_chain(net: Devnet, names: Iterable[str] | None = None, first: int = 1) -> int:
    """Identical block hashes and state roots at every height all named validators have; the top
    height compared."""
    entries = _entries(net, names)
    top = min(get_heights(net, [e.name for e in entries]).values())
    reference = get_chain(entries[0], first, top)
    for entry in entries[1:]:
        theirs = get_chain(entry, first, top)
        if theirs != reference:
            height = first + next(i for i, (a, b) in enumerate(zip(reference, theirs)) if a != b)
            raise ScenarioFailed(f"{entry.name} and {entries[0].name} differ at height {height}")
    return top


# steps ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kill:
    """SIGKILL one validator, as a crash would."""

    name: str

    def run(self, net: Devnet) -> None:
        net.kill(self.name)


@dataclass(frozen=True)
class Start:
    name: str

    def run(self, net: Devnet) -> None:
        net.start(self.name)


@dataclass(frozen=True)
class Restart:
    """A clean stop (SIGTERM) and a start."""

    name: str

    def run(self, net: Devnet) -> None:
        net.restart(self.name)


@dataclass(frozen=True)
class Partition:
    """Cut `names` off from the other validators, both ways."""

    names: tuple[str, ...]

    def run(self, net: Devnet) -> None:
        net.partition(self.names)


@dataclass(frozen=True)
class Heal:
    def run(self, net: Devnet) -> None:
        net.heal()


@dataclass(frozen=True)
class Commits:
    """Every one of `names` commits until it is `blocks` past the highest of them now, while each of
    `frozen` stays at the height it has now."""

    names: tuple[str, ...]
    blocks: int = 3
    frozen: tuple[str, ...] = ()
    timeout_s: float = PROGRESS_TIMEOUT_S

    def run(self, net: Devnet) -> None:
        held = get_heights(net, self.frozen)
        target = max(get_heights(net, self.names).values()) + self.blocks
        try:
            net.wait_for_height(target, self.timeout_s, self.names)
        except DevnetTimeout as exc:
            raise ScenarioFailed(str(exc)) from None
        moved = {n: h for n, h in get_heights(net, self.frozen).items() if h != held[n]}
        if moved:
            raise ScenarioFailed(f"{sorted(moved)} got blocks they must not get: {held} -> {moved}")


@dataclass(frozen=True)
class Stalls:
    """For `window_s`, no one of `names` commits, beyond at most one block that was already under way
    when the fault hit; the second half of the window sees no height move at all."""

    names: tuple[str, ...]
    window_s: float = STALL_WINDOW_S

    def run(self, net: Devnet) -> None:
        start = get_heights(net, self.names)
        halfway: dict[str, int] | None = None
        begun = time.monotonic()
        while time.monotonic() - begun < self.window_s:
            now = get_heights(net, self.names)
            ahead = {n: h - start[n] for n, h in now.items() if h > start[n] + 1}
            if ahead:
                raise ScenarioFailed(f"committed while they must stall: {ahead} blocks")
            if halfway is None and time.monotonic() - begun >= self.window_s / 2:
                halfway = now
            time.sleep(OBSERVE_INTERVAL_S)  # the observation's pace: what is checked is that nothing happens
        end = get_heights(net, self.names)
        if halfway is not None and end != halfway:
            raise ScenarioFailed(f"heights moved in the second half of the window: {halfway} -> {end}")


@dataclass(frozen=True)
class CatchesUp:
    """`name` reaches the highest height any other validator has now, plus `blocks`."""

    name: str
    blocks: int = 2
    timeout_s: float = PROGRESS_TIMEOUT_S

    def run(self, net: Devnet) -> None:
        others = [n for n in net.reload().names if n != self.name]
        target = max(get_heights(net, others).values()) + self.blocks
        try:
            net.wait_for_height(target, self.timeout_s, [self.name])
        except DevnetTimeout as exc:
            raise ScenarioFailed(str(exc)) from None


@dataclass(frozen=True)
class OneChain:
    """Identical block hashes and state roots at every height, on `names` (default: every validator)."""

    names: tuple[str, ...] | None = None

    def run(self, net: Devnet) -> None:
        assert_one_chain(net, self.names)


Step = Union[Kill, Start, Restart, Partition, Heal, Commits, Stalls, CatchesUp, OneChain]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    validators: int = 4


ALL = ("v1", "v2", "v3", "v4")
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "crash-one",
        "Kill one of four: blocks keep committing. Start it again: it catches up to the same chain.",
        (Kill("v4"), Commits(("v1", "v2", "v3"), 5), Start("v4"), CatchesUp("v4"), OneChain()),
    ),
    Scenario(
        "crash-two",
        "Kill two of four: nothing commits and nothing forks. Start them again: commits resume.",
        (Kill("v3"), Kill("v4"), Stalls(("v1", "v2")), OneChain(("v1", "v2")), Start("v3"), Start("v4"), Commits(ALL), OneChain()),
    ),
    Scenario(
        "partition-two-two",
        "Partition two from two: no side commits, so nothing conflicts. Heal: progress resumes.",
        (Partition(("v1", "v2")), Stalls(ALL), OneChain(), Heal(), Commits(ALL), OneChain()),
    ),
    Scenario(
        "partition-one-restart",
        "Cut one off: the three commit without it, and restarting it does not let it through. Heal: it catches up.",
        (
            Partition(("v4",)),
            Commits(("v1", "v2", "v3")),
            Restart("v4"),
            Commits(("v1", "v2", "v3"), frozen=("v4",)),
            Heal(),
            CatchesUp("v4"),
            OneChain(),
        ),
    ),
)


def run_scenario(net: Devnet, scenario: Scenario, report: Callable[[str], Any] = lambda line: None) -> None:
    """Perform the steps in order, reporting each; ScenarioFailed names the one that failed."""
    for i, step in enumerate(scenario.steps, 1):
        report(f"[{scenario.name} {i}/{len(scenario.steps)}] {step}")
        try:
            step.run(net)
        except ScenarioFailed as exc:
            raise ScenarioFailed(f"{scenario.name}, step {i} {step}: {exc}") from None
