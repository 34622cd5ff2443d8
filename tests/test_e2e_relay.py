"""End to end, as a user runs it: the CLI against a loopback feed server and a fake Slack."""

from __future__ import annotations

import itertools
import json
import re
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli import Relay, wait_until
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer, redirect_to


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


def titles(posts: list) -> list[str]:
    """The linked titles as Slack shows them, from the first block of each post."""
    out = []
    for p in posts:
        text = p.blocks[0]["text"]["text"]
        out.append(text.split("|", 1)[1].split(">", 1)[0] if "|" in text else text.strip("*"))
    return out


def test_new_items_are_posted_once_and_first_poll_posts_nothing(relay: Relay, feed_server: FeedServer,
                                                                fake_slack: FakeSlack) -> None:
    feed_server.set("/blog.xml", rss(make_items(3)))
    relay.configure(feeds=[{"name": "Blog", "url": feed_server.url("/blog.xml"), "channels": ["readings"]}])

    first = relay("once")
    assert first.code == 0, first.output
    assert fake_slack.posts == []  # subscribing floods no one

    feed_server.set("/blog.xml", rss(make_items(2, start=3) + make_items(3)))
    second = relay("once")
    assert second.code == 0, second.output
    assert titles(fake_slack.posts) == ["Post 3", "Post 4"]  # oldest first
    assert {p.channel for p in fake_slack.posts} == {"#readings"}

    third = relay("once")
    assert third.code == 0
    assert len(fake_slack.posts) == 2  # nothing twice
    # The third poll revalidated instead of downloading again.
    last = feed_server.requests[-1]
    assert last.headers.get("if-none-match")


def json_feed(items: list[tuple[str, str]]) -> bytes:
    """A JSON Feed 1.1 listing (id, title) pairs, newest first."""
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "JSON blog", "items": [
        {"id": ident, "url": f"/posts/{ident}", "title": title, "content_html": f"<p>About <b>{title}</b></p>",
         "date_published": f"2026-11-{10 + int(ident):02d}T09:00:00+01:00"} for ident, title in items]}).encode()


def test_json_feed_is_relayed_like_rss(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/feed.json", json_feed([("2", "Two"), ("1", "One")]), content_type="application/feed+json")
    relay.configure(feeds=[{"name": "J", "url": feed_server.url("/feed.json"), "channels": ["readings"]}])
    assert relay("once").code == 0
    assert fake_slack.posts == []  # first poll: remembered, not posted
    feed_server.set("/feed.json", json_feed([("3", "Three &amp; <!channel>"), ("2", "Two"), ("1", "One")]),
                    content_type="application/feed+json")
    result = relay("once")
    assert result.code == 0, result.output
    assert len(fake_slack.posts) == 1
    post = fake_slack.posts[0]
    heading, summary = post.blocks[0]["text"]["text"], post.blocks[1]["text"]["text"]
    assert heading == f"*<{feed_server.url('/posts/3')}|Three &amp; &lt;!channel&gt;>*"  # linked, pings no one
    assert summary == "About Three &amp;"  # in HTML, <!channel> is a comment: dropped
    assert "2026-11-13 08:00 UTC" in post.blocks[-1]["elements"][0]["text"]
    assert relay("once").code == 0 and len(fake_slack.posts) == 1


def test_a_feed_that_moved_permanently_is_relayed_and_status_says_where_to(relay: Relay, feed_server: FeedServer,
                                                                          fake_slack: FakeSlack) -> None:
    feed_server.set("/new.xml", rss(make_items(2)))
    feed_server.set_handler("/old.xml", redirect_to("/hop.xml", 301))
    feed_server.set_handler("/hop.xml", redirect_to("/new.xml?key=feed-secret", 308))
    feed_server.set_handler("/temp.xml", redirect_to("/new.xml", 302))
    relay.configure(feeds=[{"name": "Moved", "url": feed_server.url("/old.xml"), "channels": ["readings"],
                            "backlog": 1},
                           {"name": "Temporary", "url": feed_server.url("/temp.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    assert titles(fake_slack.posts) == ["Post 1"]
    for _ in range(2):  # and it stays said while the feed answers 304 or the same bytes
        feeds = {f["feed"]: f for f in json.loads(relay("status", "--json").out)["feeds"]}
        assert feeds["Moved"]["warning"] == (f"moved permanently to {feed_server.url('/new.xml')}?… (set url to it "
                                             "in the config)")  # the query may hold a token: not shown
        assert feeds["Temporary"]["warning"] is None  # 302: the old URL stays the right one
        assert relay("once").code == 0
    # The publisher takes the redirect down and serves the feed at the old URL again: the advice goes.
    feed_server.set("/old.xml", rss(make_items(2)))
    assert relay("once").code == 0
    feeds = {f["feed"]: f for f in json.loads(relay("status", "--json").out)["feeds"]}
    assert feeds["Moved"]["warning"] is None and len(fake_slack.posts) == 1


def test_backlog_posts_newest_n_in_order(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(5)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 2}])
    assert relay("once").code == 0
    assert titles(fake_slack.posts) == ["Post 3", "Post 4"]


def test_filters_route_items_per_channel(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss([]))
    relay.configure(
        channels={"readings": {"slack": "#readings"}, "security": {"slack": "C0SECURITY"}},
        feeds=[{
            "name": "Mixed", "url": feed_server.url("/f.xml"),
            "routes": [
                {"channel": "readings", "exclude": ["webinar"]},
                {"channel": "security", "include": ["postgresql", "zero day"], "exclude_regex": ["(?i)sponsored"]},
            ],
        }],
    )
    assert relay("once").code == 0
    feed_server.set("/f.xml", rss([
        {"guid": "1", "title": "PostgreSQL 18 patch release", "link": "http://example.com/1"},
        {"guid": "2", "title": "Join our webinar on PostgreSQL", "link": "http://example.com/2"},
        {"guid": "3", "title": "A zero  day in widgets (sponsored)", "link": "http://example.com/3"},
        {"guid": "4", "title": "Why we like Go", "link": "http://example.com/4", "description": "postgresqlish"},
    ]))
    assert relay("once").code == 0
    assert sorted(titles(fake_slack.messages("#readings"))) == [
        "A zero day in widgets (sponsored)", "PostgreSQL 18 patch release", "Why we like Go"]
    # Oldest first (the feed lists newest first and has no dates); "zero day" is excluded as sponsored.
    assert titles(fake_slack.messages("C0SECURITY")) == [
        "Join our webinar on PostgreSQL", "PostgreSQL 18 patch release"]


def test_guid_churn_and_cross_posting_do_not_repeat(relay: Relay, feed_server: FeedServer,
                                                     fake_slack: FakeSlack) -> None:
    feed_server.set("/a.xml", rss([]))
    feed_server.set("/b.xml", rss([]))
    relay.configure(feeds=[
        {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"]},
        {"name": "B", "url": feed_server.url("/b.xml"), "channels": ["readings"]},
    ])
    assert relay("once").code == 0
    article = {"title": "Same story", "link": "http://example.com/story?utm_source=rss"}
    feed_server.set("/a.xml", rss([{**article, "guid": "a-1"}]))
    feed_server.set("/b.xml", rss([{**article, "guid": "b-1", "link": "http://EXAMPLE.com:80/story#top"}]))
    assert relay("once").code == 0
    assert titles(fake_slack.posts) == ["Same story"]
    # The publisher re-issues every GUID: no flood.
    feed_server.set("/a.xml", rss([{**article, "guid": "a-1-republished"}]))
    assert relay("once").code == 0
    assert len(fake_slack.posts) == 1


def test_a_medium_story_from_its_publications_feed_and_its_authors_feed_is_posted_once(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    # Medium tags each feed's links with its own ?source=rss… (a publication's, an author's, a tag's).
    feed_server.set("/pub.xml", rss([]))
    feed_server.set("/author.xml", rss([]))
    relay.configure(feeds=[
        {"name": "Publication", "url": feed_server.url("/pub.xml"), "channels": ["readings"]},
        {"name": "Author", "url": feed_server.url("/author.xml"), "channels": ["readings"]},
    ])
    assert relay("once").code == 0
    story = {"title": "Why we moved our queues to Postgres", "guid": "https://medium.com/p/d23f917c2f40"}
    link = "https://medium.com/example-tech/why-we-moved-our-queues-to-postgres-d23f917c2f40"
    feed_server.set("/pub.xml", rss([{**story, "link": link + "?source=rss----2615bd06b42e---4"}]))
    feed_server.set("/author.xml", rss([{**story, "link": link + "?source=rss-c3aeaf49d8a1------2"}]))
    assert relay("once").code == 0
    (post,) = fake_slack.posts
    assert post.blocks[0]["text"]["text"] == f"*<{link}|Why we moved our queues to Postgres>*"  # no tracking


def test_ids_reissued_after_a_silent_first_poll_post_nothing(relay: Relay, feed_server: FeedServer,
                                                               fake_slack: FakeSlack) -> None:
    entries = [{"title": f"Post {i}", "link": f"https://example.com/p/{i}"} for i in range(5)]
    feed_server.set("/f.xml", rss([{**e, "guid": f"id-{i}"} for i, e in enumerate(entries)]))
    relay.configure(feeds=[{"name": "Churn", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0  # first poll: remembered, nothing posted
    # The site moves to new ids (http → https guids, a CMS migration): same entries, nothing new.
    feed_server.set("/f.xml", rss([{**e, "guid": f"new-id-{i}"} for i, e in enumerate(entries)]))
    result = relay("once")
    assert result.code == 0 and fake_slack.posts == [], result.err
    assert "5 entry(ies) came back under a new id" in result.err
    # A podcast's episodes all link to the show's page: each is still its own entry.
    feed_server.set("/f.xml", rss([{"guid": "ep-2", "title": "Episode 2", "link": "https://example.com/p/0"},
                                   *[{**e, "guid": f"new-id-{i}"} for i, e in enumerate(entries)]]))
    assert relay("once").code == 0
    assert titles(fake_slack.posts) == ["Episode 2"]


def test_episodes_alike_are_each_posted_and_a_bumped_reissue_is_not(relay: Relay, feed_server: FeedServer,
                                                                      fake_slack: FakeSlack) -> None:
    def episode(n: int, guid: str = "") -> dict[str, object]:
        return {"guid": guid or f"ep-{n}", "title": "Mailbag", "link": "https://pod.example/",
                "pubDate": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(weeks=n)}

    feed_server.set("/pod.xml", rss([]))
    relay.configure(feeds=[{"name": "Pod", "url": feed_server.url("/pod.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    feed_server.set("/pod.xml", rss([episode(2), episode(1)]))  # two alike, new in one poll
    assert relay("once").code == 0 and len(fake_slack.posts) == 2
    feed_server.set("/pod.xml", rss([episode(3), episode(2)]))  # a listing of two: the oldest makes room
    assert relay("once").code == 0 and len(fake_slack.posts) == 3
    feed_server.set("/pod.xml", rss([episode(4), episode(3)]))
    assert relay("once").code == 0 and len(fake_slack.posts) == 4
    # Episode 2, edited and bumped back with a new id (and its old date): the same episode, not news.
    feed_server.set("/pod.xml", rss([episode(2, guid="ep-2-edited"), episode(4)]))
    result = relay("once")
    assert result.code == 0 and len(fake_slack.posts) == 4, result.err
    assert "1 entry(ies) came back under a new id" in result.err


def test_a_feed_added_back_after_its_items_were_pruned_starts_afresh_even_on_a_304(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(5)))
    feed = {"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"]}
    relay.configure(feeds=[feed, {**feed, "name": "G", "url": feed_server.url("/g.xml")}])
    feed_server.set("/g.xml", rss([]))
    assert relay("once").code == 0
    relay.configure(feeds=[{**feed, "name": "G", "url": feed_server.url("/g.xml")}])  # F removed...
    assert relay("once").code == 0
    with sqlite3.connect(relay.db) as db:  # ...long enough for its items to be pruned
        db.execute("DELETE FROM items WHERE feed = 'F'")
    relay.configure(feeds=[feed])  # F added back: its server answers the old validators with 304
    assert relay("once").code == 0
    feed_server.set("/f.xml", rss(make_items(6)))
    assert relay("once").code == 0
    assert titles(fake_slack.posts) == ["Post 5"]  # the one new entry, not the whole listing


def test_a_site_that_moves_to_https_and_new_ids_reposts_nothing(relay: Relay, feed_server: FeedServer,
                                                                 fake_slack: FakeSlack) -> None:
    def listing(scheme: str) -> bytes:
        return rss([{"guid": f"{scheme}://blog.example/p/{n}", "title": f"Post \u2019{n}\u2019" if scheme == "https"
                     else f"Post '{n}'", "link": f"{scheme}://blog.example/p/{n}"} for n in (2, 1)])

    feed_server.set("/blog.xml", listing("http"))
    relay.configure(feeds=[{"name": "Blog", "url": feed_server.url("/blog.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    feed_server.set("/blog.xml", listing("https"))  # new ids, https links, and the CMS curls the quotes
    result = relay("once")
    assert result.code == 0 and fake_slack.posts == [], result.err
    assert "2 entry(ies) came back under a new id" in result.err


def test_a_new_url_for_the_same_feed_posts_what_is_new_and_for_another_feed_nothing(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    old = [{"guid": f"g{n}", "title": f"Post {n}", "link": f"https://blog.example/{n}"} for n in (2, 1)]
    feed_server.set("/old.xml", rss(old))
    feed_server.set("/new.xml", rss([{"guid": "g3", "title": "Post 3", "link": "https://blog.example/3"}, *old]))
    feed_server.set("/other.xml", rss([{"guid": "x1", "title": "Elsewhere", "link": "https://other.example/1"}]))
    feed = {"name": "Blog", "url": feed_server.url("/old.xml"), "channels": ["readings"]}
    relay.configure(feeds=[feed])
    assert relay("once").code == 0
    # The publisher moved the feed (its 301 said so) and published meanwhile: following the advice loses nothing.
    relay.configure(feeds=[{**feed, "url": feed_server.url("/new.xml")}])
    result = relay("once")
    assert result.code == 0 and titles(fake_slack.posts) == ["Post 3"], result.err
    # Pointed at a different feed altogether: a new subscription, whose archive is not posted.
    relay.configure(feeds=[{**feed, "url": feed_server.url("/other.xml")}])
    assert relay("once").code == 0 and titles(fake_slack.posts) == ["Post 3"]


def test_untitled_unlinked_entries_are_each_posted(relay: Relay, feed_server: FeedServer,
                                                   fake_slack: FakeSlack) -> None:
    # RSS allows an item that is only a description (microblogs, notes), with or without a guid.
    def notes(n: int) -> bytes:
        return rss([{"description": f"note number {i}", **({"guid": f"note-{i}"} if i % 2 else {})}
                    for i in range(n)])

    feed_server.set("/notes.xml", notes(2))
    relay.configure(feeds=[{"name": "Notes", "url": feed_server.url("/notes.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    feed_server.set("/notes.xml", notes(5))
    result = relay("once")
    assert result.code == 0, result.err
    assert sorted(p.blocks[1]["text"]["text"] for p in fake_slack.posts) == [f"note number {i}" for i in (2, 3, 4)]
    assert relay("once").code == 0 and len(fake_slack.posts) == 3


def test_hostile_titles_ping_no_one(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss([]))
    relay.configure(feeds=[{"name": "<!channel> feed", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    feed_server.set("/f.xml", rss([{
        "guid": "x", "title": "<!channel> urgent <@U123> <!here|here> &lt;!everyone&gt;",
        "link": "http://example.com/x",
        "description": "<p>hi <a href='javascript:alert(1)'>click</a> <!subteam^S1></p>",
    }]))
    assert relay("once").code == 0
    [post] = fake_slack.posts
    raw = json.dumps(post.payload)
    for bad in ("<!", "<@", "<#", "javascript:"):
        assert bad not in raw
    assert "link_names" not in post.payload and post.payload.get("parse") != "full"
    # What survives of the hostile title is shown as literal text, not as a mention.
    assert "urgent &lt;@U123&gt;" in post.blocks[0]["text"]["text"]


def test_without_credentials_messages_print_to_terminal(tmp_path: Path, feed_server: FeedServer) -> None:
    relay = Relay(tmp_path, api_url=None, token=None)
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 1}])
    result = relay("once")
    assert result.code == 0, result.output
    assert "Post 1" in result.out and "#readings" in result.out
    assert "SLACK_BOT_TOKEN is not set" in result.err


def test_terminal_output_carries_no_escape_sequences_from_a_feed(tmp_path: Path, feed_server: FeedServer) -> None:
    # Without credentials (the first run) messages go to the terminal: a JSON Feed can carry any character, and
    # the 8-bit CSI (U+009B) and OSC (U+009D) start escape sequences as ESC [ and ESC ] do (cleared screen,
    # a hyperlink whose text is another URL).
    relay = Relay(tmp_path, api_url=None, token=None)
    feed_server.set("/f.json", json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
        {"id": "1", "url": "http://example.com/1", "title": "Hi \x1b[2J\x9b2J \x9d8;;http://evil.example/\x9c"
         "http://good.example/\x9d8;;\x9c there", "content_text": "body \x9b31m x \x85 y"}]}).encode(),
                    content_type="application/feed+json")
    relay.configure(feeds=[{"name": "J", "url": feed_server.url("/f.json"), "channels": ["readings"], "backlog": 1}])
    result = relay("once")
    assert result.code == 0, result.output
    assert "Hi" in result.out and "there" in result.out
    for char in ("\x1b", "\x9b", "\x9c", "\x9d", "\x85"):
        assert char not in result.out and char not in result.err


def test_require_slack_refuses_to_run_without_credentials(tmp_path: Path, feed_server: FeedServer) -> None:
    # Production mode: a variable dropped from a unit file must not turn every post into terminal output.
    relay = Relay(tmp_path, api_url=None, token=None)
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(channels={"readings": {"slack": "#readings"}, "team": {"webhook_env": "TEAM_HOOK"}},
                    feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings", "team"],
                            "backlog": 1}])
    for args, env in ((("once", "--require-slack"), {}), (("run",), {"FEEDRELAY_REQUIRE_SLACK": "1"}),
                      (("check",), {"FEEDRELAY_REQUIRE_SLACK": "true"})):
        relay.env.update(env)
        result = relay(*args, timeout=30)
        relay.env.pop("FEEDRELAY_REQUIRE_SLACK", None)
        assert result.code == 2, (args, result.output)
        assert "$SLACK_BOT_TOKEN is not set: channel(s) 'readings'" in result.err
        assert "$TEAM_HOOK is not set: channel(s) 'team'" in result.err
        assert "Traceback" not in result.err and result.out == ""
    assert feed_server.hits("/f.xml") == 0  # nothing was polled, so nothing was marked delivered
    assert not relay.db.exists()
    relay.env["FEEDRELAY_REQUIRE_SLACK"] = "0"  # an explicit "off" is off
    assert relay("once").code == 0


def test_require_slack_refuses_a_live_edit_that_drops_credentials(relay: Relay, feed_server: FeedServer,
                                                                  fake_slack: FakeSlack) -> None:
    feed_server.set("/a.xml", rss(make_items(2)))
    feed_a = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"], "interval": "1h"}
    relay.configure(feeds=[feed_a])
    relay.env["FEEDRELAY_REQUIRE_SLACK"] = "1"
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits("/a.xml") >= 1)
        relay.configure(channels={"readings": {"slack": "#readings"}, "team": {"webhook_env": "TEAM_HOOK"}},
                        feeds=[{**feed_a, "channels": ["readings", "team"]}])
        wait_until(lambda: "config change ignored" in daemon.log(), timeout=15)
        assert "$TEAM_HOOK is not set: channel(s) 'team'" in daemon.log()
        assert daemon.proc.poll() is None
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err
    assert result.out == ""  # nothing went to the terminal


def test_a_channel_removed_with_messages_queued_is_reported_not_shown_as_retrying(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/a.xml", rss(make_items(3)))
    readings, old = {"slack": "#readings", "min_interval": "0s"}, {"slack": "#old", "min_interval": "0s"}
    feed = {"name": "A", "url": feed_server.url("/a.xml"), "interval": "1h"}
    relay.configure(channels={"readings": readings, "old": old},
                    feeds=[{**feed, "channels": ["readings", "old"], "backlog": 3}])
    fake_slack.outage(503)
    assert relay("once", "--max-wait", "1s").code == 1  # 3 messages for each channel stay queued
    fake_slack.outage(None)
    relay.configure(channels={"readings": readings}, feeds=[{**feed, "channels": ["readings"]}])

    daemon = relay.start()
    try:
        fake_slack.wait_for_posts(3, timeout=20)
        status, as_json = relay("status"), relay("status", "--json")
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err, result.err
    assert "channel 'old' is no longer configured: 3 queued message(s) wait until it is added back" in result.err
    line = next(line for line in status.out.splitlines() if line.startswith("old "))
    assert "removed from config; 3 message(s) wait until it is added back" in line and "retrying" not in line
    assert json.loads(as_json.out)["channels"]["old"]["configured"] is False
    once = relay("once")
    assert once.code == 1
    assert "channel 'old': channel 'old' is no longer configured; its 3 message(s) wait" in once.err
    assert "0 message(s) delivered, 3 still queued" in once.err
    assert {p.channel for p in fake_slack.posts} == {"#readings"}


def test_two_reloads_at_once_leave_one_deliverer(relay: Relay, feed_server: FeedServer,
                                                  fake_slack: FakeSlack) -> None:
    """An edit reloaded while another reload still waits for the post in flight (`systemctl reload` after each
    of two quick edits, with a slow Slack): every message is still posted once."""
    feed_server.set("/a.xml", rss(make_items(4)))
    readings = {"slack": "#readings", "min_interval": "0s"}
    feed = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"], "backlog": 4, "interval": "1h"}
    relay.configure(channels={"readings": readings}, feeds=[feed])
    fake_slack.delay = 2.0
    daemon = relay.start()
    try:
        wait_until(lambda: fake_slack.attempts, timeout=20)  # a post in flight for 2 s
        for extra in ("x", "y"):
            relay.configure(channels={"readings": readings, extra: {"slack": f"#{extra}"}}, feeds=[feed])
            daemon.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
        fake_slack.wait_for_posts(4, timeout=30)
        time.sleep(2.5)  # a second deliverer would be posting them again
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err and "ERROR" not in result.err, result.err
    assert titles(fake_slack.posts) == ["Post 0", "Post 1", "Post 2", "Post 3"]


def test_webhook_channel(tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url, extra_env={"TEAM_HOOK": fake_slack.webhook_url("team")})
    feed_server.set("/f.xml", rss(make_items(1)))
    relay.configure(channels={"team": {"webhook_env": "TEAM_HOOK"}},
                    feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["team"], "backlog": 1}])
    result = relay("once")
    assert result.code == 0, result.output
    assert titles(fake_slack.messages("webhook:team")) == ["Post 0"]
    assert fake_slack.webhook_url("team") not in result.output  # the URL is the secret


def test_rate_limit_storm_loses_nothing_and_honours_retry_after(relay: Relay, feed_server: FeedServer,
                                                                  fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(4)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 4}],
                    channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    fake_slack.script([("429", 1), ("429", 1), ("500",), ("429", 1)])
    result = relay("once")
    assert result.code == 0, result.output
    assert titles(fake_slack.posts) == ["Post 0", "Post 1", "Post 2", "Post 3"]
    attempts = [a for a in fake_slack.attempts if a.endpoint == "chat.postMessage"]
    for before, after in itertools.pairwise(attempts):
        if before.outcome == "ratelimited":
            assert after.time - before.time >= 0.95  # waited Retry-After before any further post


def test_once_says_pacing_not_retrying_when_max_wait_ends_a_backlog(relay: Relay, feed_server: FeedServer,
                                                                    fake_slack: FakeSlack) -> None:
    # Slack allows about one post a second per channel: 6 messages do not fit in a 2s --max-wait.
    feed_server.set("/f.xml", rss(make_items(6)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 6}],
                    channels={"readings": {"slack": "#readings"}})  # the default pace
    result = relay("once", "--max-wait", "2s")
    assert result.code == 1, result.output  # undelivered messages still count, as the README says
    posted = len(fake_slack.posts)
    assert 1 <= posted < 6
    line = next(line for line in result.err.splitlines() if line.startswith("channel 'readings': "))
    assert line == (f"channel 'readings': --max-wait reached while pacing posts to one every 1s (min_interval); "
                    f"{6 - posted} message(s) left queued for the next run")
    assert f"{posted} message(s) delivered, {6 - posted} still queued" in result.err
    assert all(a.outcome == "ok" for a in fake_slack.attempts if a.endpoint == "chat.postMessage")  # no retry

    rest = relay("once", "--max-wait", "30s")
    assert rest.code == 0, rest.output
    assert titles(fake_slack.posts) == [f"Post {i}" for i in range(6)]


def test_once_says_a_rate_limit_pause_stopped_it(relay: Relay, feed_server: FeedServer,
                                                 fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 2}])
    fake_slack.script([("429", 30)])
    result = relay("once", "--max-wait", "2s")
    assert result.code == 1, result.output
    assert ("channel 'readings': --max-wait reached during a Slack rate-limit pause (Retry-After, 30s more); "
            "2 message(s) left queued for the next run") in result.err


def test_outage_keeps_messages_until_slack_is_back(relay: Relay, feed_server: FeedServer,
                                                    fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(3)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 3}])
    fake_slack.outage(503)
    down = relay("once", "--max-wait", "2s")
    assert down.code == 1
    # A retry backoff stopped it: the line keeps the error.
    assert re.search(r"^channel 'readings': --max-wait reached with message 1 waiting \d+s to retry after \d "
                     r"failed attempt\(s\) \(last error: HTTP 503\); 3 message\(s\) left queued for the next run$",
                     down.err, re.MULTILINE), down.err
    assert fake_slack.posts == []
    status = relay("status")
    assert status.code == 0
    assert "3" in status.out and "retrying" in status.out

    fake_slack.outage(None)
    # Backoff may have scheduled the next try a few seconds out: allow for it.
    up = relay("once", "--max-wait", "30s")
    assert up.code == 0, up.output
    assert titles(fake_slack.posts) == ["Post 0", "Post 1", "Post 2"]


def test_permanent_error_marks_channel_failing_and_keeps_messages(relay: Relay, feed_server: FeedServer,
                                                                   fake_slack: FakeSlack) -> None:
    fake_slack.unknown_channels.add("#gone")
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(channels={"gone": {"slack": "#gone"}},
                    feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["gone"], "backlog": 2}])
    result = relay("once")
    assert result.code == 1
    assert "channel_not_found" in result.err
    status = relay("status")
    assert "FAILING: channel_not_found" in status.out
    assert "What to do: docs/runbooks.md" in status.out

    # Someone fixes the channel; the next run delivers everything that waited.
    fake_slack.unknown_channels.clear()
    fixed = relay("once")  # a restart retries failing channels at once
    assert fixed.code == 0, fixed.output
    assert titles(fake_slack.posts) == ["Post 0", "Post 1"]
    assert "FAILING" not in relay("status").out and "runbooks" not in relay("status").out


def test_config_typo_is_one_clear_line(relay: Relay) -> None:
    relay.config.write_text('[channels.readings]\nslack = "#r"\n\n[[feeds]]\nname = "x"\nurl = "http://e.com/"\n'
                            'chanels = ["readings"]\n')
    for command in ("check", "once", "run"):
        result = relay(command)
        assert result.code == 2
        assert "Traceback" not in result.output
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, result.err
        assert "feeds.toml:7: feeds[0].chanels: unknown key (did you mean 'channels'?)" in lines[0]


def test_one_failing_feed_does_not_stop_the_others(relay: Relay, feed_server: FeedServer,
                                                   fake_slack: FakeSlack) -> None:
    feed_server.set("/good.xml", rss(make_items(1)))
    feed_server.set("/html", b"<!doctype html><html><body>Not a feed</body></html>", content_type="text/html")
    relay.configure(feeds=[
        {"name": "Broken", "url": feed_server.url("/html"), "channels": ["readings"], "backlog": 1},
        {"name": "Missing", "url": feed_server.url("/404.xml"), "channels": ["readings"]},
        {"name": "Refused", "url": "http://127.0.0.1:9/feed", "channels": ["readings"]},
        {"name": "Good", "url": feed_server.url("/good.xml"), "channels": ["readings"], "backlog": 1},
    ])
    result = relay("once")
    assert result.code == 1
    assert titles(fake_slack.posts) == ["Post 0"]
    assert "not a feed" in result.err and "HTTP 404" in result.err and "cannot connect" in result.err
    status = relay("status").out
    assert "Broken" in status and "ERROR" in status


def test_kill_9_during_delivery_then_restart_loses_nothing(relay: Relay, feed_server: FeedServer,
                                                            fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(12)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"],
                            "backlog": 12}],
                    channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    fake_slack.delay = 0.2
    daemon = relay.start()
    wait_until(lambda: len(fake_slack.posts) >= 3, timeout=30)
    daemon.kill()
    fake_slack.delay = 0
    result = relay("once")
    assert result.code == 0, result.output
    got = titles(fake_slack.posts)
    assert set(got) == {f"Post {i}" for i in range(12)}
    assert len(got) - len(set(got)) <= 1  # at most the one message in flight at the kill


def test_daemon_picks_up_config_edits_and_stops_cleanly(relay: Relay, feed_server: FeedServer,
                                                         fake_slack: FakeSlack) -> None:
    feed_server.set("/a.xml", rss(make_items(2)))
    feed_server.set("/b.xml", rss(make_items(3, prefix="B")))
    feed_a = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"], "interval": "1h"}
    relay.configure(feeds=[feed_a])
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits("/a.xml") >= 1)
        relay.config.write_text(relay.config.read_text() + "\nthis is not toml ===\n")
        wait_until(lambda: "config change ignored" in daemon.log(), timeout=15)
        assert daemon.proc.poll() is None  # a bad edit never stops the running daemon
        relay.configure(feeds=[feed_a, {"name": "B", "url": feed_server.url("/b.xml"), "channels": ["readings"],
                                        "backlog": 1, "interval": "1h"}])
        wait_until(lambda: fake_slack.posts, timeout=20)
        assert titles(fake_slack.posts) == ["B 2"]
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    assert "Traceback" not in result.err


def test_a_url_changed_while_its_feed_is_being_polled_posts_nothing_of_either(relay: Relay, feed_server: FeedServer,
                                                                               fake_slack: FakeSlack) -> None:
    feed_server.set("/slow.xml", rss(make_items(2)), delay=6)
    feed_server.set("/m.xml", rss(make_items(8, prefix="M")))
    feed = {"name": "S", "url": feed_server.url("/slow.xml"), "channels": ["readings"], "interval": "2s"}
    relay.configure(feeds=[feed])
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits("/slow.xml") >= 1)  # its first poll is in flight for 6 s
        relay.configure(feeds=[{**feed, "url": feed_server.url("/m.xml")}])
        daemon.proc.send_signal(signal.SIGHUP)  # reload now, while the old URL's poll still waits
        wait_until(lambda: "first poll, remembered 8 item(s)" in daemon.log(), timeout=20)
        wait_until(lambda: feed_server.hits("/m.xml") >= 3, timeout=20)  # and polled on schedule since
        assert fake_slack.posts == []  # neither the old URL's listing nor the new one's archive
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err


def test_retry_after_is_capped_shown_and_forgotten_when_the_url_changes(relay: Relay, feed_server: FeedServer,
                                                                        fake_slack: FakeSlack) -> None:
    feed_server.set("/busy.xml", b"busy", status=503, headers={"Retry-After": "604800"})  # "come back in a week"
    feed_server.set("/ok.xml", rss(make_items(2)))
    feed = {"name": "Busy", "url": feed_server.url("/busy.xml"), "channels": ["readings"]}
    relay.configure(feeds=[feed])
    before = time.time()
    assert relay("once").code == 1
    second = relay("once")
    assert "feed 'Busy': skipped, the server asked us to wait (Retry-After)" in second.err
    assert feed_server.hits("/busy.xml") == 1
    [row] = json.loads(relay("status", "--json").out)["feeds"]
    assert 0 < row["waiting_until"] - before <= 24 * 3600 + 60  # honoured, up to a day
    assert "not polled until" in relay("status").out
    # The user points the feed elsewhere: the old server's request no longer applies.
    relay.configure(feeds=[{**feed, "url": feed_server.url("/ok.xml")}])
    assert relay("once").code == 0
    assert feed_server.hits("/ok.xml") == 1


def test_sigterm_with_a_hanging_feed_exits_quietly_within_docker_stops_grace(relay: Relay, feed_server: FeedServer,
                                                                              fake_slack: FakeSlack) -> None:
    feed_server.set("/hang.xml", rss(make_items(1)), delay=30)  # answers long after any timeout we'd wait for
    relay.configure(feeds=[{"name": "Hang", "url": feed_server.url("/hang.xml"), "channels": ["readings"],
                            "interval": "1s"}])
    daemon = relay.start()
    wait_until(lambda: feed_server.hits("/hang.xml") >= 1)
    started = time.monotonic()
    result = daemon.stop(timeout=30)
    assert time.monotonic() - started < 9  # docker stop sends SIGKILL after 10 s
    assert result.code == 0
    assert "Traceback" not in result.err and "raised an exception" not in result.err, result.err
    assert "feed 'Hang': poll interrupted by shutdown; it is repeated at the next start" in result.err


def test_ctrl_c_while_run_is_starting_stops_it_calmly(relay: Relay, feed_server: FeedServer,
                                                     fake_slack: FakeSlack) -> None:
    # Ctrl-C in the first second of `run`, before its own handlers were in place, used to print a traceback, an
    # "internal error" for the feed being polled, "Aborted!" and exit 1.
    feed_server.set("/hang.xml", rss(make_items(1)), delay=30)  # a poll in flight when the stop comes
    relay.configure(feeds=[{"name": "Hang", "url": feed_server.url("/hang.xml"), "channels": ["readings"]}])
    sqlite3.connect(relay.db).close()
    holder = sqlite3.connect(relay.db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # keeps the starting relay waiting in its first database write
    lock = relay.dir / "feedrelay.db.lock"
    with open(relay.dir / "daemon.out", "w") as out, open(relay.dir / "daemon.err", "w") as err:
        # As from a terminal: SIGINT at its default (a background child of pytest may inherit it ignored).
        proc = subprocess.Popen(relay.cmd("run"), env=relay.env, cwd=relay.dir, stdout=out, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            wait_until(lambda: lock.exists() and lock.read_text() == str(proc.pid))
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
            holder.rollback()
            holder.close()
            code = proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
    log = (relay.dir / "daemon.err").read_text()
    assert code == 0, log
    assert "Traceback" not in log and "internal error" not in log and "Aborted" not in log, log


def test_sigterm_with_slack_hanging_exits_within_docker_stops_grace_and_loses_nothing(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 2,
                            "interval": "1h"}])
    fake_slack.delay = 20  # Slack takes a post and does not answer (feedrelay's own timeout is 30 s)
    daemon = relay.start()
    wait_until(lambda: "queued 2" in daemon.log(), timeout=20)
    time.sleep(0.5)  # the first post is in flight
    started = time.monotonic()
    result = daemon.stop(timeout=40)
    assert time.monotonic() - started < 9  # docker stop sends SIGKILL after 10 s
    assert result.code == 0
    assert "Traceback" not in result.err and "ERROR" not in result.err, result.err
    assert "channel readings: the post in flight is dropped by shutdown; it is sent at the next start" in result.err
    fake_slack.delay = 0
    assert relay("once").code == 0
    # Both are delivered; the one Slack may have taken before the stop can appear twice, as the README warns.
    assert set(titles(fake_slack.posts)) == {"Post 0", "Post 1"}


def test_preview_explains_decisions_and_posts_nothing(relay: Relay, feed_server: FeedServer,
                                                      fake_slack: FakeSlack) -> None:
    entries = [{"guid": "1", "title": "Kubernetes 1.40 released", "link": "http://example.com/1"},
               {"guid": "2", "title": "Our new webinar series", "link": "http://example.com/2"}]
    feed_server.set("/f.xml", rss(entries))
    relay.configure(feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "routes": [
        {"channel": "readings", "include": ["kubernetes", "webinar"], "exclude": ["webinar series"]}]}])
    # Not polled yet: its first poll posts none of them (preview says so), and shows which rule decides later.
    result = relay("preview", "Blog")
    assert result.code == 0, result.output
    assert ('skip → readings: first poll: remembered, not posted (backlog = 0); included by keyword "kubernetes"'
            in result.out)
    assert 'skip → readings: excluded by keyword "webinar series"' in result.out
    assert fake_slack.posts == [] and not relay.db.exists()  # a preview writes nothing

    feed_server.set("/f.xml", rss([]))
    assert relay("once").code == 0
    feed_server.set("/f.xml", rss(entries))
    before = relay.db.read_bytes()
    result = relay("preview", "Blog")
    assert result.code == 0, result.output
    assert 'post → readings: included by keyword "kubernetes"' in result.out
    assert 'skip → readings: excluded by keyword "webinar series"' in result.out
    assert fake_slack.posts == [] and relay.db.read_bytes() == before
    assert relay("once").code == 0 and titles(fake_slack.posts) == ["Kubernetes 1.40 released"]

    missing = relay("preview", "Nope")
    assert missing.code == 2 and "no feed named 'Nope'" in missing.err


def test_preview_of_a_feed_not_polled_yet_says_its_first_poll_posts_only_the_backlog(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    # The README sends a new user to `preview` during the silent first polls: "post → readings" on every entry,
    # with nothing said about the first poll, promised 20 posts that `run` then did not make.
    feed_server.set("/f.xml", rss(make_items(3)))
    relay.configure(feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    first = relay("preview", "Blog")
    assert first.code == 0, first.output
    assert "not polled yet: its first poll remembers these entries and posts none of them (backlog = 0)" in first.out
    assert relay("once").code == 0 and fake_slack.posts == []
    feed_server.set("/f.xml", rss(make_items(4)))
    later = relay("preview", "Blog")
    assert "not polled yet" not in later.out and "(new)" in later.out and "post → readings" in later.out


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_preview_limit_below_one_is_a_usage_error(relay: Relay, feed_server: FeedServer, limit: str) -> None:
    feed_server.set("/f.xml", rss(make_items(5)))
    relay.configure(feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    result = relay("preview", "Blog", "-n", limit)
    assert result.code == 2, result.output
    assert result.out == "" and "Traceback" not in result.err
    assert f"Invalid value for '-n' / '--limit': {limit} is not in the range x>=1." in result.err
    assert not feed_server.requests  # refused before fetching anything
    two = relay("preview", "Blog", "-n", "2")
    assert two.code == 0, two.output
    assert "2 item(s) shown" in two.out and two.out.count("\n• ") == 2


def test_many_feeds_parse_in_worker_processes_and_all_relay(relay: Relay, feed_server: FeedServer,
                                                            fake_slack: FakeSlack) -> None:
    # 25 feeds: at or above PARALLEL_PARSE_MIN_FEEDS, parsing runs in a process pool.
    feeds = []
    for i in range(25):
        items = [{**item, "link": f"{item['link']}/feed{i}"} for item in make_items(2, prefix=f"F{i}")]
        feed_server.set(f"/f{i}.xml", rss(items))
        feeds.append({"name": f"F{i}", "url": feed_server.url(f"/f{i}.xml"), "channels": ["readings"], "backlog": 1})
    relay.configure(feeds=feeds, channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    result = relay("once")
    assert result.code == 0, result.output
    assert sorted(titles(fake_slack.posts)) == sorted(f"F{i} 1" for i in range(25))


def test_a_restart_keeps_a_workspace_rate_limit_pause_for_every_bot_channel(relay: Relay, feed_server: FeedServer,
                                                                             fake_slack: FakeSlack) -> None:
    # Slack asks for no post to the workspace until Retry-After has passed; cron runs `once` as a new process
    # each time, so the pause must outlive the process that was told about it.
    feed_server.set("/a.xml", rss(make_items(1)))
    feed_server.set("/b.xml", rss(make_items(1, start=5)))
    channels = {"a": {"slack": "#a", "min_interval": "0s"}, "b": {"slack": "#b", "min_interval": "0s"}}
    feed_a = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["a"], "backlog": 1}
    relay.configure(channels=channels, feeds=[feed_a])
    fake_slack.script([("429", 30)], channel="#a")
    first = relay("once", "--max-wait", "1s")
    assert first.code == 1, first.output
    assert fake_slack.posts == []

    relay.configure(channels=channels, feeds=[feed_a, {"name": "B", "url": feed_server.url("/b.xml"),
                                                       "channels": ["b"], "backlog": 1}])
    second = relay("once", "--max-wait", "1s")
    assert fake_slack.messages("#b") == []  # not posted during the pause Slack asked for
    assert second.code == 1, second.output
    assert "channel 'b': --max-wait reached during a Slack rate-limit pause (Retry-After, " in second.err


def test_a_retry_after_that_is_not_a_number_of_seconds_is_one_clear_line(relay: Relay, feed_server: FeedServer,
                                                                           fake_slack: FakeSlack) -> None:
    # A gateway in front of Slack sent "Retry-After: inf"; `once` must still end with its usual summary.
    feed_server.set("/f.xml", rss(make_items(1)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 1}])
    fake_slack.script([("429", float("inf"))])
    result = relay("once", "--max-wait", "10s")
    assert "Traceback" not in result.output
    assert result.code == 0, result.output
    assert titles(fake_slack.posts) == ["Post 0"]


def test_an_edit_reloaded_with_sighup_is_applied_once(relay: Relay, feed_server: FeedServer) -> None:
    """`systemctl reload` after an edit: the periodic check must not apply the same file again (a second
    "configuration reloaded" and, with changed channels, every Slack connection reopened twice)."""
    feed_server.set("/a.xml", rss(make_items(1)))
    feed = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"], "interval": "1h"}
    relay.configure(feeds=[feed])
    daemon = relay.start()
    try:
        wait_until(lambda: "feedrelay running" in daemon.log(), timeout=20)
        relay.configure(feeds=[{**feed, "interval": "2h"}])
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in daemon.log(), timeout=10)
        time.sleep(5)  # two looks of the periodic check (every 2 s)
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err
    assert result.err.count("configuration reloaded") == 1, result.err


def test_status_still_shows_the_database_while_the_config_is_broken(relay: Relay, feed_server: FeedServer,
                                                                    fake_slack: FakeSlack) -> None:
    """A bad edit is alerted and ignored by the running daemon; the operator then runs `status`, which must show
    what the daemon is doing rather than only the edit's error."""
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    relay.config.write_text('database = "data/relay.db"\n' + relay.config.read_text())
    (relay.dir / "data").mkdir()
    assert relay("once").code == 0
    relay.config.write_text(relay.config.read_text() + "\nthis is not toml ===\n")
    result = relay("status")
    assert "not valid TOML" in result.err and "keeps its previous configuration" in result.err
    assert re.search(r"^F\s+\S+ ago\s+2\s", result.out, re.M), result.output


def test_status_lists_every_configured_channel_even_before_its_first_message(relay: Relay,
                                                                             feed_server: FeedServer) -> None:
    """After the silent first poll a user checks `status`: the channels they configured are there, not missing."""
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    out = relay("status").out
    assert re.search(r"^readings\s+0\s+0\s+0\s+nothing sent yet$", out, re.M), out
    [channel] = [c for name, c in json.loads(relay("status", "--json").out)["channels"].items() if name == "readings"]
    assert channel["sent"] == 0 and channel["configured"] is True
