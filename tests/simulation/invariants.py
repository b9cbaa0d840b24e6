"""The properties every simulated run must have. Each check returns what it found wrong, as text
that names the height, node or validator, so a failing seed says what broke without a debugger."""

from __future__ import annotations

from consensus.errors import MessageInvalid
from tests.simulation.cluster import CHAIN_ID, Observations, Simulation


def forks(obs: Observations) -> list[str]:
    """Safety: no two honest nodes commit different blocks at one height."""
    return [
        f"height {height}: honest nodes committed different blocks "
        + ", ".join(sorted(h.hex()[:12] for h in set(by_node.values())))
        for height, by_node in sorted(obs.commits.items())
        if len(set(by_node.values())) > 1
    ]


def conflicting_signatures(obs: Observations) -> list[str]:
    """No honest validator ever signs two different messages for one (height, round, step),
    across crashes and restarts."""
    return [
        f"validator {validator.hex()[:12]} signed {len(messages)} different {step} "
        f"at height {height} round {round}"
        for (validator, height, round, step), messages in sorted(obs.signed.items())
        if len(messages) > 1
    ]


def bad_evidence(sim: Simulation, obs: Observations) -> list[str]:
    """Evidence verifies, and names the Byzantine validator, never an honest one."""
    problems = []
    byzantine = sim.scenario.byzantine
    culprit = None if byzantine is None else sim.nodes[byzantine].key.public_key
    for finder, evidence in obs.evidence:
        try:
            evidence.verify(sim.validators, CHAIN_ID)
        except MessageInvalid as exc:
            problems.append(f"node {finder} found evidence that does not verify: {exc}")
        if evidence.validator != culprit:
            problems.append(f"node {finder} accused honest validator {evidence.validator.hex()[:12]}")
    return problems


def stalls(sim: Simulation) -> list[str]:
    """Liveness: once faults heal, every honest node reaches the target height in bounded time,
    and some honest node reports the equivocator."""
    problems = []
    target = sim.scenario.target_height
    for node in sim.nodes:
        if not node.byzantine and node.committed_height < target:
            problems.append(f"node {node.index} stopped at height {node.committed_height} < {target}")
    if not sim.equivocation_caught():
        problems.append(f"the equivocating validator {sim.scenario.byzantine} was never reported")
    return problems


def violations(sim: Simulation, obs: Observations) -> list[str]:
    return (
        forks(obs)
        + [f"bad commit certificate: {c}" for c in obs.bad_certificates]
        + conflicting_signatures(obs)
        + bad_evidence(sim, obs)
        + stalls(sim)
    )
