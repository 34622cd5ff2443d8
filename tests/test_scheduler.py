"""The poll dispatcher on its own: limits, turns between origins, one poll per feed, live edits, shutdown.

Its polls here are coroutines that wait until the test lets them finish, so each test sees exactly what is in
flight; the dispatcher with real polls is tested in test_polling.py (a slow and a fast loopback host)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from feedrelay.config import Feed
from feedrelay.runtime.pipeline import FeedReport
from feedrelay.runtime.scheduler import Dispatcher


def feed(name: str, host: str = "a.example") -> Feed:
    return Feed(name=name, url=f"https://{host}/{name}.xml", kind="rss", interval=900, backlog=0, routes=())


class Polls:
    """A poll function that records what started and finishes a poll when told."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.urls: list[str] = []
        self._gates: dict[str, asyncio.Event] = {}

    async def __call__(self, f: Feed) -> FeedReport:
        self.started.append(f.name)
        self.urls.append(f.url)
        gate = self._gates.setdefault(f.name, asyncio.Event())
        await gate.wait()
        del self._gates[f.name]
        return FeedReport(f.name)

    def finish(self, name: str) -> None:
        self._gates.setdefault(name, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_slow_host_holds_only_its_per_host_slots() -> None:
    async def go() -> list[str]:
        polls = Polls()
        d = Dispatcher(polls, limit=3, per_host=2)
        slow = [d.submit(feed(f"s{i}", "slow.example")) for i in range(6)]
        fast = [d.submit(feed(f"f{i}", "fast.example")) for i in range(6)]
        await settle()
        assert polls.started == ["s0", "s1", "f0"]  # the slow host at its per_host of 2, the third slot for others
        for i in range(6):  # the fast host's polls finish one by one; the slow host's hang
            polls.finish(f"f{i}")
            await settle()
        assert all(f.done() for f in fast) and not any(f.done() for f in slow)
        assert d.running == 2 and d.queued == 4
        for i in range(6):
            polls.finish(f"s{i}")
        await asyncio.gather(*slow)
        return polls.started

    assert asyncio.run(go()) == ["s0", "s1", "f0", "f1", "f2", "f3", "f4", "f5", "s2", "s3", "s4", "s5"]


def test_origins_with_queued_feeds_take_turns() -> None:
    async def go() -> list[str]:
        polls = Polls()
        d = Dispatcher(polls, limit=1, per_host=1)
        futures = [d.submit(feed(name, host)) for name, host in
                   [("a0", "a.example"), ("a1", "a.example"), ("a2", "a.example"), ("b0", "b.example"),
                    ("b1", "b.example"), ("c0", "c.example")]]
        for _ in futures:
            await settle()
            polls.finish(polls.started[-1])
        await asyncio.gather(*futures)
        return polls.started

    assert asyncio.run(go()) == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_a_feed_queued_or_in_flight_is_not_queued_twice() -> None:
    async def go() -> None:
        polls = Polls()
        d = Dispatcher(polls, limit=1, per_host=1)
        a, b = d.submit(feed("a")), d.submit(feed("b"))
        await settle()
        assert d.submit(feed("a")) is a  # in flight
        assert d.submit(feed("b")) is b  # queued
        polls.finish("a")
        polls.finish("b")
        await asyncio.gather(a, b)
        assert polls.started == ["a", "b"]
        again = d.submit(feed("a"))  # done: a new poll
        assert again is not a
        polls.finish("a")
        await again
        assert polls.started == ["a", "b", "a"]

    asyncio.run(go())


def test_a_live_edit_drops_removed_feeds_and_moves_a_queued_one_to_its_new_host() -> None:
    async def go() -> None:
        polls = Polls()
        d = Dispatcher(polls, limit=4, per_host=1)
        first = d.submit(feed("busy", "old.example"))
        gone, moved = d.submit(feed("gone", "old.example")), d.submit(feed("moved", "old.example"))
        await settle()
        d.discard("gone")
        d.update(replace(feed("moved"), url="https://new.example/moved.xml"))
        await settle()
        assert gone.cancelled() and not d.pending("gone")
        assert polls.started == ["busy", "moved"]  # at once, on its new host, while the old host is still busy
        assert polls.urls[1] == "https://new.example/moved.xml"
        polls.finish("busy")
        polls.finish("moved")
        await asyncio.gather(first, moved)
        assert d.running == 0 and d.queued == 0

    asyncio.run(go())


def test_a_waiter_that_gives_up_takes_its_poll_out_of_the_queue() -> None:
    async def go() -> None:
        polls = Polls()
        d = Dispatcher(polls, limit=1, per_host=1)
        a, b = d.submit(feed("a")), d.submit(feed("b"))
        b.cancel()
        polls.finish("a")
        await a
        await settle()
        assert polls.started == ["a"] and d.queued == 0 and not d.pending("b")

    asyncio.run(go())


def test_stop_drops_the_queue_and_cancels_polls_in_flight_after_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def go() -> None:
        polls = Polls()
        d = Dispatcher(polls, limit=2, per_host=2)
        quick, hang, queued = d.submit(feed("quick")), d.submit(feed("hang")), d.submit(feed("queued"))
        await settle()
        asyncio.get_running_loop().call_later(0.05, polls.finish, "quick")  # finishes within the grace
        await d.stop(grace=0.3)
        assert (await quick).feed == "quick"
        assert hang.cancelled() and queued.cancelled()
        assert polls.started == ["quick", "hang"]
        assert d.submit(feed("late")).cancelled()  # nothing starts after the stop

    asyncio.run(go())
    messages = [r.getMessage() for r in caplog.records]
    assert "feed 'hang': poll interrupted by shutdown; it is repeated at the next start" in messages
    assert "1 queued poll(s) dropped; they run after the next start" in messages
    assert not any("quick" in m for m in messages)


def test_a_poll_that_raises_fails_its_future_and_frees_its_slot() -> None:
    async def go() -> None:
        calls: list[str] = []

        async def poll(f: Feed) -> FeedReport:
            calls.append(f.name)
            if f.name == "bad":
                raise RuntimeError("database disk image is malformed")
            return FeedReport(f.name)

        d = Dispatcher(poll, limit=1, per_host=1)
        bad, good = d.submit(feed("bad")), d.submit(feed("good"))
        with pytest.raises(RuntimeError):
            await bad
        assert (await good).feed == "good"
        assert calls == ["bad", "good"] and d.running == 0

    asyncio.run(go())
