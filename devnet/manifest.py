"""DIR/devnet.json: what a devnet is made of, read by every `hearth devnet` command and by tests.

The manifest names each validator (its RPC URL, peer address, home and the pid of its process
when running) and the demo keyring (`HEARTH_HOME` for the CLI) with the names of its keys by role.
It is rewritten whole (write to a temporary file, rename) so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
__all__ = ["MANIFEST_NAME", "UNENCRYPTED_KEYS_WARNING", "Manifest", "ManifestError", "ValidatorEntry"]

MANIFEST_NAME = "devnet.json"
FORMAT_VERSION = 1
UNENCRYPTED_KEYS_WARNING = (
    "DEVNET ONLY: the demo keyring and the validator node keys are stored UNENCRYPTED. "
    "Anyone who can read this directory can sign as any of them. Never use these keys for real value."
)


class ManifestError(ValueError):
    """No devnet at that directory, or its devnet.json is malformed; the message says which."""


@dataclass(frozen=True)
class ValidatorEntry:
    name: str
    node_id: str
    """The validator's public key (hex): its node id and validator address."""
    home: str
    rpc_url: str
    p2p_address: str
    """host:port of its peer listener (the devnet partition switch lives there too)."""
    pid: int | None = None


@dataclass(frozen=True)
class Manifest:
    chain_id: str
    directory: str
    keyring: str
    """The demo keyring: use it as HEARTH_HOME (or --home) with the CLI."""
    keys: dict[str, tuple[str, ...]]
    """Key names of the keyring by role: members, councils, providers."""
    validators: tuple[ValidatorEntry, ...]
    local: bool = True
    """False for `--hosts ... --no-start`: validators run on other machines, not started from here."""
    warning: str = UNENCRYPTED_KEYS_WARNING
    version: int = FORMAT_VERSION
    blocked: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The partition in force: validator name -> names it refuses links with."""

    @property
    def path(self) -> Path:
        return Path(self.directory) / MANIFEST_NAME

    def validator(self, name: str) -> ValidatorEntry:
        for entry in self.validators:
            if entry.name == name:
                return entry
        raise ManifestError(f"no validator named {name!r} in this devnet; it has {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.validators)

    def with_pid(self, name: str, pid: int | None) -> "Manifest":
        self.validator(name)
        return replace(self, validators=tuple(replace(v, pid=pid) if v.name == name else v for v in self.validators))

    def with_blocked(self, blocked: Mapping[str, tuple[str, ...]]) -> "Manifest":
        return replace(self, blocked={k: tuple(v) for k, v in blocked.items() if v})

    # JSON -------------------------------------------------------------------------------------------
    def to_json(self) -> str:
        doc = asdict(self)
        doc = {"warning": doc.pop("warning"), **doc}  # the warning first, where a reader looks
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = MANIFEST_NAME) -> "Manifest":
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"not a version {FORMAT_VERSION} devnet manifest")
            validators = tuple(ValidatorEntry(**v) for v in doc.pop("validators"))
            keys = {role: tuple(names) for role, names in doc.pop("keys").items()}
            blocked = {name: tuple(names) for name, names in doc.pop("blocked", {}).items()}
            return cls(validators=validators, keys=keys, blocked=blocked, **doc)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ManifestError(f"{where} is malformed: {exc}") from None

    def save(self) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: str | Path) -> "Manifest":
        path = Path(directory) / MANIFEST_NAME
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ManifestError(f"no devnet at {directory} (no {MANIFEST_NAME}); make one with `hearth devnet up --dir {directory}`") from None
        return cls.from_json(text, str(path))

    def environment(self, validator: str | None = None) -> dict[str, str]:
        """HEARTH_HOME and HEARTH_RPC for the CLI against this devnet (first validator by default)."""
        entry = self.validator(validator) if validator else self.validators[0]
        return {"HEARTH_HOME": self.keyring, "HEARTH_RPC": entry.rpc_url}

