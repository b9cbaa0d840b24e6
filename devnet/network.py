"""A local devnet as one object: the manifest on disk plus the operations every command and test uses.

Every operation re-reads devnet.json first and writes it back after changing a pid or the
partition, so `hearth devnet kill v2` in one terminal and `hearth devnet up` in another agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from devnet import processes
from devnet.manifest import Manifest, ManifestError
from devnet.processes import NodeStatus

__all__ = ["Devnet", "BYZANTINE_FLAG", "READY_TIMEOUT_S"]

BYZANTINE_FLAG = "--byzantine-equivocate"
READY_TIMEOUT_S = 60.0
"""How long `up` waits for the first blocks: process start, peer links, a few rounds."""
ANSWER_TIMEOUT_S = 30.0
"""How long a starting validator may take to open its RPC (imports, opening its store, WAL replay)."""


class Devnet:
    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).resolve()
        self.manifest = Manifest.load(self.directory)

    def reload(self) -> Manifest:
        self.manifest = Manifest.load(self.directory)
        return self.manifest

    def _require_local(self) -> None:
        if not self.manifest.local:
            raise ManifestError("this devnet runs on several machines: start each validator there with `hearth node start --home DIR`")

    # processes ----------------------------------------------------------------------------------------
    def start(self, name: str, byzantine: bool = False, wait: bool = True) -> int:
        """Start one validator (if it is not running), wait until its RPC answers (unless `wait` is
        false), and re-apply the partition in force; its pid."""
        self._require_local()
        entry = self.reload().validator(name)
        if processes.is_running(entry):
            assert entry.pid is not None
            return entry.pid
        pid = processes.start_validator(entry, [BYZANTINE_FLAG] if byzantine else [])
        self.manifest = self.reload().with_pid(name, pid)
        self.manifest.save()
        if wait:
            self.wait_answering(name)
        return pid

    def wait_answering(self, name: str, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        """Until the validator's RPC answers, then give it its part of the partition in force.
        Fails at once, naming its log, if the process exits meanwhile."""
        entry = self.reload().validator(name)

        def answering() -> bool:
            if not processes.is_running(entry):
                tail = processes.log_tail(entry)
                raise ManifestError(f"{name} exited while starting; see {processes.log_path(entry)}" + (f", which ends:\n{tail}" if tail else ""))
            return processes.height_of(entry) is not None

        processes.poll_until(answering, timeout_s, f"{name}'s RPC to answer (log: {processes.log_path(entry)})")
        blocked = self.manifest.blocked.get(name, ())
        if blocked:
            processes.set_partition(entry, blocked)

    def start_all(self) -> None:
        """Start every validator not running, all at once, then wait for each to answer."""
        names = self.reload().names
        for name in names:
            self.start(name, wait=False)
        for name in names:
            self.wait_answering(name)

    def stop(self, name: str) -> None:
        self._require_local()
        processes.stop_validator(self.reload().validator(name))
        self._forget(name)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would."""
        self._require_local()
        processes.kill_validator(self.reload().validator(name))
        self._forget(name)

    def restart(self, name: str) -> int:
        self.stop(name)
        return self.start(name)

    def stop_all(self) -> None:
        """Every running validator, each given SIGTERM at once, then waited for."""
        self._require_local()
        entries = [e for e in self.reload().validators if processes.is_running(e)]
        for entry in entries:
            processes.signal_stop(entry)
        for entry in entries:
            processes.stop_validator(entry, signalled=True)
            self._forget(entry.name)

    def _forget(self, name: str) -> None:
        self.manifest = self.reload().with_pid(name, None)
        self.manifest.save()

    def running(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.reload().validators if processes.is_running(e))

    # chain --------------------------------------------------------------------------------------------
    def status(self) -> list[NodeStatus]:
        return [processes.node_status(e, self.manifest.local) for e in self.reload().validators]

    def wait_for_height(self, height: int, timeout_s: float, names: Iterable[str] | None = None) -> None:
        manifest = self.reload()
        entries = manifest.validators if names is None else tuple(manifest.validator(n) for n in names)
        processes.wait_for_height(entries, height, timeout_s)

    # network faults -------------------------------------------------------------------------------------
    def partition(self, side: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Cut the validators of `side` off from the others (both directions); the plan in force."""
        self._require_local()
        plan = processes.partition_plan(self.reload(), side)
        self.manifest = self.manifest.with_blocked(plan)
        self.manifest.save()
        self._apply_partition(plan)
        return plan

    def heal(self) -> None:
        self._require_local()
        manifest = self.reload()
        self.manifest = manifest.with_blocked({})
        self.manifest.save()
        self._apply_partition({n: () for n in manifest.names})

    def _apply_partition(self, plan: dict[str, tuple[str, ...]]) -> None:
        """On every running validator; a stopped one gets its part when it starts."""
        for entry in self.manifest.validators:
            if processes.is_running(entry):
                processes.set_partition(entry, plan.get(entry.name, ()))

