"""Fixed constants of the consensus protocol. Tunable values (timeouts) live in `EngineConfig`."""

from ledger.constants import ADDRESS_BYTES, MAX_VALIDATORS, SIGNATURE_BYTES  # MAX_VALIDATORS: the ledger keeps the set within it

__all__ = [
    "ADDRESS_BYTES",
    "SIGNATURE_BYTES",
    "HASH_BYTES",
    "MAX_HEIGHT",
    "MAX_ROUND",
    "MAX_VALIDATORS",
    "MAX_TOTAL_VOTING_POWER",
    "MAX_CHAIN_ID_CHARS",
    "MAX_ROUNDS_AHEAD",
    "MAX_BUFFERED_NEXT_HEIGHT",
    "MAX_BLOCKS_PER_HEIGHT",
    "MAX_CONFLICTING_VOTES_PER_HEIGHT",
    "VOTE_SIGN_DOMAIN",
    "PROPOSAL_SIGN_DOMAIN",
    "VALIDATOR_SET_HASH_DOMAIN",
]

HASH_BYTES = 32
"""Every hash in consensus (block, validator set) is a 32-byte sha256 digest."""

MAX_HEIGHT = 2**63 - 1
MAX_ROUND = 2**31 - 1


MAX_TOTAL_VOTING_POWER = 2**60
"""Largest sum of voting power, so that priorities (within +-2 * total) fit in a signed 64-bit int."""

MAX_CHAIN_ID_CHARS = 64

MAX_ROUNDS_AHEAD = 100
"""Messages for rounds further than this beyond the engine's round are dropped (memory bound)."""

MAX_BUFFERED_NEXT_HEIGHT = 4096
"""Messages for the next height held until it starts; the excess is dropped (gossip resends)."""

MAX_BLOCKS_PER_HEIGHT = 64
"""Blocks held per height that no proposal or vote names yet; named blocks are always kept."""

MAX_CONFLICTING_VOTES_PER_HEIGHT = 1024
"""Votes counted per height beyond a validator's first in a (round, kind): only equivocators send
them, each is evidence against its signer, and past this bound they are reported but not counted."""

VOTE_SIGN_DOMAIN = b"hearth/vote/v1\x00"
PROPOSAL_SIGN_DOMAIN = b"hearth/proposal/v1\x00"
VALIDATOR_SET_HASH_DOMAIN = b"hearth/validators/v1\x00"
