"""Proposer selection: CometBFT's weighted round robin, as a pure function of (set, height, round).

The priority algorithm: every validator starts at priority 0. One step adds each validator's power
to its priority, picks the validator with the highest priority (ties: the smaller address) and
subtracts the total power from the pick's priority. Step k's pick is `schedule[k]`.

`proposer(set, height, round)` is `schedule[(height - 1 + round) mod period]`: height 1 round 0 is
the first step, each later height advances one step (as CometBFT advances the carried priorities
once per height) and each round within a height one more (as CometBFT does for rounds).

Why a pure function and not carried state: from priority 0 the sums stay 0 and the spread stays
within 2 * total, so CometBFT's centring and rescaling never act, and after `period = total / g`
steps (g the gcd of the powers) every priority is 0 again, with each validator picked exactly
power / g times. The schedule is therefore periodic and a node needs nothing but the validator set
to know any proposer: no priorities to persist, sync or hash. A change of validator set restarts
the schedule of the new set at the same position formula.

Cost: O(n) per step. The first query at a large position replays up to `period` steps once; the
cursor then moves forward with the chain, so one height costs O(n) amortised.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import reduce

from consensus.errors import check_invariant
from consensus.types import ValidatorSet

__all__ = ["proposer", "proposer_index", "schedule_period"]

_MAX_CACHED_SETS = 4
_MAX_REMEMBERED_PICKS = 4096


def schedule_period(validator_set: ValidatorSet) -> int:
    """Number of steps after which the proposer schedule of `validator_set` repeats."""
    g = reduce(math.gcd, (v.power for v in validator_set.validators))
    return validator_set.total_power // g


class _Cursor:
    """The priority state of one validator set after `position` steps, plus recent picks."""

    def __init__(self, validator_set: ValidatorSet) -> None:
        self.powers = [v.power for v in validator_set.validators]
        self.total = validator_set.total_power
        self.period = schedule_period(validator_set)
        self.position = 0
        self.priorities = [0] * len(self.powers)
        self.picks: OrderedDict[int, int] = OrderedDict()

    def _step(self) -> int:
        priorities = self.priorities
        best = 0
        for i, p in enumerate(self.powers):
            priorities[i] += p
            # Strictly greater keeps the earliest index on ties: the smallest address.
            if priorities[i] > priorities[best]:
                best = i
        priorities[best] -= self.total
        self.position += 1
        if self.position == self.period:
            check_invariant(not any(priorities), "proposer priorities return to 0 each period")
            self.position = 0
        return best

    def pick(self, step: int) -> int:
        """Index of the validator picked at schedule position `step` (0-based, < period)."""
        remembered = self.picks.get(step)
        if remembered is not None:
            return remembered
        if step < self.position:  # behind the cursor and forgotten: replay from the start
            self.position = 0
            self.priorities = [0] * len(self.powers)
        while True:
            at = self.position
            index = self._step()
            self.picks[at] = index
            if len(self.picks) > _MAX_REMEMBERED_PICKS:
                self.picks.popitem(last=False)
            if at == step:
                return index


_cursors: OrderedDict[bytes, _Cursor] = OrderedDict()


def proposer_index(validator_set: ValidatorSet, height: int, round: int) -> int:
    """Index in `validator_set.validators` of the proposer of (height, round)."""
    if height < 1 or round < 0:
        raise ValueError("height starts at 1 and round at 0")
    key = validator_set.hash
    cursor = _cursors.get(key)
    if cursor is None:
        cursor = _Cursor(validator_set)
        _cursors[key] = cursor
        if len(_cursors) > _MAX_CACHED_SETS:
            _cursors.popitem(last=False)
    else:
        _cursors.move_to_end(key)
    return cursor.pick((height - 1 + round) % cursor.period)


def proposer(validator_set: ValidatorSet, height: int, round: int) -> bytes:
    """Address of the validator that proposes at (height, round)."""
    return validator_set.validators[proposer_index(validator_set, height, round)].address
