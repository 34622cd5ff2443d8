"""`preview` and a real poll decide on one path: what preview says it posts is what the next poll posts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import feedrelay
from tests.cli import TOKEN, Relay, write_config
from tests.feedgen import rss
from tests.servers import FakeSlack, FeedServer


def entry(guid: str, title: str, n: int) -> dict[str, Any]:
    return {"guid": guid, "title": title, "link": f"https://example.com/posts/{n}",
            "published": f"2026-11-{n + 1:02d}T10:00:00Z"}


def test_preview_says_post_for_exactly_what_the_next_poll_posts(tmp_path: Path, feed_server: FeedServer,
                                                                 fake_slack: FakeSlack) -> None:
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": fake_slack.api_url}
    path = write_config(
        tmp_path / "feeds.toml",
        channels={"readings": {"slack": "#readings", "min_interval": "0s"},
                  "ops": {"slack": "#ops", "min_interval": "0s"}},
        feeds=[{"name": "A", "url": feed_server.url("/a.xml"), "backlog": 1, "routes": [
                    {"channel": "readings", "exclude": ["webinar"]}, {"channel": "ops", "include": ["outage"]}]},
               {"name": "B", "url": feed_server.url("/b.xml"), "channels": ["readings"]}])
    config = feedrelay.load_config(path, environ=env)
    db = str(tmp_path / "feedrelay.db")

    def compare() -> feedrelay.Preview:
        """Preview A (read-only, as `feedrelay preview` does beside a daemon), then poll: the same posts."""
        async def main() -> tuple[feedrelay.Preview, list[str]]:
            async with feedrelay.Relay(config, db, environ=env) as relay:
                before = len(fake_slack.posts)
                # A second Relay, not started: it takes no lock and writes nothing.
                shown = await feedrelay.Relay(config, db, environ=env).preview("A", limit=50)
                await relay.poll_all()
                await relay.drain(10)
                return shown, [f"{p.channel}:{title(p)}" for p in fake_slack.posts[before:]]

        shown, posted = asyncio.run(main())
        said = sorted(f"#{v.channel}:{e.item.title}" for e in shown.entries for v in e.verdicts if v.action == "post")
        assert said == sorted(posted), (said, posted)
        assert {v.action for e in shown.entries for v in e.verdicts} <= {"post", "skip", "seen"}
        return shown

    # 1. A's first poll posts only its newest entry (backlog = 1), where the filters let it.
    feed_server.set("/a.xml", rss([entry("a3", "Outage report", 3), entry("a2", "Our webinar", 2),
                                   entry("a1", "Hello", 1)]))
    feed_server.set("/b.xml", rss([]))
    first = compare()
    assert first.first_poll
    assert verdicts(first, "Outage report") == {"readings": "post", "ops": "post"}
    assert verdicts(first, "Hello") == {"readings": "skip", "ops": "skip"}
    assert len(fake_slack.posts) == 2

    # 2. The publisher re-issues every id (GUID churn) and adds one entry; B carries an article A already sent.
    feed_server.set("/a.xml", rss([entry("a4-new", "Second outage", 4), entry("A3", "Outage report", 3),
                                   entry("A2", "Our webinar", 2), entry("A1", "Hello", 1)]))
    feed_server.set("/b.xml", rss([{**entry("b1", "Outage report", 3)}]))
    churn = compare()
    assert not churn.first_poll
    assert verdicts(churn, "Second outage") == {"readings": "post", "ops": "post"}
    assert verdicts(churn, "Outage report") == {"readings": "seen", "ops": "seen"}  # a re-issued id
    assert verdicts(churn, "Our webinar") == {"readings": "skip", "ops": "skip"}  # its filters
    assert len(fake_slack.posts) == 4

    # 3. Nothing new: everything is seen, nothing posted.
    again = compare()
    assert {v.action for e in again.entries for v in e.verdicts} <= {"seen", "skip"}
    assert len(fake_slack.posts) == 4

    # B's first poll is silent: its article is remembered, not sent to #readings a second time.
    shown_b = asyncio.run(feedrelay.Relay(config, db, environ=env).preview("B"))
    assert [v.action for e in shown_b.entries for v in e.verdicts] == ["seen"]


def title(post: Any) -> str:
    """The linked title as Slack shows it: *<link|title>* in the first block."""
    return post.blocks[0]["text"]["text"].split("|", 1)[1].split(">", 1)[0]


def verdicts(shown: feedrelay.Preview, title: str) -> dict[str, str]:
    [found] = [e for e in shown.entries if e.item.title == title]
    return {v.channel: v.action for v in found.verdicts}


def test_cross_posted_article_is_a_skip_in_preview_as_the_outbox_skips_it(tmp_path: Path, feed_server: FeedServer,
                                                                          fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url)
    feed_server.set("/a.xml", rss([]))
    feed_server.set("/b.xml", rss([]))
    relay.configure(feeds=[{"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"]},
                           {"name": "B", "url": feed_server.url("/b.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    feed_server.set("/a.xml", rss([entry("a1", "Same story", 1)]))
    assert relay("once").code == 0 and len(fake_slack.posts) == 1
    feed_server.set("/b.xml", rss([entry("b1", "Same story", 1)]))
    shown = relay("preview", "B")
    assert shown.code == 0, shown.output
    assert "skip → readings: the same article went to readings from another feed within dedupe_window (30d)" \
        in shown.out
    assert relay("once").code == 0 and len(fake_slack.posts) == 1


def test_preview_reads_a_feeds_row_as_the_relays_start_will_leave_it(tmp_path: Path) -> None:
    # preview may not write, so it applies Store.sync_feeds' rule itself (as_synced): the two must agree for each
    # edit a daemon has not seen yet (a new URL, a new type, a feed added back), or preview misjudges first polls.
    from dataclasses import replace

    from feedrelay.runtime.pipeline import as_synced
    from feedrelay.store import Store

    store = Store(tmp_path / "s.db")
    base = feedrelay.Feed(name="F", url="https://a.example/feed", kind="rss", interval=900, backlog=0,
                          routes=(feedrelay.Route("x"),))
    edits = {"unchanged": base, "moved": replace(base, url="https://b.example/feed"),
             "retyped": replace(base, kind="kev")}
    for label, edited in edits.items():
        for removed in (False, True):
            store.sync_feeds([("F", base.url, base.kind)])
            store.record_success("F", {"etag": "x"}, warning=None, listed=3, listing_gen=1)
            if removed:
                store.sync_feeds([])  # the feed was taken out of the config, and now comes back
            before = store.feed("F")
            store.sync_feeds([(edited.name, edited.url, edited.kind)])
            assert as_synced(before, edited) == store.feed("F"), (label, removed)
    new = replace(base, name="G")
    store.sync_feeds([("G", new.url, new.kind)])
    assert as_synced(None, new) == store.feed("G")  # a feed never seen before
    store.close()
