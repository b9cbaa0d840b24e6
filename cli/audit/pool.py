"""Forked worker processes for the replay's signature checks, each with a pipe to it and a pipe
back, driven by the calling thread alone.

Why not `concurrent.futures.ProcessPoolExecutor`: its tasks and answers pass through threads of
the calling process (a queue manager and a feeder), and the calling thread, executing blocks, holds
the interpreter lock. Each handoff to them waits for the lock's switch interval (5 ms), and an
answer or a task of a few hundred kB takes several (a pipe holds 64 kB at a time): a replay's
first block waited 30-50 ms for an answer its worker had sent, and workers sat idle for their next
batch. Here the calling thread writes each task and reads each answer itself, when it needs it, and
a task is queued in the worker's pipe (enlarged where the system allows) while the worker still
checks the one before.

Before it forks, the pool freezes the caller's heap (`gc.freeze`, Python's own advice for a process
that forks without exec), and thaws it at `close`. A forked worker shares the caller's memory page
by page until either writes to a page, and the cyclic collector writes to every object it walks: a
collection in the caller (which goes on allocating as it replays) or in a worker copied the pages
of everything the caller held, and walked it too. It matters to a caller that holds much: the
replay benchmark's 24 blocks replayed with 2 jobs in a process holding 3 million objects (900 MB)
at a median of 0.44 x 2V without the freeze and 0.47 and 0.57 with it (two sets of five), against
0.53-0.56 either way with a small heap (`hearth audit replay`'s own process forks before it holds
much).

Tasks go to the workers in turn, and each worker answers its tasks in the order it got them, so a
`Task`'s answer is the next one from its worker once the earlier tasks' answers are read. A worker
that raises sends the exception back (raised again by `Task.result`); one that dies, or cannot be
read, makes `Task.result` raise `WorkerPoolError`. `close` ends and reaps every worker: once it
returns, a caller's count of its children's CPU time includes theirs.
"""

from __future__ import annotations

import fcntl
import gc
import multiprocessing
import os
import pickle
import select
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Task", "WorkerPool", "WorkerPoolError"]

PIPE_BYTES = 1 << 20
"""The size asked for each pipe (Linux: F_SETPIPE_SZ, up to /proc/sys/fs/pipe-max-size, 1 MiB by
default): a batch of 200 kB and the next fit while the worker checks the one before."""
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_HEADER = struct.Struct(">Q")
_CONTEXT = multiprocessing.get_context("fork")
"""Fork: workers start at once with everything imported, and a caller's script needs no
`if __name__ == "__main__"` guard. Start the pool before the caller runs any thread: a fork of a
threaded process may inherit a lock a thread held."""


class WorkerPoolError(Exception):
    """A worker died or its pipe broke, so its tasks have no answer."""


def _enlarge(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # not Linux, or more than the system allows: the default size works, slower
        pass


def _read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from `fd`, or None at end of file before any byte."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, PIPE_BYTES))
        if not chunk:
            if left == size:
                return None
            raise EOFError("a message was cut short")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> bytes | None:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(header)[0])
    if body is None:
        raise EOFError("a message was cut short")
    return body


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _serve(fn: Callable[..., Any], tasks: int, answers: int) -> None:
    """A worker's life: each task's arguments in, `fn`'s answer (or exception) out, until the
    pool closes its end of the task pipe."""
    while (message := _read_message(tasks)) is not None:
        try:
            answer: tuple[bool, Any] = (True, fn(*pickle.loads(message)))
        except Exception as exc:  # sent back, raised again there; the worker goes on
            answer = (False, exc)
        try:
            data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an answer that cannot be pickled
            data = pickle.dumps((False, WorkerPoolError(f"the answer cannot be sent: {exc!r}")), pickle.HIGHEST_PROTOCOL)
        _write_all(answers, _HEADER.pack(len(data)) + data)


def _worker_main(fn: Callable[..., Any], tasks: int, answers: int, foreign: list[int]) -> None:
    for fd in foreign:  # the pool's ends and other workers' pipes, inherited by the fork
        os.close(fd)
    code = 0
    try:
        _serve(fn, tasks, answers)
    except BaseException:  # a broken pipe: the pool sees the end of file
        code = 1
    os._exit(code)  # no interpreter teardown of what the fork inherited


class Task:
    """One task's answer, to come from its worker."""

    __slots__ = ("_worker", "_done", "_ok", "_value")

    def __init__(self, worker: "_Worker") -> None:
        self._worker = worker
        self._done = False
        self._ok = False
        self._value: Any = None

    def done(self) -> bool:
        """Whether the answer is here (reads what its worker has sent so far, without waiting)."""
        if not self._done:
            self._worker.read_ready()
        return self._done

    def result(self) -> Any:
        """The answer (waits for it); raises what the worker raised, or WorkerPoolError."""
        while not self._done:
            self._worker.read_one()
        if not self._ok:
            raise self._value
        return self._value

    def _set(self, ok: bool, value: Any) -> None:
        self._done, self._ok, self._value = True, ok, value


class _Worker:
    def __init__(self, pid: int, tasks: int, answers: int) -> None:
        self.pid = pid
        self.tasks = tasks
        self.answers = answers
        self.waiting: deque[Task] = deque()
        """Tasks sent and not answered yet, oldest first."""
        self.broken: str | None = None
        self._poll_answers = select.poll()  # poll, not select: a process with LevelDB open may hold fds past 1024
        self._poll_answers.register(answers, select.POLLIN)
        self._poll_both = select.poll()
        self._poll_both.register(answers, select.POLLIN)
        self._poll_both.register(tasks, select.POLLOUT)

    def send(self, data: bytes) -> Task:
        task = Task(self)
        if self.broken is not None:
            task._set(False, WorkerPoolError(self.broken))
            return task
        self.waiting.append(task)
        view = memoryview(_HEADER.pack(len(data)) + data)
        os.set_blocking(self.tasks, False)
        try:
            while view:
                try:
                    view = view[os.write(self.tasks, view) :]
                except BlockingIOError:  # the pipe is full: read answers meanwhile, so the worker never waits on us
                    self._poll_both.poll()
                    self.read_ready()
                except OSError as exc:
                    self._break(f"worker {self.pid}: its task pipe broke: {exc}")
                    break
        finally:
            os.set_blocking(self.tasks, True)
        return task

    def read_ready(self) -> None:
        """Read every answer that has arrived, without waiting for more."""
        while self.waiting and self._poll_answers.poll(0):
            self.read_one()

    def read_one(self) -> None:
        """Read the next answer (waits for it)."""
        if not self.waiting:
            return
        try:
            message = _read_message(self.answers)
        except (OSError, EOFError) as exc:
            message, reason = None, f"worker {self.pid}: {exc}"
        else:
            reason = f"worker {self.pid} ended with {len(self.waiting)} tasks unanswered"
        if message is None:
            self._break(reason)
            return
        ok, value = pickle.loads(message)
        self.waiting.popleft()._set(ok, value)

    def _break(self, reason: str) -> None:
        self.broken = reason
        while self.waiting:
            self.waiting.popleft()._set(False, WorkerPoolError(reason))


class WorkerPool:
    """`jobs` forked processes that run `fn` on the arguments of each task (see the module docstring)."""

    def __init__(self, jobs: int, fn: Callable[..., Any]) -> None:
        if jobs < 1:
            raise ValueError("a pool needs at least one worker")
        self._workers: list[_Worker] = []
        self._processes: list[Any] = []
        self._next = 0
        self._thaw_at_close = gc.get_freeze_count() == 0
        """Whether `close` thaws the heap: not if the caller had frozen some of it itself (its
        objects and the pool's would thaw together)."""
        pipes = []
        for _ in range(jobs):
            task_r, task_w = os.pipe()
            answer_r, answer_w = os.pipe()
            for fd in (task_w, answer_w):
                _enlarge(fd)
            pipes.append((task_r, task_w, answer_r, answer_w))
        gc.freeze()  # what the workers share with this process: walked by no collection, so never copied
        try:
            for i, (task_r, task_w, answer_r, answer_w) in enumerate(pipes):
                foreign = [fd for j, p in enumerate(pipes) for fd in p if j != i] + [task_w, answer_r]
                process = _CONTEXT.Process(target=_worker_main, args=(fn, task_r, answer_w, foreign), daemon=True)
                process.start()
                self._workers.append(_Worker(process.pid, task_w, answer_r))
                self._processes.append(process)
        finally:
            for i, (task_r, task_w, answer_r, answer_w) in enumerate(pipes):
                os.close(task_r)  # the workers' ends: theirs alone now
                os.close(answer_w)
                if i >= len(self._workers):  # a fork failed: these were never handed to a worker
                    os.close(task_w)
                    os.close(answer_r)
            if len(self._workers) < jobs:
                self.close()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def submit(self, *args: Any) -> Task:
        """Send `fn(*args)` to the next worker in turn."""
        worker = self._workers[self._next]
        self._next = (self._next + 1) % len(self._workers)
        return worker.send(pickle.dumps(args, pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        """End every worker and wait for each to exit: an idle one at the end of its task pipe, one
        with tasks unanswered (dropped) at once, by SIGTERM."""
        for worker, process in zip(self._workers, self._processes):
            if worker.waiting:
                process.terminate()
            worker._break("the pool was closed")
            for fd in (worker.tasks, worker.answers):
                os.close(fd)
        for process in self._processes:
            process.join()
        self._workers, self._processes = [], []
        if self._thaw_at_close:  # what was frozen at the fork is the caller's again, to collect as before
            gc.unfreeze()
            self._thaw_at_close = False

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
