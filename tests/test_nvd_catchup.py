"""An NVD catch-up after days down is read in bounded parts, each kept before the next is read."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedrelay.config import parse_config
from feedrelay.ingest.fetch import Fetcher
from feedrelay.runtime import relay as relay_module
from feedrelay.runtime.relay import Relay
from feedrelay.sources import nvd
from feedrelay.sources.nvd import NVDSource
from tests.nvd_server import FakeNVD, synthetic
from tests.servers import FeedServer

DAYS = 10
PER_DAY = 3


def records(now: datetime) -> list[dict[str, object]]:
    """PER_DAY CVEs last modified on each of the last DAYS days, oldest first."""
    out = []
    for day in range(DAYS, 0, -1):
        for k in range(PER_DAY):
            r = synthetic(f"CVE-2026-{day:02d}{k:02d}")
            modified = now - timedelta(days=day) + timedelta(hours=4 * k)
            r["cve"]["lastModified"] = modified.strftime("%Y-%m-%dT%H:%M:%S.000")  # type: ignore[index]
            out.append(r)
    return out


def config(url: str) -> str:
    return f"""
[channels.security]
console = true
min_interval = "0s"

[[feeds]]
name = "NVD"
type = "nvd"
url = "{url}"
channels = ["security"]
"""


def days_behind(relay: Relay, url: str, now: datetime) -> None:
    """The NVD feed was last read DAYS + 1 days ago: its next poll is a catch-up."""
    with relay.store.transaction():
        relay.store.ensure_feed("NVD", url, "nvd")
        relay.store.record_success("NVD", {"watermark": (now - timedelta(days=DAYS + 1)).isoformat()},
                                   warning=None, listed=None, now=now.timestamp())


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvd, "MAX_POLL_ITEMS", 10)
    monkeypatch.setattr(nvd, "MIN_SPLIT", timedelta(hours=1))


def test_each_poll_reads_a_bounded_part_and_the_parts_cover_every_cve(small_parts: None,
                                                                       feed_server: FeedServer) -> None:
    now = datetime.now(UTC)
    fake = FakeNVD(feed_server, records(now), by_date=True)
    feed = parse_config(config(fake.url)).feeds[0]

    async def catch_up() -> list[list[str]]:
        fetcher = Fetcher()
        source = NVDSource(feed, fetcher, environ={})
        source.limiter = nvd.RateLimiter(1000, 1.0)  # the loopback server has no rate limit to respect
        state = {"watermark": (now - timedelta(days=DAYS + 1)).isoformat()}
        parts = []
        try:
            for _ in range(20):
                result = await source.poll(state)
                parts.append([i.key for i in result.items])
                state = result.state
                if not result.more:
                    break
        finally:
            await fetcher.aclose()
        return parts

    parts = asyncio.run(catch_up())
    assert len(parts) >= 3 and all(len(p) <= 10 for p in parts)  # 30 CVEs, never more than 10 in memory
    seen = [k for p in parts for k in p]
    assert set(seen) == {r["cve"]["id"] for r in fake.records}  # type: ignore[index]
    # Parts overlap by NVD's 3-hour margin at most: nothing is read many times over.
    assert len(seen) <= 30 + 2 * len(parts)


def test_a_relay_polls_a_catch_up_to_the_end_and_queues_each_cve_once(small_parts: None, feed_server: FeedServer,
                                                                      tmp_path: Path) -> None:
    now = datetime.now(UTC)
    fake = FakeNVD(feed_server, records(now), by_date=True)
    cfg = parse_config(config(fake.url), tmp_path / "feeds.toml")
    out = io.StringIO()
    parts: list[int] = []

    async def run() -> None:
        async with Relay(cfg, str(tmp_path / "feedrelay.db"), environ={}, stream=out) as relay:
            days_behind(relay, fake.url, now)
            real = relay._poll_part

            async def counted(feed: object) -> object:
                report = await real(feed)  # type: ignore[arg-type]
                parts.append(report.new)
                return report

            relay._poll_part = counted  # type: ignore[method-assign]
            relay.source(cfg.feeds[0]).limiter = nvd.RateLimiter(1000, 1.0)  # type: ignore[attr-defined]
            report = await relay.poll(cfg.feeds[0])
            assert report.error is None and not report.more
            assert report.new == 30 and report.queued == 30
            await relay.drain(10)
            assert relay.outbox.channel_stats()["security"]  # type: ignore[truthy-bool]

    asyncio.run(run())
    assert len(parts) >= 3 and max(parts) <= 10  # read and kept in parts, all in the one poll
    printed = out.getvalue()
    assert all(printed.count(r["cve"]["id"]) >= 1 for r in records(now))  # type: ignore[index]


def test_a_catch_up_longer_than_max_parts_continues_at_the_next_poll(small_parts: None, feed_server: FeedServer,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "MAX_PARTS", 2)
    now = datetime.now(UTC)
    fake = FakeNVD(feed_server, records(now), by_date=True)
    cfg = parse_config(config(fake.url), tmp_path / "feeds.toml")

    async def run() -> tuple[int, bool, int]:
        async with Relay(cfg, str(tmp_path / "feedrelay.db"), environ={}, stream=io.StringIO()) as relay:
            days_behind(relay, fake.url, now)
            relay.source(cfg.feeds[0]).limiter = nvd.RateLimiter(1000, 1.0)  # type: ignore[attr-defined]
            first = await relay.poll(cfg.feeds[0])
            second = await relay.poll(cfg.feeds[0])
            while second.more:
                second = await relay.poll(cfg.feeds[0])
            return first.new, first.more, relay.store.count_items()["NVD"]

    new, more, remembered = asyncio.run(run())
    assert more and new <= 20  # two parts, then the poll ends; the feed's state says where to go on
    assert remembered == 30


def test_a_route_changed_during_a_catch_up_applies_to_its_next_part(small_parts: None, feed_server: FeedServer,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part is a poll of its own: a live edit moving the feed to another channel (and removing the old
    one) applies from the next part, as "route changes apply from the next poll" says. The rest of a catch-up
    went on with the old routes, queuing for a channel no longer configured, where the messages wait forever."""
    real_limiter = nvd.RateLimiter
    monkeypatch.setattr(nvd, "RateLimiter", lambda *_: real_limiter(1000, 1.0))  # no limit on the loopback server
    now = datetime.now(UTC)
    fake = FakeNVD(feed_server, records(now), by_date=True)
    cfg = parse_config(config(fake.url), tmp_path / "feeds.toml")
    moved = parse_config(config(fake.url).replace("security", "triage"), tmp_path / "feeds.toml")

    async def run() -> dict[str, int]:
        async with Relay(cfg, str(tmp_path / "feedrelay.db"), environ={}, stream=io.StringIO()) as relay:
            days_behind(relay, fake.url, now)
            real = relay._poll_part

            async def part_then_edit(feed: object) -> object:
                report = await real(feed)  # type: ignore[arg-type]
                if relay.config is cfg:
                    await relay.reload(moved)  # a live edit while the catch-up runs
                return report

            relay._poll_part = part_then_edit  # type: ignore[method-assign]
            report = await relay.poll_named("NVD")
            assert report is not None and report.new == 30
            return {c: s["pending"] for c, s in relay.outbox.channel_stats().items()}

    queued = asyncio.run(run())
    assert queued["security"] <= 10 and queued["triage"] == 30 - queued["security"], queued


def test_a_burst_of_recent_changes_bigger_than_a_part_is_read_to_the_end(small_parts: None,
                                                                         feed_server: FeedServer) -> None:
    """NVD modified more CVEs in the last 3 hours than one part holds (a bulk re-analysis). The part's watermark
    was its resume point plus the 3-hour overlap, in the future: the next poll, capped at now, started 3 hours
    back, read the same part again, and stopped at the same place, every poll, until the clock caught up."""
    now = datetime.now(UTC)
    burst = []
    for k in range(15):
        r = synthetic(f"CVE-2026-9{k:03d}")
        r["cve"]["lastModified"] = (now - timedelta(minutes=120 - 8 * k)).strftime("%Y-%m-%dT%H:%M:%S.000")  # type: ignore[index]
        burst.append(r)
    fake = FakeNVD(feed_server, burst, by_date=True)
    feed = parse_config(config(fake.url)).feeds[0]

    async def catch_up() -> tuple[set[str], int]:
        fetcher = Fetcher()
        source = NVDSource(feed, fetcher, environ={})
        source.limiter = nvd.RateLimiter(1000, 1.0)
        state: dict[str, object] = {"watermark": (now - timedelta(days=1)).isoformat()}
        seen: set[str] = set()
        polls = 0
        try:
            while polls < 10:
                polls += 1
                result = await source.poll(state)
                seen |= {i.key for i in result.items}
                state = result.state
                if not result.more:
                    break
        finally:
            await fetcher.aclose()
        return seen, polls

    seen, polls = asyncio.run(catch_up())
    assert seen == {r["cve"]["id"] for r in burst} and polls <= 3, (sorted(seen), polls)  # type: ignore[index]
