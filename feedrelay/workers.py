"""Feed parsing in worker processes: feedparser holds the GIL, so threads cannot parallelise it.

The pool starts lazily (a relay that never parses pays nothing) with the forkserver method, so
workers never inherit the event loop, sockets or SQLite connection of the relay process. The fork
server imports :mod:`feedrelay.parsing` (feedparser, and none of httpx, SQLite or Slack) once, and
every worker is forked from it, so the workers share those pages instead of each importing its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


class ParsePool:
    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, min(os.cpu_count() or 1, 4))
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["feedrelay.parsing"])
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool:
            # A worker died (e.g. killed by the OS for memory on a hostile feed): start afresh and
            # let this feed fail; the others carry on.
            self.close()
            raise RuntimeError("the parser process died while parsing this feed") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
