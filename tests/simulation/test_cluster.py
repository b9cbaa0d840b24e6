"""Whole-cluster simulation: safety, liveness and accountability over many seeds.

Each seed draws a cluster (4 to 7 validators, equal or random powers), a lossy, duplicating,
reordering network, maybe a partition that heals, maybe a validator that crashes and restarts
from its durable signer state, and maybe one Byzantine validator (under 1/3 of the power) that
equivocates. A failure names its seed; `pytest tests/simulation --seed N` replays it exactly.
"""

from __future__ import annotations

import pytest

from consensus import engine as engine_module
from consensus.evidence import DuplicateVoteEvidence
from consensus.signer import NO_LOCK
from tests.simulation.cluster import (
    LIVENESS_BOUND_MS,
    Observations,
    Scenario,
    Simulation,
    run_seed,
)
from tests.simulation.invariants import conflicting_signatures, forks, violations

TARGET_HEIGHT = 5
FORKS_WITHOUT_LOCKS = 863


def test_cluster_is_safe_and_live_and_reports_the_equivocator(seed: int) -> None:
    sim, obs = run_seed(seed, TARGET_HEIGHT)
    problems = violations(sim, obs)
    assert not problems, (
        f"seed {seed} ({sim.scenario}):\n  " + "\n  ".join(problems)
        + f"\nreplay with: pytest tests/simulation --seed {seed}"
    )


def test_a_seed_replays_exactly() -> None:
    def trace(seed: int) -> tuple[object, ...]:
        sim, obs = run_seed(seed, TARGET_HEIGHT)
        commits = sorted(obs.commits.items()), sorted(obs.commit_times.items())
        return (sim.now_ms, obs.deliveries, commits)

    for seed in (3, 11):
        assert trace(seed) == trace(seed)
    assert trace(3) != trace(11)


def quiet(powers: tuple[int, ...], **changes: object) -> Scenario:
    base = Scenario(
        seed=7, powers=powers, byzantine=None, crash=None, partition=None,
        drop=0.0, duplicate=0.0, max_delay_ms=20, target_height=3,
    )
    return Scenario(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_an_even_split_commits_nothing_until_the_partition_heals() -> None:
    scenario = quiet((1, 1, 1, 1), partition=(frozenset({0, 1}), 0, 5_000))
    sim = Simulation(scenario)
    obs = sim.run()
    first_commit = min(t for times in obs.commit_times.values() for t in times.values())
    assert first_commit >= 5_000
    assert sim.reached_target() and not forks(obs)


def test_the_side_with_a_quorum_keeps_committing_during_a_partition() -> None:
    scenario = quiet((1, 1, 1, 1, 1, 1, 1), partition=(frozenset({5, 6}), 0, 60_000), target_height=3)
    sim = Simulation(scenario)
    obs = sim.run(time_limit_ms=30_000)
    assert all(sim.nodes[i].committed_height >= 3 for i in range(5))
    assert sim.nodes[5].committed_height == sim.nodes[6].committed_height == 0
    assert not forks(obs)


def test_a_restarted_validator_rejoins_and_the_cluster_reaches_the_target() -> None:
    scenario = quiet((1, 1, 1, 1), crash=(2, 150, 2_000), target_height=6)
    sim = Simulation(scenario)
    obs = sim.run()
    assert sim.nodes[2].incarnation == 3  # booted, crashed, booted again
    assert sim.reached_target() and not violations(sim, obs)
    assert max(obs.commit_times[2].values()) <= scenario.faults_healed_ms + LIVENESS_BOUND_MS


def test_a_validator_restarted_without_its_signer_state_double_signs_and_with_it_does_not() -> None:
    """The double-signing check is not vacuous. Nodes 2 and 3 are cut off from the proposer and
    prevote nil; node 2 crashes; the partition heals; node 2 comes back in round 0 and now has the
    proposal. With its guard it may not prevote again; without it, it prevotes the block."""
    scenario = quiet((1, 1, 1, 1), partition=(frozenset({0, 1}), 0, 500), crash=(2, 400, 300))
    amnesic = Simulation(scenario, durable_signer_state=False)
    [conflict] = conflicting_signatures(amnesic.run())
    assert "PREVOTE at height 1 round 0" in conflict
    assert amnesic.nodes[2].key.public_key.hex()[:12] in conflict

    durable = Simulation(scenario)
    obs = durable.run()
    assert not violations(durable, obs)


def test_the_checks_report_a_fork_and_a_double_signature() -> None:
    obs = Observations()
    obs.commits[4] = {0: b"\x01" * 32, 1: b"\x02" * 32}
    obs.signed[(b"\x07" * 32, 4, 0, "PREVOTE")] = {"one", "two"}  # type: ignore[arg-type]
    assert forks(obs) and "height 4" in forks(obs)[0]
    assert conflicting_signatures(obs)


def test_the_equivocator_is_reported_with_verifiable_evidence() -> None:
    seed = next(s for s in range(50) if Scenario.from_seed(s).byzantine is not None)
    sim, obs = run_seed(seed, TARGET_HEIGHT)
    culprit = sim.nodes[sim.scenario.byzantine].key.public_key  # type: ignore[index]
    assert obs.evidence
    for _, evidence in obs.evidence:
        assert isinstance(evidence, DuplicateVoteEvidence) and evidence.validator == culprit


def test_an_engine_that_forgets_to_lock_is_caught_forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety check is not vacuous either: with locking broken (a lock is never taken), the
    equivocator of this seed makes two honest nodes commit different blocks."""
    monkeypatch.setattr(engine_module, "Lock", lambda round, block_hash: NO_LOCK)
    sim, obs = run_seed(FORKS_WITHOUT_LOCKS, TARGET_HEIGHT)
    assert forks(obs)
