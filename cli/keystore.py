"""Key files under HOME/keys/, encrypted at rest.

A key file is JSON: the key's name and address in the clear (so keys can be listed and used as
recipients without a password) and the 32-byte ed25519 seed sealed with XSalsa20-Poly1305
(nacl.secret.SecretBox) under a key derived from the password with Argon2id
(nacl.pwhash.argon2id.kdf, its cost parameters stored beside it so they can be raised later).
After decrypting, the seed's public key must equal the stored address, so a tampered address is
caught. Files are created mode 0600 in a 0700 directory, never overwritten.

`--insecure-unencrypted` keys keep the seed in the clear: for devnet demo keys only, and the file
says so.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret

from ledger.crypto import Keypair, address_from_text

FORMAT_VERSION = 1
KDF_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
KDF_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
KDF_OPSLIMIT_MAX = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
KDF_MEMLIMIT_MAX = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
"""Bounds on the cost a key file may ask for, so a crafted file cannot make the wallet hang."""
KEY_FILE_BYTES_MAX = 64 * 1024
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UNENCRYPTED_WARNING = "UNENCRYPTED: anyone who can read this file can spend from this account. Devnet demo keys only."


class KeystoreError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class KeyInfo:
    name: str
    address: bytes
    encrypted: bool
    path: Path


def check_key_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise KeystoreError(f"{name!r} is not a key name", "use letters, digits, '.', '_' or '-' (at most 64, not starting with a symbol)")
    return name


# sealing ------------------------------------------------------------------------------------------------
def _derive(password: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, password.encode("utf-8"), salt, opslimit=opslimit, memlimit=memlimit)


def seal_seed(seed: bytes, password: str, opslimit: int = KDF_OPSLIMIT, memlimit: int = KDF_MEMLIMIT) -> dict[str, Any]:
    salt = secrets.token_bytes(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(password, salt, opslimit, memlimit))
    return {
        "kdf": "argon2id",
        "opslimit": opslimit,
        "memlimit": memlimit,
        "salt": salt.hex(),
        "cipher": "xsalsa20-poly1305",
        "ciphertext": bytes(box.encrypt(seed)).hex(),
    }


def open_seed(crypto: Any, password: str | None) -> bytes:
    """The seed of a key file's `crypto` section. Raises KeystoreError on a wrong password or a
    malformed or tampered file."""
    if not isinstance(crypto, dict):
        raise KeystoreError("the key file is malformed")
    try:
        if crypto.get("kdf") == "none":
            seed = bytes.fromhex(crypto["seed"])
        elif crypto.get("kdf") == "argon2id" and crypto.get("cipher") == "xsalsa20-poly1305":
            opslimit, memlimit = crypto["opslimit"], crypto["memlimit"]
            if not (isinstance(opslimit, int) and isinstance(memlimit, int) and 0 < opslimit <= KDF_OPSLIMIT_MAX and 0 < memlimit <= KDF_MEMLIMIT_MAX):
                raise KeystoreError("the key file asks for key-derivation costs out of range")
            if password is None:
                raise KeystoreError("this key is encrypted and needs its password")
            key = _derive(password, bytes.fromhex(crypto["salt"]), opslimit, memlimit)
            seed = nacl.secret.SecretBox(key).decrypt(bytes.fromhex(crypto["ciphertext"]))
        else:
            raise KeystoreError("the key file uses an unknown encryption scheme")
    except nacl.exceptions.CryptoError:
        raise KeystoreError("wrong password", "try again; the password is the one given when the key was made or imported") from None
    except (KeyError, TypeError, ValueError):
        raise KeystoreError("the key file is malformed") from None
    if len(seed) != 32:
        raise KeystoreError("the key file is malformed")
    return seed


def parse_key_file(data: bytes) -> dict[str, Any]:
    if len(data) > KEY_FILE_BYTES_MAX:
        raise KeystoreError("not a Hearth key file (too large)")
    try:
        doc = json.loads(data)
    except ValueError:
        raise KeystoreError("not a Hearth key file (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("hearth_key") != FORMAT_VERSION or not isinstance(doc.get("address"), str):
        raise KeystoreError("not a Hearth key file", "a key file is what `hearth keys export` writes")
    try:
        address_from_text(doc["address"])
    except ValueError:
        raise KeystoreError("the key file is malformed (bad address)") from None
    return doc


def is_encrypted(doc: dict[str, Any]) -> bool:
    crypto = doc.get("crypto")
    return not (isinstance(crypto, dict) and crypto.get("kdf") == "none")


def key_file_document(name: str, keypair: Keypair, password: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"hearth_key": FORMAT_VERSION, "name": name, "address": keypair.address.hex()}
    if password is None:
        doc["warning"] = UNENCRYPTED_WARNING
        doc["crypto"] = {"kdf": "none", "seed": keypair.seed.hex()}
    else:
        doc["crypto"] = seal_seed(keypair.seed, password)
    return doc


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 and `data`, atomically, refusing to replace an existing file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise KeystoreError(f"{path} already exists", "choose another name or file") from None
    finally:
        tmp.unlink()


class Keystore:
    def __init__(self, home: Path) -> None:
        self.dir = home / "keys"

    def path(self, name: str) -> Path:
        return self.dir / f"{check_key_name(name)}.json"

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)

    def _read(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        try:
            with open(path, "rb") as f:
                data = f.read(KEY_FILE_BYTES_MAX + 1)
        except FileNotFoundError:
            raise KeystoreError(f"no key named {name!r} in {self.dir}", "see `hearth keys list`, or pass --home") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read key {name!r}: {exc.strerror}") from None
        return parse_key_file(data)

    def info(self, name: str) -> KeyInfo:
        doc = self._read(name)
        return KeyInfo(name, address_from_text(doc["address"]), is_encrypted(doc), self.path(name))

    def list(self) -> list[KeyInfo]:
        if not self.dir.is_dir():
            return []
        infos = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                infos.append(self.info(path.stem))
            except KeystoreError:
                continue  # not a key file of ours
        return infos

    def create(self, name: str, keypair: Keypair, password: str | None) -> KeyInfo:
        """Store `keypair` as `name`, sealed under `password` (None: unencrypted, devnet only)."""
        path = self.path(name)
        self._ensure_dir()
        doc = key_file_document(name, keypair, password)
        write_private_file(path, (json.dumps(doc, indent=2) + "\n").encode())
        return KeyInfo(name, keypair.address, password is not None, path)

    def load(self, name: str, password: str | None) -> Keypair:
        doc = self._read(name)
        return keypair_from_document(doc, password)

    def export(self, name: str) -> bytes:
        """The key file as stored: still sealed under its password."""
        doc = self._read(name)
        return (json.dumps(doc, indent=2) + "\n").encode()

    def import_file(self, name: str, data: bytes, password: str | None) -> KeyInfo:
        """Store an exported key file as `name`, after checking that `password` opens it."""
        doc = parse_key_file(data)
        keypair_from_document(doc, password)
        doc["name"] = check_key_name(name)
        path = self.path(name)
        self._ensure_dir()
        write_private_file(path, (json.dumps(doc, indent=2) + "\n").encode())
        return self.info(name)

    def is_private(self, name: str) -> bool:
        """False if the key file can be read by anyone but its owner."""
        return stat.S_IMODE(self.path(name).stat().st_mode) & 0o077 == 0

    def resolve_address(self, text: str) -> bytes:
        """An address given as 64 hex characters, or the address of a key by that name."""
        try:
            return address_from_text(text)
        except ValueError:
            pass
        if NAME_PATTERN.match(text) and self.path(text).exists():
            return self.info(text).address
        raise KeystoreError(f"{text!r} is neither an address (64 hex characters) nor a key name", "see `hearth keys list`")


def keypair_from_document(doc: dict[str, Any], password: str | None) -> Keypair:
    keypair = Keypair.from_seed(open_seed(doc.get("crypto"), password))
    if keypair.address.hex() != doc["address"].lower().removeprefix("0x"):
        raise KeystoreError("the key file is corrupt: its seed does not match its address")
    return keypair
