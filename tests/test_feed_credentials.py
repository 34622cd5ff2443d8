"""A feed's own headers and basic auth (issue #16) stay with the feed's origin: canary values go through `check`,
`once`, a redirect to another origin, `status`, `preview`, the daemon and its /metrics, all at -vv, and every
byte the second origin received, every line of output, the metrics and the database are searched for them."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import httpx

from tests.cli import Relay, wait_until
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer, redirect_to
from tests.test_metrics import free_port, samples

_RANDOM = secrets.token_hex(6)
TOKEN = f"svc-CANARY-{_RANDOM}"
USER = f"reader-{_RANDOM}"
PASSWORD = f"pw-CANARY-{_RANDOM}"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BROKEN = f"broken-CANARY-{_RANDOM}"  # held with a line break in it: refused, and never quoted
AGENT = "ExampleReader/2.0 (+https://example.com/bot)"


def test_a_feeds_headers_and_credentials_never_leave_its_origin(tmp_path: Path, fake_slack: FakeSlack) -> None:
    with FeedServer() as home, FeedServer() as elsewhere:
        # The publisher moved the feed to another host (here: another port, so another origin).
        home.set_handler("/feed.xml", redirect_to(elsewhere.url("/feed.xml")))
        elsewhere.set("/feed.xml", rss(make_items(2)))
        home.set("/other.xml", rss(make_items(1)))
        port = free_port()
        relay = Relay(tmp_path, fake_slack.api_url, extra_env={
            "SVC_TOKEN": TOKEN, "FEED_USER": USER, "FEED_PASSWORD": PASSWORD + "\n", "BROKEN_TOKEN": BROKEN + "\nX: 1"})
        relay.configure(metrics={"listen": f"127.0.0.1:{port}"}, feeds=[
            {"name": "Intranet", "url": home.url("/feed.xml"), "channels": ["readings"], "backlog": 1,
             "interval": "2s", "headers": {"X-Service-Token": {"env": "SVC_TOKEN"}},
             "auth": {"username_env": "FEED_USER", "password_env": "FEED_PASSWORD"}, "user_agent": AGENT},
            {"name": "Broken", "url": home.url("/other.xml"), "channels": ["readings"], "interval": "2s",
             "headers": {"X-Service-Token": {"env": "BROKEN_TOKEN"}}},
            {"name": "Unset", "url": home.url("/other.xml"), "channels": ["readings"], "interval": "2s",
             "headers": {"X-Service-Token": {"env": "UNSET_TOKEN"}}},
        ])
        outputs: dict[str, str] = {}
        check = relay("-vv", "check")
        outputs["check"] = check.output
        assert check.code == 0, check.output
        assert "note: $UNSET_TOKEN is not set: feed(s) 'Unset' fail until it is" in check.err

        daemon = relay.start("-vv")
        try:
            wait_until(lambda: any("Post 1" in (p.text or "") for p in fake_slack.posts), timeout=30)
            status = wait_until(lambda: _failed_twice(relay("status", "--json").out), timeout=30)
            with httpx.Client(trust_env=False, timeout=10) as client:
                metrics = wait_until(lambda: _scrape(client, port), timeout=20)
        finally:
            outputs["run"] = daemon.stop().output
        outputs["metrics"] = metrics
        outputs["status --json"] = json.dumps(status)
        up = samples(metrics)
        assert up['feedrelay_feed_up{feed="Intranet"}'] == 1 and up['feedrelay_feed_up{feed="Broken"}'] == 0
        assert "holds a line break" in json.dumps(status["Broken"]) and "$BROKEN_TOKEN" in json.dumps(status["Broken"])
        assert "$UNSET_TOKEN is not set" in json.dumps(status["Unset"])

    # The values were really sent, to the feed's own origin, and the User-Agent followed the redirect.
    sent = [r.headers for r in home.requests if r.path == "/feed.xml"]
    assert sent and all(h.get("x-service-token") == TOKEN for h in sent)
    assert all(h.get("authorization") == f"Basic {BASIC}" and h.get("user-agent") == AGENT for h in sent)
    assert all(r.headers.get("user-agent") == AGENT for r in elsewhere.requests)
    canaries = {"header value": TOKEN, "password": PASSWORD, "basic auth token": BASIC, "refused value": BROKEN}
    for request in elsewhere.requests:
        assert USER not in json.dumps(request.headers)
        for what, canary in canaries.items():
            assert canary not in json.dumps(request.headers), f"the {what} went to the redirect's origin: {request}"
    for scenario, text in outputs.items():
        assert "Traceback" not in text, f"`{scenario}`: {text}"
        for what, canary in canaries.items():
            assert canary not in text, f"the {what} leaked in `{scenario}`"
    for f in tmp_path.glob("feedrelay.db*"):
        for what, canary in canaries.items():
            assert canary.encode() not in f.read_bytes(), f"the {what} is stored in {f.name}"


def _failed_twice(status_json: str) -> dict[str, dict[str, object]] | None:
    """The feeds' rows once Broken and Unset have both failed (their first polls are spread over 2 s)."""
    feeds = {row["feed"]: row for row in json.loads(status_json)["feeds"]}
    return feeds if all(feeds[name].get("error") for name in ("Broken", "Unset")) else None


def _scrape(client: httpx.Client, port: int) -> str | None:
    try:
        response = client.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.TransportError:
        return None  # not listening yet
    return response.text if response.status_code == 200 else None
