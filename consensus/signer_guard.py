"""What a validator keeps on disk so a crash can neither make it equivocate nor forget its height.

`FileSignerGuard` is the durable `consensus.signer.SignerGuard`: the last signed (height, round,
step), its sign bytes, signature and lock, written to a temporary file, fsync'd, renamed over the
old one and the directory fsync'd, all before the signature is released. After a crash the file
holds either the old or the new state, whole; never a mix, never less than what was released.

`ConsensusWAL` is the write-ahead log of the consensus messages of the current height (received
and our own, as the frames that carried them). A restarted node replays it into the engine, so
it resumes the height with the votes it had seen instead of waiting for resends. The WAL is
flushed to the OS per record but not fsync'd: what a power cut loses, peers resend; safety rests on
the signer guard alone, which is fsync'd.

WAL record: 4-byte big-endian length, 4-byte CRC32 of the body, body = msgpack
`[height, kind, payload]`. Reading stops at the first short or corrupt record (a torn last write).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from consensus.errors import MessageInvalid
from consensus.signer import SignedState
from ledger.encoding import EncodingError, decode

__all__ = ["FileSignerGuard", "ConsensusWAL", "WALRecord"]

log = logging.getLogger("hearth.wal")

MAX_WAL_RECORD_BYTES = 16 << 20
MAX_WAL_RECORDS = 100_000
"""Records kept for one height; past it new ones are not logged (the node still processes them)."""

_HEADER = struct.Struct(">II")

WALRecord = tuple[int, str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that after a crash it holds the old or the new bytes, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class FileSignerGuard:
    """The double-sign guard on disk. `store` returns only once the state is durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stores = 0

    def load(self) -> SignedState | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return SignedState.from_bytes(data)
        except MessageInvalid as exc:
            # Refuse to start rather than sign with a forgotten history.
            raise RuntimeError(f"signer state {self.path} is unreadable ({exc}); refusing to sign") from None

    def store(self, state: SignedState) -> None:
        write_file_durably(self.path, state.to_bytes())
        self.stores += 1


class ConsensusWAL:
    """Messages of the heights not yet committed, in arrival order, in one append-only file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "wal.log"
        self._records: list[tuple[int, bytes]] = []  # (height, body)
        self._file: BinaryIO | None = None
        self.dropped = 0

    def replay(self) -> list[WALRecord]:
        """Read what the file holds (a torn tail is cut off), and open it for appending."""
        records: list[WALRecord] = []
        raw_records: list[tuple[int, bytes]] = []
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size : offset + _HEADER.size + length]
            if length > MAX_WAL_RECORD_BYTES or len(body) != length or zlib.crc32(body) != crc:
                log.warning("WAL: cut a torn or corrupt tail at byte %d of %s", offset, self.path)
                break
            try:
                height, kind, payload = decode(body, MAX_WAL_RECORD_BYTES)
            except (EncodingError, ValueError, TypeError):
                break
            records.append((height, kind, payload))
            raw_records.append((height, body))
            offset += _HEADER.size + length
        self._rewrite(raw_records)
        return records

    def append(self, height: int, kind: str, payload: Any) -> None:
        if len(self._records) >= MAX_WAL_RECORDS:
            self.dropped += 1
            return
        body = msgpack.packb([height, kind, payload], use_bin_type=True)
        self._records.append((height, body))
        f = self._open()
        f.write(_HEADER.pack(len(body), zlib.crc32(body)) + body)
        f.flush()

    def committed(self, height: int) -> None:
        """Height `height` is committed: keep only records of later heights."""
        self._rewrite([(h, body) for h, body in self._records if h > height])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> BinaryIO:
        if self._file is None:
            self._file = open(self.path, "ab")
        return self._file

    def _rewrite(self, records: list[tuple[int, bytes]]) -> None:
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            for _, body in records:
                f.write(_HEADER.pack(len(body), zlib.crc32(body)) + body)
        os.replace(tmp, self.path)
        self._records = list(records)
