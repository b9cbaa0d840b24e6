"""Hearth's deterministic ledger: the state machine, its monetary rules, and its storage.

Pure: no clock, no randomness, no network. Input: genesis and blocks. Output: state and root.
"""

from ledger.errors import Code, InvariantViolation, Rejected, check_invariant, detached
from ledger.genesis import Genesis
from ledger.ledger_db import ExecutedBlock, HistoryUnavailable, LedgerDB
from ledger.store import LevelDBStore, MemoryStore
from ledger.transition import BlockInput, apply_block, process_tx
from ledger.tx import SignatureCache, Tx, decode_tx, make_tx

__all__ = [
    "BlockInput",
    "Code",
    "ExecutedBlock",
    "Genesis",
    "HistoryUnavailable",
    "InvariantViolation",
    "LedgerDB",
    "LevelDBStore",
    "MemoryStore",
    "Rejected",
    "SignatureCache",
    "Tx",
    "apply_block",
    "check_invariant",
    "decode_tx",
    "detached",
    "make_tx",
    "process_tx",
]
