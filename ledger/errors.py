"""Stable rejection codes. A code, once published, never changes its meaning or number."""

from __future__ import annotations

import enum
from typing import TypeVar

_E = TypeVar("_E", bound=BaseException)


class Code(enum.Enum):
    """Each code: (number, default message). Numbers are what JSON-RPC reports as error codes."""

    TX_TOO_LARGE = (1001, "transaction exceeds the size limit")
    TX_MALFORMED = (1002, "transaction is not valid canonical encoding")
    TX_UNKNOWN_TYPE = (1003, "unknown transaction type")
    TX_MISSING_FIELD = (1004, "a required field is missing")
    TX_BAD_FIELD = (1005, "a field has the wrong type or an unknown field is present")
    WRONG_CHAIN = (1006, "transaction is for another chain")
    BAD_SIGNATURE = (1007, "a signature does not verify")
    UNAUTHORIZED = (1008, "the signers may not act for this account")
    NONCE_STALE = (1009, "nonce already used")
    NONCE_FUTURE = (1010, "nonce is ahead of the account")
    AMOUNT_NOT_POSITIVE = (1011, "amount must be a positive integer")
    AMOUNT_OUT_OF_RANGE = (1012, "amount is larger than the largest allowed")
    INSUFFICIENT_FUNDS = (1013, "balance too low")
    UNKNOWN_ACCOUNT = (1014, "account does not exist")
    SELF_TRANSFER = (1015, "sender and recipient are the same")
    ALREADY_MEMBER = (1020, "account is already a member")
    NOT_MEMBER = (1021, "account is not a member")
    BLOCK_INVALID = (1100, "block is invalid")
    BLOCK_HEIGHT = (1101, "block height does not follow the head")
    BLOCK_TIME = (1102, "block time goes backwards")
    GENESIS_INVALID = (1200, "genesis is invalid")
    # nodes, membership, quotas, housing (specs/membership.md, quotas.md, housing.md)
    UNKNOWN_NODE = (1300, "no node has this id")
    UNKNOWN_RESOURCE = (1301, "no resource has this id")
    UNKNOWN_UNIT = (1302, "the node has no housing unit with this id")
    BELOW_THRESHOLD = (1303, "fewer council signatures than the council's threshold")
    ALREADY_EXISTS = (1304, "a record with this id already exists")
    PARAM_OUT_OF_BOUNDS = (1305, "the value is outside the bounds genesis allows")
    HOLDER_MEMBERSHIP = (1306, "a housing right holder's membership ends only by the holder leaving")
    NOT_SAME_NODE = (1310, "both accounts must be members of the same node")
    QUOTA_EXCEEDED = (1311, "the amount exceeds the quota left this period")
    QUOTA_FLOOR = (1312, "the trade would take the seller's holding below the floor")
    QUOTA_CEILING = (1313, "the trade would take the buyer's holding above the ceiling")
    NOT_PROVIDER = (1314, "the key is not a registered provider of this resource for this node")
    ALREADY_APPLIED = (1320, "the account already has an application waiting")
    ALREADY_HOUSED = (1321, "the account already holds or co-holds a housing right")
    NOT_APPLIED = (1322, "the account has no application waiting")
    NOT_HOLDER = (1323, "only the holder of the right may do this")
    NOT_CO_HOLDER = (1324, "the account is not a co-holder of the right")
    HOUSEHOLD_TOO_LARGE = (1325, "the household does not fit any unit size or the unit's capacity")
    UNKNOWN_NEED_FLAG = (1326, "need flags name a flag genesis does not define")
    MODIFICATION_KIND = (1327, "genesis defines no modification of this kind")
    MODIFICATION_OUT_OF_BOUNDS = (1328, "the modification is outside the node's published guidelines")
    # stake and validator-set changes (specs/consensus.md, "Stake and slashing")
    ALREADY_VALIDATOR = (1400, "the key is already a bonded validator")
    NOT_VALIDATOR = (1401, "the key is not a bonded validator")
    STAKE_TOO_LOW = (1402, "stake below one coin gives no voting power")
    VALIDATOR_QUORUM = (1403, "validators holding more than 2/3 of the voting power must sign")
    VALIDATOR_SET_MINIMUM = (1404, "the change would leave no validator with voting power")
    VALIDATOR_SLASHED = (1405, "a slashed validator key may not bond again")
    VALIDATOR_UNBONDING = (1406, "the key's earlier stake is still unbonding")
    VALIDATOR_SET_FULL = (1407, "the validator set already has the largest number of validators with voting power")

    @property
    def number(self) -> int:
        return self.value[0]

    @property
    def default_message(self) -> str:
        return self.value[1]


class Rejected(Exception):
    """A transaction or block the ledger refuses. The state it was applied to is unchanged."""

    def __init__(self, code: Code, message: str | None = None) -> None:
        self.code = code
        self.message = message or code.default_message
        super().__init__(f"{code.name}: {self.message}")

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code.name, "number": self.code.number, "message": self.message}


def detached(exc: _E) -> _E:
    """`exc`, to keep past the `except` clause that caught it (in a list of results, as a value
    returned), without its traceback and without the exceptions it was raised while handling or
    from (`__context__`, `__cause__`).

    A traceback holds every frame the exception passed through and, through them, their locals: the
    states and trackers a transaction was checked on. Kept in a list that a frame of its traceback
    also holds (`out.append(exc)`), it closes a reference cycle that reference counting never frees;
    remembered for long (the mempool's memory of permanent refusals), it keeps that list, and every
    other refusal in it, alive. A validator of the network benchmark held 48,000 refusals and
    335,000 frames after two minutes at 4,800 transfers/s, its RSS about 400 MB where it is about
    250 MB without them. Its code and message are all a refusal is kept for; one that is raised
    again should be a copy (`Rejected(exc.code, exc.message)`), or each raise hangs a traceback on it.
    """
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


class InvariantViolation(Exception):
    """A ledger invariant failed. This is a bug, never a user error: the node must stop."""


def check_invariant(condition: bool, what: str) -> None:
    """Assert an invariant in production code (bare assert is stripped by python -O)."""
    if not condition:
        raise InvariantViolation(what)
