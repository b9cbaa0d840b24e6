"""Hearth consensus: the Tendermint BFT algorithm as a pure state machine, apart from the ledger.

Modules: `types` (signed messages, validator sets, commit certificates), `proposer` (who proposes a
round), `signer` (the double-signing guard), `evidence` (proof of equivocation), `block` (the block
and its header), `app` (what the engine needs from the application) and `engine` (one validator's
state machine); `testing` is a toolkit for tests (keys, signing, a hash-chain application). The
normative text is specs/consensus.md.
"""
