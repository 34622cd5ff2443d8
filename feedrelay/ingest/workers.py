"""Feed parsing in worker processes: feedparser holds the GIL, so threads cannot parallelise it.

The pool starts lazily (a relay that never parses pays nothing) with the forkserver method, so
workers never inherit the event loop, sockets or SQLite connection of the relay process. The fork
server imports :mod:`feedrelay.ingest.parsing` (feedparser, and none of httpx, SQLite or Slack) once, and
every worker is forked from it, so the workers share those pages instead of each importing its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

# A worker's heap grows with what it has parsed and never shrinks. After this many parses the pool is
# retired (its workers finish what they hold, then exit) and fresh workers are forked from the preloaded
# fork server. (ProcessPoolExecutor's own max_tasks_per_child deadlocks on Python 3.11.)
RETIRE_AFTER = 1000


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """multiprocessing makes each new worker re-import the parent's ``__main__``. For the daemon that is
    the ``feedrelay`` console script, which imports the whole CLI (httpx, slack-sdk, APScheduler):
    +17 MB in every worker, for code a parser never runs. Workers only need :mod:`feedrelay.ingest.parsing`."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class ParsePool:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, min(os.cpu_count() or 1, 4))
        self._pool: ProcessPoolExecutor | None = None
        self._tasks = 0
        self._retiring: asyncio.Future[None] | None = None
        self._starting: asyncio.Future[Future[Any]] | None = None  # a new pool's first submit, in a thread

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["feedrelay.ingest.parsing"])
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    @staticmethod
    def _submit(pool: ProcessPoolExecutor, fn: Callable[..., T], *args: Any) -> Future[T]:
        # Workers are forked on demand inside submit(), on this thread.
        with _main_module_hidden():
            return pool.submit(fn, *args)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        if self._retiring is not None:
            # New workers start only once the retired ones have exited, so the two sets never add up in memory.
            await asyncio.shield(self._retiring)
            self._retiring = None
        while self._starting is not None:
            await asyncio.shield(self._starting)
        pool = self._executor()
        try:
            self._tasks += 1
            if self._tasks == 1:
                # A new pool's first submit forks its first worker, and the very first one starts the fork server
                # and waits while it imports feedparser: 0.5 s, and seconds on a busy machine, that blocked the
                # event loop (every poll and post of the daemon) at its first parse. Off the loop instead.
                self._starting = asyncio.ensure_future(asyncio.to_thread(self._submit, pool, fn, *args))
                try:
                    submitted = await asyncio.shield(self._starting)
                finally:
                    self._starting = None
            else:
                submitted = self._submit(pool, fn, *args)
            future = asyncio.wrap_future(submitted)
            if self._tasks >= RETIRE_AFTER:
                self._pool, self._tasks = None, 0
                # submitted work still completes; shutdown(wait=True) returns when the workers have exited
                self._retiring = asyncio.ensure_future(asyncio.to_thread(pool.shutdown, wait=True))
            return await future
        except BrokenProcessPool:
            # A worker died (e.g. killed by the OS for memory on a hostile feed): start afresh and
            # let this feed fail; the others carry on.
            if self._pool is pool:
                self.close()
            raise RuntimeError("the parser process died while parsing this feed") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
