"""Fixed constants of the Hearth ledger. Tunable values live in genesis params, not here."""

UNITS_PER_COIN = 10**6
"""Base units in one coin. All amounts in the ledger are integers of base units."""

RATE_SCALE = 10**18
"""Rates (demurrage, UBI fraction) are integers read as rate / RATE_SCALE per period."""

MAX_AMOUNT = 2**63 - 1
"""Largest amount a transaction may name. Larger values are rejected as out of range."""

MAX_TX_BYTES = 16 * 1024
"""Largest encoded transaction accepted anywhere."""

MAX_TXS_PER_BLOCK = 10_000
"""Largest number of transactions a block may carry."""

MAX_SIGNATURES_PER_TX = 16
"""Largest number of signatures on one transaction (multi-signature council actions)."""

MAX_MEMO_BYTES = 256

TX_SIGN_DOMAIN = b"hearth/tx/v1\x00"
"""Prefix of the bytes a transaction signature covers: domain, chain id, NUL, body bytes."""

ADDRESS_BYTES = 32
SIGNATURE_BYTES = 64

MERKLE_BUCKET_BITS = 16
"""The state commitment hashes every key into one of 2**MERKLE_BUCKET_BITS buckets."""

UNBONDING_HEIGHTS = 1_000
"""Blocks an unbonding validator's stake stays bonded, and slashable, after it leaves the set."""

MAX_VALIDATORS = 256
"""Largest set of validators with voting power. Bounds certificates, vote tallies and proposer
selection; genesis and validator_bond keep the set within it (consensus imports it from here)."""
