"""consensus.proposer: CometBFT's weighted round robin, as a pure function of (set, height, round)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import proposer as proposer_module
from consensus.proposer import proposer, proposer_index, schedule_period
from consensus.testing import keypairs, validator_set_of
from consensus.types import ValidatorSet

KEYS = keypairs(7)


class CometBFTReference:
    """CometBFT's ValidatorSet priority state, carried from height to height, transcribed
    independently (rescale to a 2 * total window, centre on the mean, then increment)."""

    def __init__(self, vset: ValidatorSet) -> None:
        self.powers = [v.power for v in vset.validators]
        self.total = vset.total_power
        self.priorities = [0] * len(self.powers)

    def increment(self, times: int) -> int:
        diff = max(self.priorities) - min(self.priorities)
        window = 2 * self.total
        if diff > window:
            ratio = -(-diff // window)
            self.priorities = [int(p / ratio) for p in self.priorities]  # Go truncates to zero
        average = sum(self.priorities) // len(self.priorities)  # big.Int Div, Euclidean
        self.priorities = [p - average for p in self.priorities]
        pick = -1
        for _ in range(times):
            self.priorities = [p + w for p, w in zip(self.priorities, self.powers)]
            pick = max(range(len(self.powers)), key=lambda i: (self.priorities[i], -i))
            self.priorities[pick] -= self.total
        return pick

    def copy(self) -> CometBFTReference:
        other = CometBFTReference.__new__(CometBFTReference)
        other.powers, other.total, other.priorities = self.powers, self.total, list(self.priorities)
        return other


power_lists = st.lists(st.integers(1, 40), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(powers=power_lists, rounds=st.lists(st.integers(0, 4), min_size=1, max_size=25))
def test_matches_cometbft_priorities_carried_across_heights(
    powers: list[int], rounds: list[int]
) -> None:
    """CometBFT: the genesis set is incremented once; each height's round r is that height's set
    incremented r more times (on a copy); the next height's set is incremented once."""
    vset = validator_set_of(KEYS[: len(powers)], powers)
    state = CometBFTReference(vset)
    first = state.increment(1)
    proposer_at_round0 = first
    for height, last_round in enumerate(rounds, start=1):
        assert proposer_index(vset, height, 0) == proposer_at_round0
        for r in range(1, last_round + 1):
            assert proposer_index(vset, height, r) == state.copy().increment(r)
        proposer_at_round0 = state.increment(1)


@settings(max_examples=100, deadline=None)
@given(powers=power_lists)
def test_each_period_gives_each_validator_exactly_its_share(powers: list[int]) -> None:
    vset = validator_set_of(KEYS[: len(powers)], powers)
    period = schedule_period(vset)
    counts = Counter(proposer(vset, h, 0) for h in range(1, period + 1))
    g = vset.total_power // period
    assert counts == Counter({v.address: v.power // g for v in vset.validators})


@settings(max_examples=100, deadline=None)
@given(powers=power_lists, length=st.integers(1, 400))
def test_every_prefix_is_within_two_turns_of_proportional(powers: list[int], length: int) -> None:
    """Smoothness: after k turns each validator has proposed within two turns of k * power / total
    (its count is off by its priority / total; the priorities sum to 0 and spread within 2 * total).
    Not within one: powers 1, 1, 1, 1, 27, 27, 27 after 230 turns are 1.06 turns off (below)."""
    vset = validator_set_of(KEYS[: len(powers)], powers)
    counts = Counter(proposer(vset, h, 0) for h in range(1, length + 1))
    for v in vset.validators:
        assert abs(counts[v.address] - length * v.power / vset.total_power) < 2


def test_one_turn_is_not_a_bound_on_a_prefix() -> None:
    vset = validator_set_of(KEYS[:7], [1, 1, 1, 1, 27, 27, 27])
    counts = Counter(proposer(vset, h, 0) for h in range(1, 231))
    worst = max(abs(counts[v.address] - 230 * v.power / vset.total_power) for v in vset.validators)
    assert 1 < worst < 2


def test_many_rounds_are_shared_in_proportion_to_power() -> None:
    vset = validator_set_of(KEYS[:5], [1, 2, 3, 5, 9])  # total 20
    counts = Counter(proposer(vset, 7, r) for r in range(2000))
    assert {v.address: counts[v.address] for v in vset.validators} == {
        v.address: 100 * v.power for v in vset.validators
    }


def test_equal_powers_rotate_in_address_order_from_the_smallest() -> None:
    vset = validator_set_of(KEYS[:4])
    addresses = [v.address for v in vset.validators]
    assert [proposer(vset, 1, r) for r in range(8)] == addresses * 2
    assert [proposer(vset, h, 0) for h in range(1, 9)] == addresses * 2


def test_the_next_round_and_the_next_height_advance_one_step_each() -> None:
    vset = validator_set_of(KEYS[:5], [4, 1, 3, 2, 7])
    for h in range(1, 30):
        for r in range(3):
            assert proposer(vset, h, r + 1) == proposer(vset, h + 1, r)


def test_schedule_repeats_with_its_period() -> None:
    vset = validator_set_of(KEYS[:3], [6, 4, 2])  # gcd 2, period 6
    assert schedule_period(vset) == 6
    assert [proposer(vset, h, 0) for h in range(1, 7)] == [proposer(vset, h, 0) for h in range(7, 13)]
    assert proposer(vset, 10**12, 5) == proposer(vset, 10**12 + 6 * 10**6, 5)


def test_answers_do_not_depend_on_query_order_or_cache() -> None:
    vset = validator_set_of(KEYS[:6], [13, 7, 29, 3, 11, 17])
    forward = [proposer(vset, h, r) for h in (1, 50, 51, 4000, 3) for r in (0, 2)]
    proposer_module._cursors.clear()
    backward = [proposer(vset, h, r) for h in (3, 4000, 51, 50, 1) for r in (2, 0)]
    assert backward == [forward[i] for i in (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]


def test_height_and_round_must_be_in_range() -> None:
    vset = validator_set_of(KEYS[:2])
    with pytest.raises(ValueError):
        proposer(vset, 0, 0)
    with pytest.raises(ValueError):
        proposer(vset, 1, -1)
