"""The test servers themselves behave like the real thing."""

from __future__ import annotations

from collections.abc import Iterator

import feedparser
import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.feedgen import atom, make_items, rss
from tests.servers import FakeSlack, FeedServer


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def test_etag_revalidation(feed_server: FeedServer, http: httpx.Client) -> None:
    feed_server.set("/feed.xml", rss(make_items(3)))
    first = http.get(feed_server.url("/feed.xml"))
    assert first.status_code == 200
    etag = first.headers["etag"]

    again = http.get(feed_server.url("/feed.xml"), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""

    feed_server.set("/feed.xml", rss(make_items(4)))
    changed = http.get(feed_server.url("/feed.xml"), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert feed_server.hits("/feed.xml") == 3
    assert feed_server.requests[1].headers["if-none-match"] == etag


def test_last_modified_revalidation(feed_server: FeedServer, http: httpx.Client) -> None:
    feed_server.set("/feed.xml", rss(make_items(1)), etag=False)
    stamp = http.get(feed_server.url("/feed.xml")).headers["last-modified"]

    again = http.get(feed_server.url("/feed.xml"), headers={"If-Modified-Since": stamp})
    assert again.status_code == 304

    feed_server.set("/feed.xml", rss(make_items(1)), etag=False)  # same body: same date
    assert http.get(feed_server.url("/feed.xml")).headers["last-modified"] == stamp
    feed_server.set("/feed.xml", rss(make_items(2)), etag=False)  # new body: later date
    changed = http.get(feed_server.url("/feed.xml"), headers={"If-Modified-Since": stamp})
    assert changed.status_code == 200 and changed.headers["last-modified"] != stamp


def test_unknown_path_and_custom_handler(feed_server: FeedServer, http: httpx.Client) -> None:
    def redirect(handler):  # type: ignore[no-untyped-def]
        handler.send_response(302)
        handler.send_header("Location", "/feed.xml")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    feed_server.set("/feed.xml", atom(make_items(2)), content_type="application/atom+xml")
    feed_server.set_handler("/old", redirect)
    assert http.get(feed_server.url("/missing")).status_code == 404
    moved = http.get(feed_server.url("/old"), follow_redirects=True)
    assert moved.status_code == 200
    assert [e.id for e in feedparser.parse(moved.content).entries] == ["post-1", "post-0"]


def test_feedgen_round_trips_through_feedparser() -> None:
    items = make_items(2, start=5)
    items[0] |= {"description": "<p>a & b <script>x</script></p>", "categories": ["sec"], "author": "Ann"}
    parsed = feedparser.parse(rss(items))
    assert not parsed.bozo
    first = parsed.entries[0]
    assert (first.id, first.title, first.link) == ("post-6", "Post 6", "http://example.com/posts/6")
    assert "a & b" in first.summary and first.tags[0].term == "sec" and first.author == "Ann"
    assert parsed.entries[0].published_parsed > parsed.entries[1].published_parsed


def test_rate_limit_then_success(fake_slack: FakeSlack) -> None:
    fake_slack.script([("429", 1)], channel="#news")
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="#news", text="hello")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "1"
    assert raised.value.response["error"] == "ratelimited"

    ok = client.chat_postMessage(channel="#news", text="hello", blocks=[{"type": "divider"}])
    assert ok["ok"] and ok["ts"] == fake_slack.posts[0].ts
    assert fake_slack.messages("#news")[0].blocks == [{"type": "divider"}]
    assert [(a.outcome, a.scripted, a.retry_after) for a in fake_slack.attempts] == [
        ("ratelimited", True, 1.0),
        ("ok", False, None),
    ]


def test_form_body_and_increasing_ts(fake_slack: FakeSlack, http: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {fake_slack.token}"}
    data = {"channel": "C1", "text": "hi", "blocks": '[{"type": "divider"}]'}
    answers = [http.post(fake_slack.api_url + "chat.postMessage", data=data, headers=headers) for _ in "ab"]
    first, second = (a.json() for a in answers)
    assert first["ok"] and float(second["ts"]) > float(first["ts"])
    assert fake_slack.posts[0].blocks == [{"type": "divider"}]


def test_invalid_auth_and_unknown_channel(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        WebClient(token="xoxb-wrong", base_url=fake_slack.api_url).chat_postMessage(channel="C1", text="x")
    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == "invalid_auth"

    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)
    assert client.auth_test()["team_id"] == "T0TEST"
    fake_slack.unknown_channels.add("C404")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.chat_postMessage(channel="C404", text="x")
    assert fake_slack.posts == []


def test_webhook(fake_slack: FakeSlack) -> None:
    response = WebhookClient(fake_slack.webhook_url("alerts")).send(text="hello")
    assert (response.status_code, response.body) == (200, "ok")
    assert fake_slack.messages("webhook:alerts")[0].text == "hello"

    fake_slack.unknown_webhooks.add("gone")
    response = WebhookClient(fake_slack.webhook_url("gone")).send(text="hello")
    assert (response.status_code, response.body) == (404, "no_service")


def test_outage_drop_and_wait(fake_slack: FakeSlack, http: httpx.Client) -> None:
    url = fake_slack.webhook_url("w")
    fake_slack.outage(503)
    assert http.post(url, json={"text": "x"}).status_code == 503
    fake_slack.outage(None)

    fake_slack.script([("drop",), ("delay", 0.05)])
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(url, json={"text": "x"})
    assert http.post(url, json={"text": "x"}).text == "ok"
    assert len(fake_slack.wait_for_posts(1, timeout=1)) == 1
    assert [a.outcome for a in fake_slack.attempts] == ["outage", "dropped", "ok"]
