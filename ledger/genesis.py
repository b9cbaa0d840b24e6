"""Genesis: the chain's parameters and the allocation of the whole, fixed supply.

A genesis file is JSON (see specs/monetary.md, "Genesis"). Its hash is SHA-256 of the canonical
msgpack of the parsed document; nodes refuse a store made from another genesis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger import encoding
from ledger.constants import RATE_SCALE
from ledger.crypto import address_from_text, sha256
from ledger.errors import Code, Rejected
from ledger.records import Account, ChainHead, Member, Params, Totals, Validator, account_key, member_key, validator_key


def _fail(message: str) -> Rejected:
    return Rejected(Code.GENESIS_INVALID, message)


def _int(doc: dict[str, Any], name: str, low: int = 0, high: int | None = None) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        raise _fail(f"{name} must be between {low} and {high}")
    return value


def _address(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a hex address")
    try:
        return address_from_text(value)
    except ValueError as exc:
        raise _fail(f"{what}: {exc}") from None


@dataclass(frozen=True)
class Genesis:
    document: dict[str, Any]
    params: Params
    total_supply: int
    commons_pool: int
    accounts: tuple[tuple[bytes, int], ...]
    members: tuple[bytes, ...]
    validators: tuple[tuple[bytes, str, int], ...]

    @property
    def chain_id(self) -> str:
        return self.params.chain_id

    @property
    def hash(self) -> bytes:
        return sha256(encoding.encode(self.document))

    @classmethod
    def from_json(cls, text: str) -> "Genesis":
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _fail(f"not JSON: {exc}") from None
        return cls.from_document(doc)

    @classmethod
    def from_file(cls, path: str) -> "Genesis":
        with open(path, "rb") as f:
            return cls.from_json(f.read().decode("utf-8", errors="strict"))

    @classmethod
    def from_document(cls, doc: Any) -> "Genesis":
        if not isinstance(doc, dict):
            raise _fail("genesis must be a JSON object")
        chain_id = doc.get("chain_id")
        if not isinstance(chain_id, str) or not (1 <= len(chain_id) <= 64) or not chain_id.isprintable():
            raise _fail("chain_id must be 1 to 64 printable characters")
        p = doc.get("params")
        if not isinstance(p, dict):
            raise _fail("params must be an object")
        params = Params(
            chain_id=chain_id,
            genesis_time_ms=_int(doc, "genesis_time_ms"),
            period_seconds=_int(p, "period_seconds", 1),
            demurrage_rate=_int(p, "demurrage_rate", 0, RATE_SCALE - 1),
            ubi_fraction=_int(p, "ubi_fraction", 0, RATE_SCALE),
            slash_fraction=_int(p, "slash_fraction", 0, RATE_SCALE),
            registrar=_address(doc.get("registrar"), "registrar"),
        )
        total_supply = _int(doc, "total_supply", 1, 2**63 - 1)
        commons_pool = _int(doc, "commons_pool")
        accounts: dict[bytes, int] = {}
        for i, entry in enumerate(doc.get("accounts", [])):
            if not isinstance(entry, dict):
                raise _fail(f"accounts[{i}] must be an object")
            address = _address(entry.get("address"), f"accounts[{i}].address")
            if address in accounts:
                raise _fail(f"accounts[{i}] repeats an address")
            accounts[address] = _int(entry, "balance")
        members: list[bytes] = []
        for i, text in enumerate(doc.get("members", [])):
            address = _address(text, f"members[{i}]")
            if address in members:
                raise _fail(f"members[{i}] repeats an address")
            members.append(address)
        validators: dict[bytes, tuple[str, int]] = {}
        for i, entry in enumerate(doc.get("validators", [])):
            if not isinstance(entry, dict):
                raise _fail(f"validators[{i}] must be an object")
            address = _address(entry.get("address"), f"validators[{i}].address")
            name = entry.get("name", "")
            if not isinstance(name, str) or len(name) > 64:
                raise _fail(f"validators[{i}].name must be text of at most 64 characters")
            if address in validators:
                raise _fail(f"validators[{i}] repeats an address")
            validators[address] = (name, _int(entry, "stake", 1))
        allocated = sum(accounts.values()) + commons_pool + sum(s for _, s in validators.values())
        if allocated != total_supply:
            raise _fail(f"allocations add up to {allocated}, not the total supply {total_supply}")
        return cls(
            document=doc,
            params=params,
            total_supply=total_supply,
            commons_pool=commons_pool,
            accounts=tuple(accounts.items()),
            members=tuple(members),
            validators=tuple((a, n, s) for a, (n, s) in validators.items()),
        )

    def initial_records(self) -> dict[bytes, Any]:
        """The state at height 0, period 0, as records by key."""
        records: dict[bytes, Any] = {b"g": self.params}
        circulating = 0
        for address, balance in self.accounts:
            records[account_key(address)] = Account(balance, 0, 0)
            circulating += balance
        for address in self.members:
            records[member_key(address)] = Member(0)
            records.setdefault(account_key(address), Account(0, 0, 0))
        bonded = 0
        for address, name, stake in self.validators:
            records[validator_key(address)] = Validator(stake, name)
            bonded += stake
        records[b"c"] = ChainHead(0, self.params.genesis_time_ms, 0)
        records[b"t"] = Totals(
            total_supply=self.total_supply,
            circulating=circulating,
            commons_pool=self.commons_pool,
            ubi_reserve=0,
            bonded=bonded,
            demurrage_collected=0,
            ubi_paid=0,
            slashed=0,
            member_count=len(self.members),
        )
        return records
