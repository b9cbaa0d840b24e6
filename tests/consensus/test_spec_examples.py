"""Every ```consensus-example block in specs/consensus.md is run against the code: each line is an
expression that must be true. (The ledger's runner takes ```example blocks; this fence is apart.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consensus.block import merkle_root
from consensus.proposer import proposer
from consensus.types import ValidatorSet, VoteKind, proposal_sign_bytes, vote_sign_bytes
from ledger.crypto import sha256

SPEC = Path(__file__).resolve().parents[2] / "specs" / "consensus.md"
EXAMPLE_BLOCK = re.compile(r"```consensus-example ([\w.]+)\n(.*?)```", re.S)

NAMESPACE = {
    "addr": lambda i: bytes([i]) * 32,
    "merkle_root": merkle_root,
    "proposer": proposer,
    "proposal_sign_bytes": proposal_sign_bytes,
    "sha256": sha256,
    "ValidatorSet": ValidatorSet,
    "vote_sign_bytes": vote_sign_bytes,
    "VoteKind": VoteKind,
}


def _examples() -> list[tuple[str, str]]:
    found = []
    for match in EXAMPLE_BLOCK.finditer(SPEC.read_text()):
        for line in match.group(2).splitlines():
            if line.strip() and not line.strip().startswith("#"):
                found.append((match.group(1), line.strip()))
    return found


EXAMPLES = _examples()


def test_the_spec_has_examples_of_each_kind() -> None:
    assert {name for name, _ in EXAMPLES} >= {"sign_bytes", "thresholds", "proposer", "merkle_root"}


@pytest.mark.parametrize(
    "name, expression", EXAMPLES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EXAMPLES)]
)
def test_spec_example_holds(name: str, expression: str) -> None:
    assert eval(expression, dict(NAMESPACE)) is True, f"{name}: {expression}"
