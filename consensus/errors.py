"""Errors of the consensus package: malformed input is a `MessageInvalid`, a broken invariant a bug."""

from __future__ import annotations


class MessageInvalid(ValueError):
    """A consensus message, certificate, block or evidence that is malformed or does not verify.

    It is the only exception that decoding or verifying untrusted input raises, so a caller can
    catch exactly this and drop the input.
    """


class CertificateInvalid(MessageInvalid):
    """A commit certificate that does not prove a decision of the validator set it was checked
    against."""


class EvidenceInvalid(MessageInvalid):
    """Evidence that does not prove misbehaviour by a validator of the set it was checked against."""


class ConsensusInvariantViolation(Exception):
    """An invariant of the consensus engine failed: a bug, never bad input. The node must stop."""


def check_invariant(condition: bool, what: str) -> None:
    """Assert an invariant in production code (bare assert is stripped by python -O)."""
    if not condition:
        raise ConsensusInvariantViolation(what)
