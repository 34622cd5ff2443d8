"""Alerts about the relay itself, as an operator meets them: in the alerts channel, once per problem, with
the runbook to follow, and a word when it is fixed. Run through the CLI against a loopback feed server and
a fake Slack."""

from __future__ import annotations

import json
import re
import signal
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.cli import Relay, wait_until
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer

CHANNELS = {"readings": {"slack": "#readings"}, "ops": {"slack": "#ops"}}
RUNBOOKS = "https://docs.example/feedrelay/runbooks.md"


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


def texts(fake_slack: FakeSlack, channel: str = "#ops") -> list[str]:
    return [p.blocks[0]["text"]["text"] for p in fake_slack.messages(channel)]


def test_a_failing_feed_is_alerted_once_with_its_runbook_and_its_recovery(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "0s", "runbook_url": RUNBOOKS},
                    feeds=[{"name": "Team Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    assert fake_slack.posts == []  # a healthy relay says nothing

    feed_server.set("/f.xml", b"upstream is down", status=503, content_type="text/plain")
    assert relay("once").code == 1
    [alert] = texts(fake_slack)
    assert "Feed *Team Blog* has been failing" in alert
    assert "HTTP 503 Service Unavailable" in alert
    assert f"<{RUNBOOKS}#a-feed-keeps-failing|Runbook: a feed keeps failing>" in alert

    for _ in range(2):
        assert relay("once").code == 1
    assert len(texts(fake_slack)) == 1  # one incident, one alert

    feed_server.set("/f.xml", rss(make_items(3)))
    assert relay("once").code == 0
    alerts = texts(fake_slack)
    assert len(alerts) == 2 and "Feed *Team Blog* works again" in alerts[1]
    [post] = texts(fake_slack, "#readings")  # and the feed's new entry went where it belongs
    assert "Post 2" in post

    # A new failure is a new incident.
    feed_server.set("/f.xml", b"gone", status=404, content_type="text/plain")
    assert relay("once").code == 1
    assert len(texts(fake_slack)) == 3 and "HTTP 404" in texts(fake_slack)[2]


def test_a_short_blip_is_not_news(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(1)))
    relay.configure(channels=CHANNELS, alerts={"channel": "ops"},  # default: failing for an hour
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    assert "alerts → ops (a feed failing for 1h, a channel Slack refuses)" in relay("check").out
    assert relay("once").code == 0
    feed_server.set("/f.xml", b"", status=500)
    assert relay("once").code == 1
    feed_server.set("/f.xml", rss(make_items(1)))
    assert relay("once").code == 0
    assert fake_slack.messages("#ops") == []
    status = relay("status").out
    assert "Blog" in status and "ERROR" not in status


def test_a_channel_slack_refuses_is_alerted_elsewhere_and_its_recovery_too(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    fake_slack.unknown_channels.add("#readings")
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(channels=CHANNELS, alerts={"channel": "ops"},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 2}])
    result = relay("once")
    assert result.code == 1
    [alert] = texts(fake_slack)
    assert "Cannot post to channel *readings* (Slack #readings): channel_not_found" in alert
    assert "`docs/runbooks.md#a-channel-is-failing`" in alert  # no runbook_url: the file is named
    assert "runbooks.md#a-channel-is-failing" in result.err  # and the log says where to look

    assert relay("once").code == 1  # still broken: no second alert
    assert len(texts(fake_slack)) == 1

    fake_slack.unknown_channels.clear()
    assert relay("once").code == 0
    assert len(fake_slack.messages("#readings")) == 2
    alerts = texts(fake_slack)
    assert len(alerts) == 2 and "Channel *readings* takes messages again" in alerts[1]


@pytest.mark.parametrize("error", ["restricted_action_read_only_channel", "not_allowed_token_type"])
def test_a_channel_refused_for_a_reason_waiting_cannot_fix_is_alerted(relay: Relay, feed_server: FeedServer,
                                                                      fake_slack: FakeSlack, error: str) -> None:
    # An admin made the channel read-only (announcements), or someone set an app-level xapp- token: Slack
    # will answer the same until a person acts, so the operator hears of it like of channel_not_found.
    feed_server.set("/f.xml", rss(make_items(1)))
    relay.configure(channels=CHANNELS, alerts={"channel": "ops"},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 1}])
    fake_slack.script([("error", error)] * 10, channel="#readings")
    result = relay("once", "--max-wait", "5s")
    assert result.code == 1
    [alert] = texts(fake_slack)
    assert f"Cannot post to channel *readings* (Slack #readings): {error}" in alert
    assert f"FAILING: {error}" in relay("status").out


def test_the_alerts_channel_cannot_alert_about_itself(relay: Relay, feed_server: FeedServer,
                                                      fake_slack: FakeSlack) -> None:
    fake_slack.unknown_channels.add("#ops")
    feed_server.set("/f.xml", b"", status=500)
    relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "0s"},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    result = relay("once")
    assert result.code == 1
    assert fake_slack.posts == []
    assert "FAILING: channel_not_found" in relay("status").out  # the log and status still tell


def test_error_text_from_a_hostile_server_cannot_ping_or_link(relay: Relay, feed_server: FeedServer,
                                                               fake_slack: FakeSlack) -> None:
    def hostile(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 500 <!channel> <https://evil.example|click here> &\r\nContent-Length: 0\r\n\r\n")

    feed_server.set_handler("/f.xml", hostile)
    relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "0s"},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    relay("once")
    [post] = fake_slack.messages("#ops")
    text = post.blocks[0]["text"]["text"]
    assert "&lt;!channel&gt; &lt;https://evil.example|click here&gt; &amp;" in text
    assert "<!channel>" not in text and "<https://evil" not in text and "<!channel>" not in post.text


def test_an_alerts_channel_that_does_not_exist_is_a_config_error(relay: Relay) -> None:
    relay.configure(channels=CHANNELS, alerts={"channel": "opps"},
                    feeds=[{"name": "Blog", "url": "http://127.0.0.1:9/f.xml", "channels": ["readings"]}])
    result = relay("check")
    assert result.code == 2 and "Traceback" not in result.output
    assert "alerts.channel" in result.err and "'opps'" in result.err and "ops, readings" in result.err


def test_the_running_daemon_alerts_as_problems_happen(relay: Relay, feed_server: FeedServer,
                                                      fake_slack: FakeSlack) -> None:
    fake_slack.unknown_channels.add("#readings")
    feed_server.set("/ok.xml", rss(make_items(1)))
    feed_server.set("/down.xml", b"", status=502)
    relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "0s"}, feeds=[
        # (a short interval: the daemon spreads first polls over min(interval, 30 s))
        {"name": "Fine", "url": feed_server.url("/ok.xml"), "channels": ["readings"], "backlog": 1, "interval": "2s"},
        {"name": "Down", "url": feed_server.url("/down.xml"), "channels": ["readings"], "interval": "2s"},
    ])
    daemon = relay.start()
    try:
        wait_until(lambda: len(fake_slack.messages("#ops")) >= 2, timeout=30)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    alerts = sorted(texts(fake_slack))
    assert len(alerts) == 2
    assert "Cannot post to channel *readings*" in alerts[0] and "Feed *Down* has been failing" in alerts[1]


def test_alerts_switched_on_by_a_live_edit(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/down.xml", b"", status=500)
    feeds = [{"name": "Down", "url": feed_server.url("/down.xml"), "channels": ["readings"], "interval": "1s"}]
    relay.configure(channels={"readings": {"slack": "#readings"}}, feeds=feeds)
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits("/down.xml") >= 2, timeout=20)
        assert fake_slack.posts == []
        relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "0s"}, feeds=feeds)
        wait_until(lambda: fake_slack.messages("#ops"), timeout=20)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    [alert] = texts(fake_slack)
    assert "Feed *Down* has been failing" in alert


def test_a_broken_live_edit_is_alerted_once_without_quoting_the_file(relay: Relay, feed_server: FeedServer,
                                                                     fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(1)))
    feeds = [{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "interval": "1h"}]
    relay.configure(channels=CHANNELS, alerts={"channel": "ops"}, feeds=feeds)
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits("/f.xml") >= 1, timeout=20)
        relay.config.write_text(relay.config.read_text() + '\n[slack]\ntoken = "xoxb-pasted-by-mistake"\n')
        wait_until(lambda: fake_slack.messages("#ops"), timeout=20)
        daemon.proc.send_signal(signal.SIGHUP)  # the same bad file again: no second alert
        wait_until(lambda: daemon.log().count("config change ignored") >= 2, timeout=20)
        time.sleep(1.5)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    [alert] = texts(fake_slack)
    assert "An edit to `feeds.toml` was not applied" in alert and "feedrelay check" in alert
    assert "pasted-by-mistake" not in json.dumps([p.blocks for p in fake_slack.posts])
    assert "slack.token: unknown key" in result.err  # the log has the error itself


def test_once_delivers_an_alert_queued_after_the_alerts_channel_had_its_turn(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    # The alerts channel has work of its own (a failing feed's alert) and finishes it quickly; #readings fails
    # later, slowly. Its alert must still go out in the same run.
    fake_slack.unknown_channels.add("#readings")
    fake_slack.script([("delay", 1.0)], channel="#readings")
    feed_server.set("/ok.xml", rss(make_items(2)))
    feed_server.set("/down.xml", b"", status=500)
    relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "0s"}, feeds=[
        {"name": "Down", "url": feed_server.url("/down.xml"), "channels": ["readings"]},
        {"name": "Blog", "url": feed_server.url("/ok.xml"), "channels": ["readings"], "backlog": 2},
    ])
    assert relay("once").code == 1
    alerts = texts(fake_slack)
    assert len(alerts) == 2
    assert "Feed *Down* has been failing" in alerts[0] and "Cannot post to channel *readings*" in alerts[1]


def test_every_runbook_section_an_alert_links_to_exists() -> None:
    from feedrelay.runtime import alerts

    text = (Path(__file__).resolve().parent.parent / alerts.RUNBOOKS).read_text()
    # GitHub's anchors: lower case, punctuation dropped, spaces to hyphens.
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for section in (alerts.FEED_FAILING, alerts.CHANNEL_FAILING, alerts.CONFIG_REJECTED):
        assert section in anchors, f"{alerts.RUNBOOKS} has no section #{section}"


@pytest.mark.parametrize("error", ["channel_not_found", "action_prohibited", "channel_is_archived"])
def test_a_refused_webhook_gets_advice_for_a_webhook(tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack,
                                                     error: str) -> None:
    # A webhook posts to the one channel it was made for: no name in feeds.toml, no bot to invite.
    relay = Relay(tmp_path, fake_slack.api_url, extra_env={"TEAM_HOOK": fake_slack.webhook_url("team")})
    feed_server.set("/f.xml", rss(make_items(1)))
    relay.configure(channels={"team": {"webhook_env": "TEAM_HOOK"}, "ops": {"slack": "#ops"}},
                    alerts={"channel": "ops"},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["team"], "backlog": 1}])
    fake_slack.script([("error", error)], channel="webhook:team")
    assert relay("once").code == 1
    [alert] = texts(fake_slack)
    status = relay("status").out
    for text in (alert, status):
        hint = text.split(f"{error} (", 1)[1].split(")", 1)[0]
        assert "webhook" in hint and "feeds.toml" not in hint and "bot" not in hint


def test_a_channel_that_delivers_nothing_for_a_while_is_alerted_and_its_recovery_too(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    """An error Slack does not document (or an outage of one channel) is retried, as it may pass; once nothing has
    been delivered for `feed_failing_after`, the operator hears of it, even from `once` under cron."""
    feed_server.set("/f.xml", rss(make_items(1)))
    relay.configure(channels=CHANNELS, alerts={"channel": "ops", "feed_failing_after": "4s"},
                    feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 1}])
    fake_slack.script([("error", "some_new_error")] * 50, channel="#readings")
    first = relay("once", "--max-wait", "2s")
    assert first.code == 1 and texts(fake_slack) == []  # a blip is not news
    time.sleep(2.5)
    second = relay("once", "--max-wait", "4s")  # a new process: it reads since when from the database
    assert second.code == 1
    [alert] = texts(fake_slack)
    assert "Cannot post to channel *readings* (Slack #readings): some_new_error (nothing delivered for" in alert
    assert "FAILING: some_new_error" in relay("status").out
    fake_slack.unscript()
    assert relay("once").code == 0
    assert len(fake_slack.messages("#readings")) == 1
    alerts = texts(fake_slack)
    assert len(alerts) == 2 and "Channel *readings* takes messages again" in alerts[1]
