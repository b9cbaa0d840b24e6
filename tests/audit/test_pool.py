"""The replay's worker pool (cli/audit/pool.py): answers in order, a worker's exception raised again
here, a dead worker named, every worker reaped at close, the caller's heap frozen while the workers
share it."""

from __future__ import annotations

import gc
import os
import signal

import pytest

from cli.audit.pool import PIPE_BYTES, WorkerPool, WorkerPoolError

GATE_R, GATE_W = os.pipe()
"""Made before any pool forks, so every worker holds it: `wait_for_gate` blocks a worker until the
test writes a byte (a task that is certainly not answered yet, without timing)."""


def echo(tag: int, payload: bytes) -> tuple[int, int, bytes]:
    return tag, os.getpid(), payload[::-1]


def fail(message: str) -> None:
    raise ValueError(message)


def wait_for_gate(tag: int) -> int:
    os.read(GATE_R, 1)
    return tag


def unpicklable() -> object:
    return lambda: None


def freeze_count() -> int:
    return gc.get_freeze_count()


def dispatch(name: str, *args: object) -> object:
    return {"echo": echo, "fail": fail, "wait_for_gate": wait_for_gate, "unpicklable": unpicklable, "freeze_count": freeze_count}[name](*args)


def test_each_answer_belongs_to_its_task_and_the_workers_share_the_tasks() -> None:
    with WorkerPool(2, dispatch) as pool:
        tasks = [pool.submit("echo", i, bytes([i % 256]) * (i * 101)) for i in range(40)]
        answers = [t.result() for t in reversed(tasks)][::-1]  # read out of order: earlier answers are kept for their tasks
    assert [(tag, payload) for tag, _, payload in answers] == [(i, bytes([i % 256]) * (i * 101)) for i in range(40)]
    assert len({pid for _, pid, _ in answers}) == 2


def test_tasks_and_answers_larger_than_a_pipe_pass_whole() -> None:
    big = os.urandom(3 * PIPE_BYTES + 12_345)
    with WorkerPool(2, dispatch) as pool:
        tasks = [pool.submit("echo", i, big) for i in range(4)]  # more than the pipes hold: sending waits, reading answers meanwhile
        assert [t.result()[2] for t in tasks] == [big[::-1]] * 4


def test_an_exception_in_a_worker_is_raised_by_its_task_and_the_worker_goes_on() -> None:
    with WorkerPool(1, dispatch) as pool:
        failed, after = pool.submit("fail", "no such block"), pool.submit("echo", 7, b"ab")
        with pytest.raises(ValueError, match="no such block"):
            failed.result()
        assert after.result()[::2] == (7, b"ba")


def test_an_answer_that_cannot_be_sent_is_an_error_of_its_task_alone() -> None:
    with WorkerPool(1, dispatch) as pool:
        bad, good = pool.submit("unpicklable"), pool.submit("echo", 1, b"x")
        with pytest.raises(WorkerPoolError, match="cannot be sent"):
            bad.result()
        assert good.result()[0] == 1


def test_done_says_whether_the_answer_has_come_without_waiting() -> None:
    with WorkerPool(1, dispatch) as pool:
        task = pool.submit("wait_for_gate", 5)
        assert not task.done()
        os.write(GATE_W, b"x")
        assert task.result() == 5
        assert task.done()


def test_a_worker_that_dies_fails_its_tasks_and_the_next_ones_sent_to_it() -> None:
    with WorkerPool(2, dispatch) as pool:
        first, other = pool.submit("wait_for_gate", 1), pool.submit("echo", 2, b"")
        os.kill(pool.pids[0], signal.SIGKILL)
        with pytest.raises(WorkerPoolError, match="ended with 1 tasks unanswered"):
            first.result()
        assert other.result()[0] == 2  # the other worker is unharmed
        with pytest.raises(WorkerPoolError):
            pool.submit("echo", 3, b"").result()  # the dead one's turn again


def test_close_reaps_every_worker_even_one_still_busy() -> None:
    pool = WorkerPool(2, dispatch)
    pids = pool.pids
    busy = pool.submit("wait_for_gate", 1)  # never let through: closing ends it
    pool.close()
    with pytest.raises(WorkerPoolError, match="closed"):
        busy.result()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # exited and reaped


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        WorkerPool(0, dispatch)


def test_the_heap_the_workers_share_is_frozen_until_close_and_then_thawed() -> None:
    gc.unfreeze()  # a caller with nothing frozen
    held = [[i] for i in range(10_000)]  # tracked objects of the caller's, there before the fork
    pool = WorkerPool(2, dispatch)
    try:
        assert gc.get_freeze_count() >= len(held)  # no collection here walks (and so copies) them
        assert all(pool.submit("freeze_count").result() >= len(held) for _ in range(2))  # nor in a worker
        frozen = gc.get_freeze_count()
        made_after = [[i] for i in range(1_000)]
        assert gc.get_freeze_count() < frozen + len(made_after)  # what comes after the fork is collected as ever
    finally:
        pool.close()
    assert gc.get_freeze_count() == 0
    pool.close()  # a second close thaws nothing more
    assert gc.get_freeze_count() == 0


def test_a_caller_that_froze_its_heap_itself_keeps_it_frozen() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with WorkerPool(1, dispatch) as pool:
            assert pool.submit("echo", 1, b"").result()[0] == 1
        assert gc.get_freeze_count() >= before > 0
    finally:
        gc.unfreeze()
