"""Daily threads (``thread = "daily"``, issue #15): the day's first post is a parent "<feed>: <date>" in the route's
time zone, and the day's posts are replies under it; webhook channels get plain posts.

Through the CLI against a loopback feed server and the fake Slack; the day boundary (which a test cannot wait
for) with an injected clock, on the pure decision.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feedrelay.config import ConfigError, parse_config
from feedrelay.decide.daily import thread_daily
from feedrelay.model import Intent, Item
from tests.cli import Relay
from tests.feedgen import rss
from tests.servers import FakeSlack, FeedServer

FAST = {"min_interval": "0s"}
ZONE = "Pacific/Auckland"  # UTC+13 in December: its day is not UTC's for 13 hours of every UTC day


def _config(thread: str = "daily", zone: str = ZONE, channel: str = 'slack = "#readings"') -> str:
    return (f'[channels.readings]\n{channel}\n[[feeds]]\nname = "Blog"\nurl = "https://example.com/f"\n'
            f'channels = ["readings"]\nthread = "{thread}"\ntimezone = "{zone}"\n')


def test_posts_either_side_of_local_midnight_go_under_two_parents() -> None:
    feed = parse_config(_config()).feeds[0]
    # 23:59 and 00:01 in Auckland on the night of Wed 2 to Thu 3 December 2026 (10:59 and 11:01 UTC on the 2nd).
    before = datetime(2026, 12, 2, 23, 59, tzinfo=ZoneInfo(ZONE)).timestamp()
    post = Intent("readings", "Blog", Item("a", "A post", "https://example.com/a"))
    first, parents = thread_daily(feed, [post, Intent("readings", "Blog", Item("b", "B", "https://e.com/b"))], set(),
                                  before)
    assert [(i.action, i.item.title, i.thread) for i in first] == [
        ("post", "Blog: Wed 2 Dec 2026", ""), ("post", "A post", "day\tBlog\t2026-12-02"),
        ("post", "B", "day\tBlog\t2026-12-02")]
    assert [w.story for w in parents] == ["day\tBlog\t2026-12-02"]
    # Two minutes later it is the 3rd in Auckland (still the 2nd in UTC): a new parent, even with the 2nd's started.
    later, parents = thread_daily(feed, [post], {("readings", "day\tBlog\t2026-12-02")}, before + 120)
    assert [(i.item.title, i.thread) for i in later] == [("Blog: Thu 3 Dec 2026", ""),
                                                         ("A post", "day\tBlog\t2026-12-03")]
    # A day whose parent exists gets none again; replies and edits of a story are left to follow their message.
    reply = Intent("readings", "Blog", Item("c", "C", ""), action="reply", story="CVE-2026-1")
    again, parents = thread_daily(feed, [post, reply], {("readings", "day\tBlog\t2026-12-03")}, before + 120)
    assert [(i.action, i.thread) for i in again] == [("post", "day\tBlog\t2026-12-03"), ("reply", "")]
    assert parents == []


def test_thread_values_are_checked_and_a_webhook_channel_posts_plainly() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_config(thread="weekly"))
    assert "feeds[0].thread: expected one of daily, off; got 'weekly'" in str(exc.value)
    assert parse_config(_config(channel='webhook_env = "HOOK"')).feeds[0].routes[0].thread == ""
    assert parse_config(_config(thread="off")).feeds[0].routes[0].thread == ""


def test_a_day_of_posts_goes_under_one_parent_across_a_restart(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url, extra_env={"HOOK": fake_slack.webhook_url("hook")})
    entries = [{"guid": f"p{i}", "title": f"Post {i} <!channel>", "link": f"https://example.com/{i}"}
               for i in range(3)]
    feed_server.set("/f.xml", rss(entries[:2]))
    relay.configure(channels={"readings": {"slack": "#readings", **FAST}, "team": {"webhook_env": "HOOK"}},
                    feeds=[{"name": "Blog <@U0BAD>", "url": feed_server.url("/f.xml"), "backlog": 2,
                            "channels": ["readings", "team"], "thread": "daily", "timezone": ZONE}])
    assert "route → readings: template full, daily thread (Pacific/Auckland)" in relay("preview", "Blog <@U0BAD>").out
    result = relay("once")
    assert result.code == 0, result.output
    parent, *posts = fake_slack.messages("#readings")
    today = datetime.now(ZoneInfo(ZONE))
    if today.hour == 23 and today.minute == 59:  # (the day may turn between the two readings of the clock)
        pytest.skip("run at local midnight")
    label = f"{today:%a} {today.day} {today:%b %Y}"
    assert parent.thread_ts is None and parent.text == f"Blog &lt;@U0BAD&gt;: {label}"
    assert "<@U0BAD>" not in json.dumps(parent.payload)  # a feed name never pings either
    assert [p.thread_ts for p in posts] == [parent.ts, parent.ts]
    assert "<!channel>" not in json.dumps([p.payload for p in posts])

    # Later the same day, a new process (cron): the new post joins the same thread, no second parent.
    feed_server.set("/f.xml", rss(entries))
    assert relay("once").code == 0
    later = fake_slack.messages("#readings")[3:]
    assert len(later) == 1 and later[0].thread_ts == parent.ts and "Post 2" in json.dumps(later[0].blocks)
    # The webhook cannot thread: the same three posts, plain, and no parent message.
    hook = fake_slack.messages("webhook:hook")
    assert len(hook) == 3 and all(p.thread_ts is None for p in hook)
    assert not any(label in (p.text or "") for p in hook)


def test_a_parent_slack_rejects_leaves_the_days_posts_as_plain_posts(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url)
    feed_server.set("/f.xml", rss([{"guid": "p", "title": "Post", "link": "https://example.com/p"}]))
    relay.configure(channels={"readings": {"slack": "#readings", **FAST}},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "backlog": 1,
                            "channels": ["readings"], "thread": "daily"}])
    fake_slack.script([("error", "invalid_blocks"), ("error", "invalid_blocks")])  # the parent, then as plain text
    result = relay("once")
    assert result.code == 1 and "marked failed" in result.err, result.output  # (a rejected message: exit 1)
    posts = fake_slack.messages("#readings")
    assert [p.thread_ts for p in posts] == [None] and "Post" in json.dumps(posts[0].blocks)  # nothing lost
    status = relay("status").out  # the parent is kept, counted as failed, for `feedrelay retry`
    assert [line.split()[-2:] for line in status.splitlines() if line.startswith("Blog")] == [["1", "ok"]]
