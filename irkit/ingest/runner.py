"""The tasks of a parse run run in worker processes (inline for one worker), and a
process pool that a dying worker broke replaced by a new one.

A worker that dies (killed by the kernel for memory, a crash in a parser) breaks
Python's process pool: every file it was still to parse fails with it. The pool is
replaced instead: each worker says which task it starts, so the tasks that were running
when it died are run again one at a time, alone, and the one that kills its worker
again is a ``worker-died`` warning; the others go on in a new pool. When the workers die
before any file is parsed (they cannot even start), the run stops with ``WorkersDiedError``.

This module owns ``Runner`` and ``WorkersDiedError``; what is run is decided in
``irkit.ingest.pool``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

from irkit.errors import IrkitError
from irkit.ingest.interrupts import interrupts_held
from irkit.ingest.options import ParseOptions
from irkit.ingest.summary import Progress
from irkit.ingest.tasks import Done, Task
from irkit.ingest.worker import (
    died,
    ensure_server,
    init_worker,
    parse_file,
    parse_group,
    safe_path,
    worker_context,
)
from irkit.model import FileStats, ParseWarning

#: How often the parent looks at the workers' progress messages, in seconds.
POLL: Final = 0.2
#: Pools that may break in a row before any worker started a file: then the workers
#: cannot run at all (they fail as they start), and the run stops.
IDLE_BREAKS: Final = 3


class WorkersDiedError(IrkitError):
    """Every parse worker died before finishing a file: nothing can be parsed."""


class Runner:
    """Tasks run inline (one worker) or in worker processes; a broken pool is replaced."""

    def __init__(
        self,
        spool: str,
        already: frozenset[str],
        options: ParseOptions,
        progress: Progress,
        workers: int,
    ) -> None:
        self.spool = spool
        self.already = already
        self.options = options
        self.progress = progress
        self.workers = workers
        self.inline: list[Task] = []
        self.futures: dict[cf.Future[Any], Task] = {}
        #: Ids of the tasks a group is split into, to find which file killed its worker.
        self._ids = itertools.count(1 << 62)
        #: Tasks not handed to a pool yet (it broke while they were submitted).
        self.waiting: list[Task] = []
        #: Records each running task reported; tasks a worker said it started.
        self.reported: dict[int, int] = {}
        self.started: set[int] = set()
        #: Tasks finished (any outcome but a dead worker), and at the last broken pool;
        #: tasks that killed the worker they ran alone in.
        self.completed = 0
        self.completed_at_break = 0
        self.deaths = 0
        #: Pools broken in a row with no file started or finished.
        self.idle_breaks = 0
        self.pool: cf.ProcessPoolExecutor | None = None
        self.queue: Any = None
        self._env: contextlib.AbstractContextManager[None] | None = None
        if workers > 1:
            self._env = safe_path()
            self._env.__enter__()
            try:
                with interrupts_held():
                    ensure_server()  # workers fork from it, ignoring Ctrl-C (the parent's)
                    self.context = worker_context()
                    self.pool = self._new_pool(workers)
            except BaseException:
                self.close()
                raise

    def _new_pool(self, workers: int) -> cf.ProcessPoolExecutor:
        # A fresh queue each time: a worker killed while writing to the old one may have
        # died holding its lock.
        self.queue = self.context.SimpleQueue()
        return cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self.context,
            initializer=init_worker,
            initargs=(self.queue,),
        )

    def _start(self, pool: cf.ProcessPoolExecutor, task: Task) -> cf.Future[Any]:
        if task.group:
            return pool.submit(
                parse_group,
                task.group,
                self.spool,
                self.already,
                self.options,
                task.shas,
                task=task.id,
            )
        return pool.submit(
            parse_file,
            task.candidate,
            self.spool,
            self.already,
            self.options,
            None,
            task.span,
            task.sha256,
            task=task.id,
            recover=task.recover,
        )

    def submit(self, task: Task) -> None:
        """Queue a task: it starts as soon as a worker is free."""
        if self.pool is None:
            self.inline.append(task)
            return
        with interrupts_held():
            try:
                future = self._start(self.pool, task)
            except (BrokenProcessPool, OSError):
                # Broken, or breaking: Python 3.11's pool may close its wake-up pipe under
                # a submit as it breaks ("handle is closed", "Bad file descriptor").
                self.waiting.append(task)
                return
            self.futures[future] = task

    def run(self) -> Iterator[Done]:
        """Every queued task, as each finishes. The pool is handled with Ctrl-C held
        back (``interrupts_held``); the finished tasks are yielded outside."""
        if self.pool is None:
            yield from self._run_inline()
            return
        while self.futures or self.waiting:
            suspects: list[Task] = []
            others: list[Task] | None = None
            with interrupts_held():
                finished: list[Done] = []
                broken: list[Task] = []
                stalled = not self.futures  # tasks waiting: the pool broke as they came
                if not stalled:
                    done, _ = cf.wait(self.futures, timeout=POLL, return_when=cf.FIRST_COMPLETED)
                    self._drain()
                    finished, broken = self._collect(done)
                if broken or stalled:
                    more, suspects, others = self._break(broken)
                    finished += more
            yield from finished
            if others is not None:
                for suspect in suspects:
                    # A group's files run alone one by one: one of them killed the worker.
                    for task in self._split(suspect):
                        yield self._alone(task)
                with interrupts_held():
                    self._restart(others)
        with interrupts_held():
            self._drain()
        if self.deaths and not self.completed:
            raise WorkersDiedError(
                f"parse workers died: each of the {self.deaths} files tried killed its "
                "worker process, and no file could be parsed",
                hint=_HINT,
            )

    def _split(self, task: Task) -> list[Task]:
        """A group as one task per file; any other task as itself."""
        if not task.group:
            return [task]
        shas = task.shas or ("",) * len(task.group)
        return [
            Task(next(self._ids), candidate, sha)
            for candidate, sha in zip(task.group, shas, strict=True)
        ]

    def _run_inline(self) -> Iterator[Done]:
        tasks, self.inline = self.inline, []
        for task in tasks:
            shown = [0]

            def report(count: int, shown: list[int] = shown) -> None:
                shown[0] += count
                self.progress.records(count)

            if task.group:
                members = parse_group(
                    task.group, self.spool, self.already, self.options, task.shas, report
                )
                yield _done(task, members, shown[0])
                continue
            stats = parse_file(
                task.candidate,
                self.spool,
                self.already,
                self.options,
                report,
                task.span,
                task.sha256,
                recover=task.recover,
            )
            yield Done(task, stats, shown[0])

    def _drain(self) -> None:
        """Take the workers' messages: a task started, or ran N more records."""
        queue = self.queue
        while not queue.empty():
            task, count = queue.get()
            if count:
                self.reported[task] = self.reported.get(task, 0) + count
                self.progress.records(count)
            else:
                self.started.add(task)

    def _collect(self, done: Any) -> tuple[list[Done], list[Task]]:
        """The finished futures' results, and the tasks a broken pool took down."""
        finished: list[Done] = []
        broken: list[Task] = []
        for future in sorted(done, key=lambda f: self.futures[f].id):
            task = self.futures.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                broken.append(task)
                continue
            if isinstance(error, KeyboardInterrupt):  # Ctrl-C reached the worker too
                raise KeyboardInterrupt
            self.started.discard(task.id)
            self.completed += 1
            reported = self.reported.pop(task.id, 0)
            if task.group:
                members = (
                    future.result()
                    if error is None
                    else [died(candidate, error) for candidate in task.group]
                )
                finished.append(_done(task, members, reported))
                continue
            stats = future.result() if error is None else died(task.candidate, error)
            finished.append(Done(task, stats, reported))
        return finished, broken

    def _break(self, broken: list[Task]) -> tuple[list[Done], list[Task], list[Task]]:
        """A worker died and took the pool with it: the tasks that finished anyway, the
        ones it may have been running (to run alone, to find the one that kills its
        worker: ``_alone``) and the others (to run again in a new pool: ``_restart``)."""
        assert self.pool is not None
        finished: list[Done] = []
        if self.futures:  # every other task of the broken pool fails too, at once
            cf.wait(self.futures)
            for future, task in list(self.futures.items()):
                if isinstance(future.exception(), BrokenProcessPool):
                    broken.append(task)
                    del self.futures[future]
            finished, _ = self._collect(list(self.futures))
        self._drain()
        _shutdown(self.pool)
        broken += self.waiting
        self.waiting = []
        for task in broken:  # their records are shown again when they run again
            self.progress.records(-self.reported.pop(task.id, 0))
        suspects = sorted((t for t in broken if t.id in self.started), key=lambda t: t.id)
        others = [t for t in broken if t.id not in self.started]
        self.started.clear()
        if suspects or self.completed > self.completed_at_break:
            self.idle_breaks = 0
        else:  # no file was being parsed, none finished since the last break
            self.idle_breaks += 1
            if self.idle_breaks >= IDLE_BREAKS:
                raise WorkersDiedError(
                    "parse workers died: the worker processes exit before they parse anything",
                    hint=_HINT,
                )
        return finished, suspects, others

    def _restart(self, others: list[Task]) -> None:
        """A new pool after a break, for the tasks the dead worker was not running."""
        self.completed_at_break = self.completed
        self.pool = self._new_pool(self.workers)
        for task in others:
            self.submit(task)

    def _alone(self, task: Task) -> Done:
        """Run one task in a worker of its own: if that dies too, the task killed it."""
        with interrupts_held():
            pool = self._new_pool(1)
            try:
                future = self._start(pool, task)
            except OSError as exc:  # its worker died at once (see submit)
                future = cf.Future()
                future.set_exception(BrokenProcessPool(str(exc)))
        try:
            running = True
            while running:
                with interrupts_held():
                    cf.wait([future], timeout=POLL)
                    self._drain()
                    running = not future.done()
        except BaseException:
            with interrupts_held():
                _terminate(pool)
                _shutdown(pool)
            raise
        with interrupts_held():
            _shutdown(pool)
            self._drain()
            self.started.discard(task.id)
            error = future.exception()
        if isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt
        if error is None:
            self.completed += 1
            return Done(task, future.result(), self.reported.pop(task.id, 0))
        self.progress.records(-self.reported.pop(task.id, 0))
        stats = died(task.candidate, error)
        if isinstance(error, BrokenProcessPool):
            self.deaths += 1
            what = "slice" if task.index >= 0 else "file"
            stats.warnings[0] = ParseWarning(
                task.candidate.display,
                "worker-died",
                f"the worker process parsing this {what} died (killed, out of memory, or a "
                "crash), again when it was parsed alone: not parsed",
            )
        else:
            self.completed += 1
        return Done(task, stats)

    def close(self, abort: bool = False) -> None:
        """Stop the workers: at the end, or (``abort``) on Ctrl-C, TERM or an error: the
        queued files are dropped and the running ones stopped, not parsed to the end.
        A second Ctrl-C meanwhile waits for the workers to be gone."""
        with interrupts_held():
            if self.pool is not None:
                if abort:
                    _terminate(self.pool)
                _shutdown(self.pool)
                self.pool = None
            if self._env is not None:
                self._env.__exit__(None, None, None)
                self._env = None


def _done(task: Task, members: list[FileStats], reported: int) -> Done:
    """A finished group: its files' stats."""
    return Done(task, members[0], reported, tuple(members))


def _shutdown(pool: cf.ProcessPoolExecutor) -> None:
    """Shut a pool down, dropping the tasks not started. Python 3.11's pool may close its
    wake-up pipe under ``shutdown`` as it breaks: then the second call finds it closed
    and only waits for the pool's thread."""
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except OSError:
        with contextlib.suppress(OSError):
            pool.shutdown(wait=True, cancel_futures=True)


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (Python 3.14 has ``terminate_workers``; before it, the
    processes are the executor's ``_processes``)."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.terminate()


_HINT: Final = (
    "run again with --workers 1 (parses in this process, no worker) or with --debug, "
    "and report the problem"
)
