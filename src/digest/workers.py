"""Work that one input must not be able to stall: each item runs in a child process with a time budget,
and a worker that overruns it is killed and replaced; the other items' results are kept.

The workers are forked, so they inherit what the parent prepared (Python-Markdown's converter) instead
of importing it again, and the items themselves: only an item's index goes down the pipe (an article is
not pickled, with its body, to be unpickled again). Items go out one at a time, so a killed worker loses
only the item it was on, and every item's outcome is the same whichever worker ran it, and whether or
not another was killed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

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
class _Worker:
    process: Any  # multiprocessing's Process of the fork context
    conn: Connection
    # The items handed over, in order: the first is being worked on (since `started`), the next waits in
    # the pipe, so that a worker never sits idle waiting for the parent.
    queued: deque[int] = field(default_factory=deque)
    started: float = 0.0


_QUEUED = 2
_PR_SET_PDEATHSIG = 1  # prctl(2)


def bounded_map(
    func: Callable[[A], R], items: Sequence[A], *, budget: float, workers: int
) -> list[R | Overrun | Failed]:
    """`func` of each item, in order, each computed in a child process within `budget` seconds (wall
    time, from when the worker could start on it); an item that overruns is an `Overrun`, one that
    raises a `Failed`. At most `workers` processes run at once."""
    if not items:
        return []
    context = multiprocessing.get_context("fork")
    results: list[R | Overrun | Failed | None] = [None] * len(items)
    pending = deque(range(len(items)))

    def start() -> _Worker:
        ours, theirs = context.Pipe()
        # Forked, the worker has `items` already: only an item's index goes down the pipe, not the item.
        process = context.Process(target=_serve, args=(func, items, theirs, os.getpid()), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def hand(worker: _Worker) -> None:
        while pending and len(worker.queued) < _QUEUED:
            if not worker.queued:
                worker.started = time.monotonic()
            index = pending.popleft()
            worker.queued.append(index)
            worker.conn.send(index)

    def replace(worker: _Worker, outcome: Overrun | Failed) -> _Worker:
        """A fresh worker in the place of one that overran or died; the items it had not started on
        go back to the front of the queue."""
        results[worker.queued.popleft()] = outcome
        pending.extendleft(reversed(worker.queued))
        worker.queued.clear()
        _stop(worker, kill=True)
        fresh = start()
        pool[pool.index(worker)] = fresh
        return fresh

    pool = [start() for _ in range(max(1, min(workers, len(items))))]
    try:
        for worker in pool:
            hand(worker)
        while busy := [worker for worker in pool if worker.queued]:
            timeout = max(0.0, min(worker.started for worker in busy) + budget - time.monotonic())
            ready = set(wait([worker.conn for worker in busy], timeout))
            for worker in busy:
                if worker.conn in ready:
                    try:
                        ok, value = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.process.join()
                        worker = replace(worker, Failed(_death(worker.process.exitcode)))
                    else:
                        results[worker.queued.popleft()] = value if ok else Failed(value)
                        worker.started = time.monotonic()
                elif time.monotonic() >= worker.started + budget:
                    worker = replace(worker, Overrun(budget))
                hand(worker)
    finally:
        for worker in pool:
            _stop(worker)
    return [result for result in results if result is not None]


def _stop(worker: _Worker, *, kill: bool = False) -> None:
    if kill or worker.queued:
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


def _serve(func: Callable[[Any], Any], items: Sequence[Any], conn: Connection, parent: int) -> None:
    """A worker's loop: an item's index in, (True, result) or (False, what it raised) out, until told
    to stop."""
    _die_with(parent)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        try:
            reply: tuple[bool, Any] = (True, func(items[message]))
        except Exception as exc:  # reported as the item's problem; the other items go on
            reply = (False, f"{type(exc).__name__}: {exc}"[:_MESSAGE_CHARS])
        conn.send(reply)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when its parent dies (Linux): a parent killed outright (SIGKILL,
    the OOM killer) cannot stop its workers, and one may be minutes into a slow item."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
