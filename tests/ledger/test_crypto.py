"""ledger.crypto.verify_signature calls libsodium's crypto_sign_open directly: it must accept exactly
what PyNaCl's VerifyKey.verify accepts, whatever the bytes."""

from __future__ import annotations

import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.constants import MAX_TX_BYTES
from ledger import crypto
from ledger.crypto import Keypair, verify_signature

KEY = Keypair.from_seed(b"\x05" * 32)


def _pynacl_accepts(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False


def test_a_valid_signature_verifies_and_any_change_does_not() -> None:
    message = b"transfer 5 to erin"
    signature = KEY.sign(message)
    assert verify_signature(KEY.public_key, message, signature)
    assert not verify_signature(KEY.public_key, message + b"!", signature)
    assert not verify_signature(Keypair.from_seed(b"\x06" * 32).public_key, message, signature)
    assert not verify_signature(KEY.public_key, message, signature[:-1] + bytes([signature[-1] ^ 1]))


def test_wrong_lengths_and_types_are_refused_not_raised() -> None:
    message = b"m"
    signature = KEY.sign(message)
    assert not verify_signature(KEY.public_key[:31], message, signature)
    assert not verify_signature(KEY.public_key, message, signature[:63])
    assert not verify_signature(KEY.public_key, message, signature + b"\x00")
    assert not verify_signature(KEY.public_key.hex(), message, signature)  # type: ignore[arg-type]
    assert not verify_signature(KEY.public_key, "m", signature)  # type: ignore[arg-type]
    assert not verify_signature(KEY.public_key, message, bytearray(signature))  # type: ignore[arg-type]
    assert verify_signature(KEY.public_key, bytearray(message), signature)  # a message may be any bytes-like

    class Odd:
        def __radd__(self, other: bytes) -> str:
            return "not bytes"

    assert not verify_signature(KEY.public_key, Odd(), signature)  # type: ignore[arg-type]
    assert not verify_signature(None, message, signature)  # type: ignore[arg-type]


def test_a_message_longer_than_the_shared_buffer_verifies() -> None:
    message = bytes(range(256)) * (MAX_TX_BYTES // 256 + 8)
    signature = KEY.sign(message)
    assert verify_signature(KEY.public_key, message, signature)
    assert not verify_signature(KEY.public_key, message[:-1], signature)


@settings(max_examples=300, deadline=None)
@given(
    message=st.binary(max_size=300),
    flip=st.one_of(st.none(), st.tuples(st.sampled_from(["key", "message", "signature"]), st.integers(0, 10_000), st.integers(1, 255))),
    random_key=st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
)
def test_accepts_exactly_what_pynacl_accepts(message: bytes, flip: tuple[str, int, int] | None, random_key: bytes | None) -> None:
    public_key, signature = KEY.public_key, KEY.sign(message)
    if random_key is not None:
        public_key = random_key  # mostly not a point, or not the signer
    if flip is not None:
        part, at, mask = flip
        target = {"key": public_key, "message": message, "signature": signature}[part]
        if target:
            i = at % len(target)
            changed = target[:i] + bytes([target[i] ^ mask]) + target[i + 1 :]
            public_key, message, signature = (
                changed if part == "key" else public_key,
                changed if part == "message" else message,
                changed if part == "signature" else signature,
            )
    assert verify_signature(public_key, message, signature) == _pynacl_accepts(public_key, message, signature)


def test_the_fallback_through_pynacls_wrapper_decides_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where PyNaCl's private binding module is missing, the check goes through its public wrapper."""
    message = b"a transfer"
    signature = KEY.sign(message)
    cases = [(KEY.public_key, message, signature), (KEY.public_key, message + b"!", signature), (bytes(32), message, signature)]
    direct = [verify_signature(*case) for case in cases]
    monkeypatch.setattr(crypto, "_sodium", None)
    assert [verify_signature(*case) for case in cases] == direct == [True, False, False]
