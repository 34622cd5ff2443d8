"""A pathological regex in feeds.toml must not stall the daemon: other feeds keep being polled and posted while
one feed's pattern backtracks, and the entries it could not judge are held (not posted, not dropped) until the
pattern is fixed. Through a real `feedrelay run` against a loopback feed server and fake Slack."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli import Relay, wait_until
from tests.feedgen import rss
from tests.servers import FakeSlack, FeedServer

BAD_ENTRIES = 400  # × ~50 ms per timed-out search: ~20 s of the event loop before filters had a budget
CATASTROPHIC = "(a+)+$"  # against "aaa…ab", backtracking that never ends before the regex timeout


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


def bad_listing() -> bytes:
    return rss([{"guid": f"bad-{i}", "title": f"Entry {i}", "link": f"http://example.com/bad/{i}",
                 "description": "a" * 1000 + "b"} for i in range(BAD_ENTRIES, 0, -1)])


def good_listing(n: int) -> bytes:
    return rss([{"guid": f"good-{i}", "title": f"Good {i}", "link": f"http://example.com/good/{i}"}
                for i in range(n, 0, -1)])


def feed_line(status: str, name: str = "Bad") -> str:
    return next(line for line in status.splitlines() if line.startswith(name + " "))


def configure(relay: Relay, feed_server: FeedServer, bad_route: dict[str, object]) -> None:
    relay.configure(
        channels={"readings": {"slack": "#readings", "min_interval": "0s"},
                  "security": {"slack": "#security", "min_interval": "0s"}},
        feeds=[
            {"name": "Good", "url": feed_server.url("/good.xml"), "channels": ["readings"], "interval": "1s"},
            {"name": "Bad", "url": feed_server.url("/bad.xml"), "interval": "1s",
             "routes": [{"channel": "security", **bad_route}]},
        ])


def test_a_catastrophic_regex_holds_its_entries_while_other_feeds_keep_flowing(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/good.xml", good_listing(0))
    feed_server.set("/bad.xml", rss([]))
    configure(relay, feed_server, {"include_regex": [CATASTROPHIC]})
    daemon = relay.start()
    try:
        wait_until(lambda: daemon.log().count("first poll") == 2, timeout=30)
        bad_hits = feed_server.hits("/bad.xml")
        feed_server.set("/bad.xml", bad_listing())
        wait_until(lambda: feed_server.hits("/bad.xml") > bad_hits, timeout=10)
        time.sleep(0.5)  # (parsed, and filtering)

        # While Bad's pattern backtracks poll after poll, each new Good entry reaches Slack within seconds.
        for n in range(1, 4):
            feed_server.set("/good.xml", good_listing(n))
            published = time.monotonic()
            fake_slack.wait_for_posts(n, timeout=8, channel="#readings")
            assert time.monotonic() - published < 8
        wait_until(lambda: "new entry(ies) held" in daemon.log(), timeout=45)
        # Bad is polled again and again (fetched in full: its held entries are judged again each time) ...
        wait_until(lambda: feed_server.hits("/bad.xml") >= bad_hits + 2, timeout=45)
        assert not any(r.headers.get("if-none-match") for r in feed_server.requests
                       if r.path == "/bad.xml" and r.time > published - 1)
        # ... and none of its entries is posted unfiltered, or remembered as if judged.
        assert fake_slack.messages("#security") == []

        bad = feed_line(relay("status").out)
        assert bad.split()[3:7] == ["0", "0", "0", "ok,"]  # nothing remembered, pending or failed; no error
        assert "warning: 400 new entry(ies) held by regex /(a+)+$/ of the route → security" in bad

        # The pattern fixed (a live edit): the held entries are judged at last; the one it includes is posted.
        time.sleep(1.1)  # (a new modification time for the config check)
        configure(relay, feed_server, {"include_regex": ["^Entry 7$"], "fields": ["title"]})
        fake_slack.wait_for_posts(1, timeout=30, channel="#security")
        bad = feed_line(relay("status").out)  # all judged in the poll that posted, and the warning gone
        assert bad.split()[3:] == [str(BAD_ENTRIES), "0", "0", "ok"]
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    assert [p.text for p in fake_slack.messages("#security")] and len(fake_slack.messages("#security")) == 1
    assert "Entry 7" in fake_slack.messages("#security")[0].text
    assert "Traceback" not in result.err


def test_held_entries_are_read_again_at_the_next_poll_whatever_the_source() -> None:
    """A listing (RSS, KEV) is fetched again in full: no validator may turn the next poll into a 304 or a
    same-bytes skip. A window of changes (NVD) is read again from where this poll started, or the held CVEs
    would fall behind the watermark."""
    from feedrelay.runtime.pipeline import _replay_state
    from feedrelay.sources import PollResult

    old = {"url": "https://x.example/f", "etag": '"1"', "body_hash": "a"}
    listing = PollResult([], {"url": "https://x.example/f", "etag": '"2"', "last_modified": "Tue", "body_hash": "b",
                              "parse_warning": None})
    assert _replay_state(old, listing) == {"url": "https://x.example/f", "parse_warning": None}
    window = PollResult([], {"watermark": "2026-12-02T10:00:00+00:00"}, listing=False)
    assert _replay_state({"watermark": "2026-12-01T10:00:00+00:00"}, window) == {
        "watermark": "2026-12-01T10:00:00+00:00"}
