"""The one dispatcher every poll goes through, for `once` and `run` alike.

Feeds are submitted when they are due (`once` submits them all; the daemon's timers submit each at its
interval). A poll starts only when the global limit and the feed's origin (scheme, host, port, as
`feedrelay.ingest.fetch.origin` defines it) both have room, taking origins in turn, so a slow host's feeds
wait in the queue, holding nothing, while other hosts' feeds go ahead. A feed is never queued twice: one
submitted while it is queued or in flight shares that poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from feedrelay.config import Feed
from feedrelay.ingest.fetch import origin
from feedrelay.runtime.pipeline import FeedReport

log = logging.getLogger(__name__)

Origin = tuple[str, str, int | None]


@dataclass(eq=False)
class _Entry:
    feed: Feed
    origin: Origin
    future: asyncio.Future[FeedReport]
    task: asyncio.Task[None] | None = None  # None while queued


class Dispatcher:
    """Runs ``poll(feed)`` for submitted feeds: at most ``limit`` at once, at most ``per_host`` per origin."""

    def __init__(self, poll: Callable[[Feed], Awaitable[FeedReport]], *, limit: int, per_host: int) -> None:
        self._poll = poll
        self.limit = max(1, limit)
        self.per_host = max(1, per_host)
        self._entries: dict[str, _Entry] = {}  # queued or in flight, by feed name
        self._queues: dict[Origin, deque[_Entry]] = {}  # queued feeds per origin, in submission order
        self._ready: deque[Origin] = deque()  # origins with queued feeds and a free slot, in turn
        self._busy: Counter[Origin] = Counter()  # polls in flight per origin
        self._running = 0
        self._closed = False

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @property
    def running(self) -> int:
        return self._running

    def pending(self, name: str) -> bool:
        """Whether a poll of that feed is queued or in flight."""
        return name in self._entries

    def submit(self, feed: Feed) -> asyncio.Future[FeedReport]:
        """Queue a poll of ``feed``; the future gets its report. A feed already queued or in flight is not
        queued again: its poll's future is returned. After :meth:`stop`, the future is already cancelled."""
        entry = self._entries.get(feed.name)
        if entry is not None and entry.future.cancelled():
            self._abandoned(entry)  # (a waiter gave up on it a moment ago: a new submission is a new poll)
        elif entry is not None:
            return entry.future
        future: asyncio.Future[FeedReport] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.cancel()
            return future
        entry = _Entry(feed, origin(feed.url), future)
        self._entries[feed.name] = entry
        self._enqueue(entry)
        future.add_done_callback(lambda f: self._abandoned(entry) if f.cancelled() else None)
        self._pump()
        return future

    def update(self, feed: Feed) -> None:
        """A queued feed's definition changed (a live edit): poll the new one, from its new origin's queue."""
        entry = self._entries.get(feed.name)
        if entry is None or entry.task is not None or entry.feed == feed:
            return
        self._unqueue(entry)
        entry.feed, entry.origin = feed, origin(feed.url)
        self._enqueue(entry)
        self._pump()

    def discard(self, name: str) -> None:
        """A feed removed from the config leaves the queue; a poll in flight finishes (and keeps nothing)."""
        entry = self._entries.get(name)
        if entry is not None and entry.task is None:
            entry.future.cancel()
            self._abandoned(entry)

    async def stop(self, grace: float) -> None:
        """Drop what is queued, give the polls in flight ``grace`` seconds, then cancel them. A poll cut short
        keeps nothing (its transaction never started or was not committed) and is repeated at the next start."""
        self._closed = True
        queued = [e for e in self._entries.values() if e.task is None]
        for entry in queued:
            entry.future.cancel()
            self._abandoned(entry)
        if queued:
            log.info("%d queued poll(s) dropped; they run after the next start", len(queued))
        tasks = {e.task for e in self._entries.values() if e.task is not None}
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        late = [e for e in self._entries.values() if e.task is not None and not e.task.done()]
        for entry in late:
            log.info("feed %r: poll interrupted by shutdown; it is repeated at the next start", entry.feed.name)
            assert entry.task is not None
            entry.task.cancel()  # a server that hangs must not hold up `docker stop` (10 s before SIGKILL)
        if late:
            await asyncio.wait({e.task for e in late if e.task is not None}, timeout=2)

    # --- internals ----------------------------------------------------------------------------

    def _enqueue(self, entry: _Entry) -> None:
        queue = self._queues.get(entry.origin)
        if queue is None:
            queue = self._queues[entry.origin] = deque()
        queue.append(entry)
        if len(queue) == 1 and self._busy[entry.origin] < self.per_host:
            self._ready.append(entry.origin)

    def _unqueue(self, entry: _Entry) -> None:
        queue = self._queues[entry.origin]
        queue.remove(entry)  # (only on a live edit or a removal: the queue of one origin)
        if not queue:
            del self._queues[entry.origin]  # a stale place in _ready is skipped by _pump

    def _abandoned(self, entry: _Entry) -> None:
        """Its future was cancelled: by :meth:`discard`, :meth:`stop`, or a caller that gave up waiting."""
        if self._entries.get(entry.feed.name) is not entry:
            return
        if entry.task is None:
            del self._entries[entry.feed.name]
            self._unqueue(entry)
        else:
            entry.task.cancel()

    def _pump(self) -> None:
        while self._running < self.limit and self._ready:
            key = self._ready.popleft()
            queue = self._queues.get(key)
            if not queue or self._busy[key] >= self.per_host:
                continue  # emptied or refilled since it was put in line; _finished puts it back when due
            entry = queue.popleft()
            if not queue:
                del self._queues[key]
            if entry.future.done():  # (its waiter gave up; the callback that removes it has not run yet)
                del self._entries[entry.feed.name]
                if queue:
                    self._ready.appendleft(key)
                continue
            self._busy[key] += 1
            self._running += 1
            if queue and self._busy[key] < self.per_host:
                self._ready.append(key)  # its turn again after every other origin's
            entry.task = asyncio.create_task(self._run(entry), name=f"poll {entry.feed.name}")

    async def _run(self, entry: _Entry) -> None:
        """The poll's outcome goes to its future (the task itself ends quietly: nobody awaits it)."""
        try:
            report = await self._poll(entry.feed)
        except asyncio.CancelledError:
            self._finished(entry)
            entry.future.cancel()
            return
        except Exception as exc:  # only a damaged database: the future's owner decides what stops
            self._finished(entry)
            if not entry.future.done():
                entry.future.set_exception(exc)
            return
        except BaseException:
            self._finished(entry)
            entry.future.cancel()
            raise
        self._finished(entry)
        if not entry.future.done():
            entry.future.set_result(report)

    def _finished(self, entry: _Entry) -> None:
        if self._entries.get(entry.feed.name) is entry:  # (not a new submission made after this one was cancelled)
            del self._entries[entry.feed.name]
        key = entry.origin
        self._busy[key] -= 1
        if not self._busy[key]:
            del self._busy[key]
        self._running -= 1
        if self._queues.get(key) and self._busy[key] == self.per_host - 1:
            self._ready.append(key)  # it was full, and has a free slot again
        self._pump()
