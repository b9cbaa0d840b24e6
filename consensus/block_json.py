"""Blocks as the RPC serves them: the one JSON form of a header, a block with its evidence, and a
commit certificate (specs/rpc.md, `block`). cli/audit/sources.py `block_from_json` reads it back."""

from __future__ import annotations

from typing import Any

from consensus.block import Block
from consensus.types import CommitCertificate


def header_to_json(block: Block) -> dict[str, Any]:
    h = block.header
    return {
        "chain_id": h.chain_id,
        "height": h.height,
        "hash": h.hash.hex(),
        "time_ms": h.time_ms,
        "prev_block_hash": h.prev_block_hash.hex(),
        "txs_hash": h.txs_hash.hex(),
        "evidence_hash": h.evidence_hash.hex(),
        "state_root": h.state_root.hex(),
        "proposer": h.proposer.hex(),
        "validators_hash": h.validators_hash.hex(),
        "num_txs": len(block.txs),
    }


def certificate_to_json(certificate: CommitCertificate) -> dict[str, Any]:
    return {
        "height": certificate.height,
        "round": certificate.round,
        "block_hash": certificate.block_hash.hex(),
        "signatures": [{"validator": s.validator.hex(), "signature": s.signature.hex()} for s in certificate.signatures],
    }


def block_to_json(block: Block, certificate: CommitCertificate) -> dict[str, Any]:
    """The `block` answer: header, transactions, evidence (a summary and the wire bytes, so an
    auditor can verify it), and the commit certificate."""
    return {
        "header": header_to_json(block),
        "txs": [raw.hex() for raw in block.txs],
        "evidence": [
            {
                "validator": e.validator.hex(),
                "height": e.height,
                "round": e.vote_a.round,
                "kind": e.vote_a.kind.name.lower(),
                "bytes": e.to_bytes().hex(),
            }
            for e in block.evidence
        ],
        "commit": certificate_to_json(certificate),
    }
