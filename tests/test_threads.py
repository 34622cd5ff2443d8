"""Outbox actions against the loopback Slack: a post, a reply in its thread and an edit of it, in order, through
a 429, an edit Slack refuses and a restart (a new Deliverer on the same database file)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from feedrelay.config import parse_config
from feedrelay.delivery.deliverer import Deliverer
from feedrelay.delivery.outbox import Outbox
from feedrelay.delivery.sinks import Sinks
from feedrelay.model import Delivery
from feedrelay.store import Store
from tests.cli import TOKEN
from tests.servers import FakeSlack

CONFIG = """
[channels.security]
slack = "#security"
min_interval = "0s"
[channels.hook]
webhook_env = "HOOK_URL"
min_interval = "0s"
[[feeds]]
name = "NVD"
type = "nvd"
url = "https://nvd.example/rest/json/cves/2.0"
channels = ["security"]
"""


def row(action: str, text: str, channel: str = "security", story: str = "CVE-2026-0001") -> Delivery:
    message = {"text": text, "blocks": [], "plain": text, "parent": story}
    return Delivery(channel, "NVD", story, f"cve:{story}", message, action=action, story=story)


def deliver(db: Path, slack: FakeSlack, rows: list[Delivery]) -> dict[str, object]:
    async def go() -> dict[str, object]:
        store = Store(db)
        outbox = Outbox(store)
        with store.transaction():
            for d in rows:
                if d.action == "post":
                    store.db.execute("INSERT OR IGNORE INTO stories (channel, story, feed, first_posted, updated) "
                                     "VALUES (?, ?, 'NVD', 0, 0)", [d.channel, d.story])
            outbox.enqueue(rows, window=86400.0)
        config = parse_config(CONFIG, environ={})
        config = replace(config, slack=replace(config.slack, api_url=slack.api_url))
        sinks = Sinks(config, environ={"SLACK_BOT_TOKEN": TOKEN, "HOOK_URL": slack.webhook_url("hook")})
        try:
            deliverer = Deliverer(outbox, await sinks.open(), {"security": 0.0, "hook": 0.0})
            reports = await deliverer.drain(deadline=time.time() + 20)
        finally:
            await sinks.close()
            store.close()
        return reports  # type: ignore[return-value]

    return asyncio.run(go())


def test_a_reply_and_an_edit_wait_for_their_parent_and_keep_the_order(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db = tmp_path / "feedrelay.db"
    fake_slack.script([("429", 0.2)], channel="#security")  # the first post is rate limited: nothing overtakes it
    deliver(db, fake_slack, [row("post", "first"), row("reply", "Score: unscored → 9.8 Critical (CNA)"),
                             row("update", "first, now critical"), row("post", "another", story="CVE-2026-0002")])
    posts = fake_slack.messages("#security")
    assert [p.text for p in posts] == ["first", "Score: unscored → 9.8 Critical (CNA)", "another"]
    assert posts[0].thread_ts is None and posts[1].thread_ts == posts[0].ts and posts[2].thread_ts is None
    [edit] = fake_slack.edits
    assert (edit.channel_id, edit.ts, edit.text) == (FakeSlack.channel_id("#security"), posts[0].ts,
                                                     "first, now critical")
    # A restart later: the story's first message is remembered, so a new reply still lands in its thread.
    fake_slack.uneditable.add(posts[0].ts)  # ...and an edit Slack refuses becomes a reply there
    deliver(db, fake_slack, [row("reply", "Added to CISA KEV"), row("update", "first, now in KEV")])
    later = fake_slack.messages("#security")[3:]
    assert [(p.text, p.thread_ts) for p in later] == [("Added to CISA KEV", posts[0].ts),
                                                      ("first, now in KEV", posts[0].ts)]
    assert len(fake_slack.edits) == 1


def test_a_webhook_channel_gets_replies_as_posts_and_no_edits(tmp_path: Path, fake_slack: FakeSlack) -> None:
    deliver(tmp_path / "feedrelay.db", fake_slack, [row("post", "first", "hook"), row("reply", "changed", "hook"),
                                                    row("update", "first, now", "hook")])
    assert [(p.text, p.thread_ts) for p in fake_slack.messages("webhook:hook")] == [("first", None), ("changed", None)]
    assert fake_slack.edits == []


def test_a_story_first_posted_in_a_daily_thread_gets_its_follow_ups_in_that_thread(
        tmp_path: Path, fake_slack: FakeSlack) -> None:
    db = tmp_path / "feedrelay.db"
    day = "day\tNVD\t2026-12-02"
    parent = Delivery("security", "NVD", day, "day:NVD", {"text": "NVD: Wed 2 Dec 2026", "blocks": [],
                                                          "plain": "NVD"}, action="post", story=day)
    cve = row("post", "CVE-2026-0001")
    cve = replace(cve, message={**cve.message, "thread": day})  # thread = "daily": under the day's parent
    deliver(db, fake_slack, [parent, cve, row("reply", "Added to CISA KEV"), row("update", "CVE, now in KEV")])
    head, first, reply = fake_slack.messages("#security")
    assert head.thread_ts is None and first.thread_ts == head.ts
    # Slack has one level of threads: the follow-up goes to the day's thread; the edit is of the CVE's own message.
    assert (reply.text, reply.thread_ts) == ("Added to CISA KEV", head.ts)
    assert [e.ts for e in fake_slack.edits] == [first.ts]
