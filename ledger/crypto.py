"""Hashing, ed25519 keys and signatures, and address text form."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ledger.constants import ADDRESS_BYTES, MAX_TX_BYTES, SIGNATURE_BYTES

try:  # PyNaCl's own cffi binding of its libsodium: a private module, so a PyNaCl without it is coped with
    from nacl._sodium import ffi as _ffi, lib as _sodium
except ImportError:  # pragma: no cover - every PyNaCl 1.x has it
    _ffi = _sodium = None


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_OPENED = None if _ffi is None else _ffi.new("unsigned char[]", MAX_TX_BYTES + 1024)
_OPENED_LENGTH = None if _ffi is None else _ffi.new("unsigned long long *")
"""Where crypto_sign_open copies the message it verified: never read, so one buffer serves every
call of every thread (libsodium verifies from the signed bytes alone and copies after)."""


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff `signature` is a valid ed25519 signature of `message` by `public_key`.

    libsodium's crypto_sign_open, the very call PyNaCl's `VerifyKey.verify` makes, called directly:
    the same acceptance, without the wrapper's checks, buffers and copy of the message (a few
    microseconds of every transaction's check). Without PyNaCl's binding module, through its wrapper."""
    if type(public_key) is not bytes or len(public_key) != ADDRESS_BYTES or type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        signed = signature + message
    except TypeError:
        return False
    if type(signed) is not bytes:  # a message type that makes something else of it
        return False
    if _sodium is None:
        return _verify_with_wrapper(public_key, signed)
    opened = _OPENED if len(signed) <= len(_OPENED) else _ffi.new("unsigned char[]", len(signed))
    return _sodium.crypto_sign_open(opened, _OPENED_LENGTH, signed, len(signed), public_key) == 0


def _verify_with_wrapper(public_key: bytes, signed: bytes) -> bool:
    """`verify_signature` through PyNaCl's public binding (the same libsodium call)."""
    try:
        nacl.bindings.crypto_sign_open(signed, public_key)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False


@dataclass(frozen=True)
class Keypair:
    """An ed25519 signing key. The address of an account is its 32-byte public key."""

    seed: bytes

    @classmethod
    def generate(cls) -> "Keypair":
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> "Keypair":
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        return cls(seed)

    @property
    def _signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def address(self) -> bytes:
        return self.public_key

    def sign(self, message: bytes) -> bytes:
        return self._signing_key.sign(message).signature

    def __repr__(self) -> str:  # never show the seed
        return f"Keypair(address={address_to_text(self.public_key)})"


def address_to_text(address: bytes) -> str:
    """Addresses are shown as 64 lowercase hex characters."""
    return address.hex()


def address_from_text(text: str) -> bytes:
    """Parse an address; raises ValueError with a clear message."""
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if len(t) != ADDRESS_BYTES * 2:
        raise ValueError(f"an address is {ADDRESS_BYTES * 2} hex characters, got {len(t)}")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise ValueError("an address is hex characters only") from None
