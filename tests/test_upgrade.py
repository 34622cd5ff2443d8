"""A database written by feedrelay before schema 2 (tests/fixtures/schema-v1.sql, the old schema as it was) is
upgraded in place: nothing the old version remembered or posted comes back, and what it lost is found."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from tests.cli import Relay
from tests.feedgen import rss
from tests.servers import FakeSlack, FeedServer

SCHEMA_V1 = Path(__file__).parent / "fixtures" / "schema-v1.sql"


def test_an_old_database_is_upgraded_without_reposting_and_finds_what_the_old_version_merged(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url)
    urls = {name: feed_server.url(f"/{name.lower()}.xml") for name in ("Changelog", "A", "B", "Notes")}
    release = [{"title": f"v1.{n}", "link": f"https://tool.example/changelog#v1.{n}"} for n in (1, 0)]
    notes = [{"description": f"note {n}"} for n in (2, 1)]  # no title, link, date or guid
    relay.configure(feeds=[{"name": name, "url": url, "channels": ["readings"]} for name, url in urls.items()])
    # What the old version left: it merged a changelog's #anchored releases into one key (its link without the
    # fragment), and posted "Shared Story" from feed A yesterday, keyed by the bare link.
    old = sqlite3.connect(relay.db)
    old.executescript(SCHEMA_V1.read_text())
    old.executemany("INSERT INTO feeds (name, url, kind, initialized, listed) VALUES (?, ?, 'rss', 1, 2)",
                    urls.items())
    # These servers send no validators: the old version kept the hash of the body it last parsed.
    for name, body in (("Changelog", rss(release)), ("Notes", rss(notes))):
        old.execute("UPDATE feeds SET state = ? WHERE name = ?",
                    [json.dumps({"url": urls[name], "body_hash": hashlib.sha256(body).hexdigest()}), name])
    untitled = "sha256:" + hashlib.sha256(b"\x00").hexdigest()  # schema 1's key for every untitled, undated note
    old.executemany("INSERT INTO items (feed, key, dedupe_key, title, first_seen) VALUES (?, ?, ?, ?, ?)", [
        ("Notes", untitled, "title:", "", 1000.0),
        ("Changelog", "https://tool.example/changelog", "https://tool.example/changelog", "v1.1", 1000.0),
        ("A", "a1", "https://ex.com/shared", "Shared Story", 1000.0),
        ("A", "a0", "https://ex.com/a0", "Old A", 1000.0),
        ("B", "b0", "https://ex.com/b0", "Old B", 1000.0)])
    old.execute("INSERT INTO outbox (channel, feed, item_key, dedupe_key, message, created, status) "
                "VALUES ('readings', 'A', 'a1', 'https://ex.com/shared', ?, ?, 'sent')",
                [json.dumps({"text": "Shared Story", "blocks": []}), time.time() - 86400])
    old.commit()
    old.close()

    feed_server.set("/changelog.xml", rss(release), etag=False, last_modified=False)
    feed_server.set("/notes.xml", rss(notes), etag=False, last_modified=False)
    feed_server.set("/a.xml", rss([{"guid": "a1", "title": "Shared Story", "link": "https://ex.com/shared"},
                                   {"guid": "a0", "title": "Old A", "link": "https://ex.com/a0"}]))
    # Feed B now carries the story A posted yesterday.
    feed_server.set("/b.xml", rss([{"guid": "b1", "title": "Shared Story", "link": "https://ex.com/shared?utm_source=b"},
                                   {"guid": "b0", "title": "Old B", "link": "https://ex.com/b0"}]))
    result = relay("once")
    assert result.code == 0, result.err
    assert "Shared Story" not in str([p.blocks for p in fake_slack.posts])
    # The changelog and the notes have not changed since the old version's last poll (the same bytes, not parsed):
    # that must not end the upgrade's matching before its first real listing.
    assert fake_slack.posts == []
    feed_server.set("/changelog.xml", rss([{"title": "v1.2", "link": "https://tool.example/changelog#v1.2"},
                                           *release]), etag=False, last_modified=False)
    # The notes feed changes (its title), still listing only the notes the old version had: nothing to post.
    feed_server.set("/notes.xml", rss(notes, title="Notes, renamed"), etag=False, last_modified=False)
    result = relay("once")
    assert result.code == 0, result.err
    feed_server.set("/notes.xml", rss([{"description": "note 3"}, *notes]), etag=False, last_modified=False)
    assert relay("once").code == 0
    posted = sorted(json.dumps(p.blocks) for p in fake_slack.posts)
    # v1.1 was remembered by the old version: not again. v1.2 is new; v1.0 is one the old version lost (merged).
    # Of the notes, only the new one.
    assert len(posted) == 3, posted
    assert "note 3" in posted[0] and "#v1.0|v1.0" in posted[1] and "#v1.2|v1.2" in posted[2]
    assert relay("once").code == 0 and len(fake_slack.posts) == 3  # and nothing more, ever
    assert json.loads(relay("status", "--json").out)["feeds"][0]["error"] is None
    assert sqlite3.connect(relay.db).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
