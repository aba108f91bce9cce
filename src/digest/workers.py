"""Work that one input must not be able to stall: each item runs in a child process with a time budget,
and a worker that overruns it is killed and replaced; the other items' results are kept.

The workers are forked, so they inherit what the parent prepared (Python-Markdown's converter) instead
of importing it again. Items go out one at a time, so a killed worker loses only the item it was on,
and every item's outcome is the same whichever worker ran it, and whether or not another was killed.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")

# What an exception's text may add to a problem line: enough to name the cause.
_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Overrun:
    """The item was still running when its budget of `seconds` ran out; its worker was killed."""

    seconds: float


@dataclass(frozen=True)
class Failed:
    """The item raised (`message` names the exception), or its worker died under it."""

    message: str


@dataclass
class _Worker(Generic[A]):
    process: Any  # multiprocessing's Process of the fork context
    conn: Connection
    index: int = -1  # the item in hand, -1 when idle
    deadline: float = 0.0


def bounded_map(
    func: Callable[[A], R], items: Sequence[A], *, budget: float, workers: int
) -> list[R | Overrun | Failed]:
    """`func` of each item, in order, each computed in a child process within `budget` seconds (wall
    time from when the item is handed over); an item that overruns is an `Overrun`, one that raises a
    `Failed`. At most `workers` processes run at once."""
    if not items:
        return []
    context = multiprocessing.get_context("fork")
    results: list[R | Overrun | Failed | None] = [None] * len(items)
    pending = deque(range(len(items)))

    def start() -> _Worker[A]:
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(func, theirs), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def hand(worker: _Worker[A]) -> bool:
        if not pending:
            return False
        worker.index = pending.popleft()
        worker.deadline = time.monotonic() + budget
        worker.conn.send((worker.index, items[worker.index]))
        return True

    pool = [start() for _ in range(max(1, min(workers, len(items))))]
    try:
        busy = [worker for worker in pool if hand(worker)]
        while busy:
            timeout = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
            ready = set(wait([worker.conn for worker in busy], timeout))
            still: list[_Worker[A]] = []
            for worker in busy:
                if worker.conn in ready:
                    try:
                        ok, value = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.process.join()
                        results[worker.index] = Failed(_death(worker.process.exitcode))
                        worker = _replace(pool, worker, start)  # noqa: PLW2901
                    else:
                        results[worker.index] = value if ok else Failed(value)
                elif time.monotonic() >= worker.deadline:
                    results[worker.index] = Overrun(budget)
                    worker = _replace(pool, worker, start)  # noqa: PLW2901
                else:
                    still.append(worker)
                    continue
                worker.index = -1
                if hand(worker):
                    still.append(worker)
            busy = still
    finally:
        for worker in pool:
            _stop(worker)
    return [result for result in results if result is not None]


def _replace(pool: list[_Worker[A]], worker: _Worker[A], start: Callable[[], _Worker[A]]) -> _Worker[A]:
    """A fresh worker in the place of one that overran or died (killed first when still running)."""
    _stop(worker, kill=True)
    fresh = start()
    pool[pool.index(worker)] = fresh
    return fresh


def _stop(worker: _Worker[Any], *, kill: bool = False) -> None:
    if kill or worker.index >= 0:
        worker.process.kill()
    else:
        try:
            worker.conn.send(None)
        except OSError:
            worker.process.kill()
    worker.process.join(5)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join()
    worker.conn.close()


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"its worker was stopped by signal {-exitcode}"
    return f"its worker exited ({exitcode})"


def _serve(func: Callable[[Any], Any], conn: Connection) -> None:
    """A worker's loop: an item in, (True, result) or (False, what it raised) out, until told to stop."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        _, item = message
        try:
            reply: tuple[bool, Any] = (True, func(item))
        except Exception as exc:  # noqa: BLE001 - reported as the item's problem, the others go on
            reply = (False, f"{type(exc).__name__}: {exc}"[:_MESSAGE_CHARS])
        conn.send(reply)
