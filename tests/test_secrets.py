"""Secrets never leak: a canary bot token, canary webhook URLs and a canary NVD API key go through every
main path (posting, a 429, channel_not_found, invalid_auth, a revoked webhook, feed errors, status, check,
retry, preview, -vv debug logging of feedrelay, slack_sdk and httpx, the daemon with a reload and
SIGTERM); every byte of output, and the database, is searched for each canary."""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.cli import Relay, Result, wait_until
from tests.feedgen import make_items, rss
from tests.nvd_server import PATH, FakeNVD, fixture_records
from tests.servers import FakeSlack, FeedServer

_RANDOM = secrets.token_hex(8)
TOKEN = f"xoxb-CANARY-{_RANDOM}-bot"
HOOK = "canary-hook-XYZ"  # the secret part of a webhook URL is its path
DEAD_HOOK = "canary-hook-XYZ-revoked"
NVD_KEY = f"nvd-CANARY-{_RANDOM}-key"


@dataclass
class World:
    dir: Path
    slack: FakeSlack
    feeds: FeedServer
    nvd: FakeNVD
    relay: Relay
    captures: dict[str, str] = field(default_factory=dict)  # scenario -> everything it printed
    results: dict[str, Result] = field(default_factory=dict)

    def record(self, name: str, result: Result) -> Result:
        self.captures[name] = result.output
        self.results[name] = result
        return result

    @property
    def canaries(self) -> dict[str, str]:
        return {
            "bot token": TOKEN,
            "bot token body": TOKEN.removeprefix("xoxb-"),
            "webhook URL": self.slack.webhook_url(HOOK),
            "webhook path": HOOK,
            "revoked webhook URL": self.slack.webhook_url(DEAD_HOOK),
            "NVD API key": NVD_KEY,
            "NVD API key body": NVD_KEY.removeprefix("nvd-"),
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("secrets")
    with FakeSlack(token=TOKEN) as slack, FeedServer() as feeds:
        nvd = FakeNVD(feeds, fixture_records(), api_key=NVD_KEY)
        relay = Relay(tmp, slack.api_url, token=TOKEN, extra_env={
            "TEAM_HOOK": slack.webhook_url(HOOK), "DEAD_HOOK": slack.webhook_url(DEAD_HOOK), "NVD_API_KEY": NVD_KEY})
        slack.unknown_channels.add("#gone")
        slack.unknown_webhooks.add(DEAD_HOOK)
        feeds.set("/blog.xml", rss(make_items(3)))
        targets = ["readings", "gone", "locked", "hook", "deadhook"]
        relay.configure(
            channels={
                "readings": {"slack": "#readings", "min_interval": "0s"},
                "gone": {"slack": "#gone", "min_interval": "0s"},
                "locked": {"slack": "#locked", "min_interval": "0s"},
                "hook": {"webhook_env": "TEAM_HOOK", "min_interval": "0s"},
                "deadhook": {"webhook_env": "DEAD_HOOK", "min_interval": "0s"},
            },
            feeds=[
                {"name": "NVD", "type": "nvd", "url": nvd.url, "api_key_env": "NVD_API_KEY", "channels": ["readings"],
                 "backlog": 2, "interval": "2s"},
                {"name": "Blog", "url": feeds.url("/blog.xml"), "channels": targets, "backlog": 3, "interval": "2s"},
                {"name": "Missing", "url": feeds.url("/missing.xml") + "?token=feed-url-query-secret",
                 "channels": ["readings"], "interval": "2s"},
            ],
            # Alerts carry error texts and channel descriptions to Slack: they must not carry secrets either.
            alerts={"channel": "readings", "feed_failing_after": "0s"},
        )
        w = World(tmp, slack, feeds, nvd, relay)

        # Posts, a 429, channel_not_found, invalid_auth, a revoked webhook, a 404 feed; all at -vv.
        slack.script([("429", 1)], channel="#readings")
        slack.script([("error", "invalid_auth")], channel="#locked")
        w.record("once -vv", relay("-vv", "once"))

        # The NVD feed fails (503 three times, with the key sent each time); a 429 on the webhook.
        nvd.failures.extend([503, 503, 503])
        feeds.set("/blog.xml", rss(make_items(1, start=3) + make_items(3)))
        slack.script([("429", 1)], channel=f"webhook:{HOOK}")
        w.record("once -vv, NVD failing", relay("-vv", "once"))
        w.record("once (default logging)", relay("once"))

        for args in (("status",), ("status", "--json"), ("-vv", "status"), ("check",), ("-vv", "check"),
                     ("-vv", "retry"), ("-vv", "preview", "NVD"), ("-vv", "preview", "Blog")):
            w.record(" ".join(args), relay(*args))

        # The daemon at -vv: polls, posts through both sinks, reloads its config on SIGHUP (which rebuilds
        # the sinks and the log redaction), posts again, and stops on SIGTERM.
        daemon = relay.start("-vv")
        try:
            feeds.set("/blog.xml", rss(make_items(2, start=3) + make_items(3)))
            wait_until(lambda: any("Post 4" in (p.text or "") for p in slack.messages(f"webhook:{HOOK}")), timeout=20)
            relay.config.write_text(relay.config.read_text().replace('slack = "#locked"', 'slack = "#locked2"'))
            daemon.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in daemon.log(), timeout=20)
            feeds.set("/blog.xml", rss(make_items(3, start=3) + make_items(3)))
            wait_until(lambda: any("Post 5" in (p.text or "") for p in slack.messages(f"webhook:{HOOK}")), timeout=20)
            time.sleep(0.5)
        finally:
            stopped = daemon.stop()
        w.record("daemon -vv run", stopped)
        yield w


SCENARIOS = ["once -vv", "once -vv, NVD failing", "once (default logging)", "status", "status --json",
             "-vv status", "check", "-vv check", "-vv retry", "-vv preview NVD", "-vv preview Blog", "daemon -vv run"]


def test_the_secrets_were_really_used(world: World) -> None:
    """Without this, a clean grep could mean the canaries never went anywhere."""
    attempts = world.slack.attempts
    outcomes = {(a.channel, a.outcome) for a in attempts}
    assert ("#readings", "ok") in outcomes and ("#readings", "ratelimited") in outcomes
    assert ("#gone", "channel_not_found") in outcomes
    assert ("#locked", "invalid_auth") in outcomes
    assert (f"webhook:{HOOK}", "ok") in outcomes and (f"webhook:{HOOK}", "ratelimited") in outcomes
    assert (f"webhook:{DEAD_HOOK}", "no_service") in outcomes
    assert any(p.channel == "#readings" and "CVE-" in (p.text or "") for p in world.slack.posts)  # NVD, with the key
    assert len(world.nvd.queries) >= 5
    out = world.captures
    assert "channel_not_found" in out["once -vv"] and "invalid_auth" in out["once -vv"]
    assert "HTTP 404" in out["once -vv"] and "NVD: HTTP 503" in out["once -vv, NVD failing"]
    for name in ("once -vv", "daemon -vv run"):
        assert " DEBUG " in out[name]
        assert "slack_sdk" in out[name] or "Sending a request" in out[name], "slack_sdk debug logging was not on"
        assert "HTTP Request: GET" in out[name], "httpx logging was not on"
    assert "configuration reloaded" in out["daemon -vv run"]
    assert "Traceback" not in "".join(out.values())
    alerts = [p.text or "" for p in world.slack.messages("#readings") if (p.text or "").startswith("feedrelay:")]
    assert any("feed Missing" in a for a in alerts) and any("feed NVD" in a for a in alerts)
    assert any("channel gone" in a for a in alerts) and any("channel deadhook" in a for a in alerts)


def test_no_secret_in_what_reaches_slack(world: World) -> None:
    for post in world.slack.posts:
        text = json.dumps([post.text, post.blocks])
        for what, canary in {**world.canaries, "feed URL query": "feed-url-query-secret"}.items():
            assert canary not in text, f"the {what} was posted to {post.channel}: …{_around(text, canary)}…"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_in_output(world: World, scenario: str) -> None:
    text = world.captures[scenario]
    for what, canary in world.canaries.items():
        assert canary not in text, f"the {what} leaked in `{scenario}`: …{_around(text, canary)}…"


def test_no_secret_in_the_database(world: World) -> None:
    files = list(world.dir.glob("feedrelay.db*"))
    assert files
    for f in files:
        data = f.read_bytes()
        for what, canary in world.canaries.items():
            assert canary.encode() not in data, f"the {what} is stored in {f.name}"


def test_status_shows_no_url_query(world: World) -> None:
    for scenario in ("status", "status --json", "-vv status"):
        assert "feed-url-query-secret" not in world.captures[scenario]
    rows = json.loads(world.results["status --json"].out)["feeds"]
    assert next(r for r in rows if r["feed"] == "Missing")["url"].endswith("/missing.xml?…")  # marked, never shown


def test_nvd_api_key_is_not_sent_to_another_host_on_redirect(tmp_path: Path, fake_slack: FakeSlack) -> None:
    """The key belongs to the configured NVD host. A redirect elsewhere (another origin: here another port)
    must not carry it along, as browsers and httpx drop Authorization on a cross-origin redirect."""
    with FeedServer() as configured, FeedServer() as elsewhere:
        FakeNVD(elsewhere, fixture_records())  # answers with or without a key

        def moved(h: BaseHTTPRequestHandler) -> None:
            h.send_response(302)
            h.send_header("Location", elsewhere.url(h.path))
            h.send_header("Content-Length", "0")
            h.end_headers()

        configured.set_handler(PATH, moved)
        relay = Relay(tmp_path, fake_slack.api_url, extra_env={"NVD_API_KEY": NVD_KEY})
        relay.configure(channels={"readings": {"slack": "#readings", "min_interval": "0s"}},
                        feeds=[{"name": "NVD", "type": "nvd", "url": configured.url(PATH),
                                "api_key_env": "NVD_API_KEY", "channels": ["readings"], "backlog": 1}])
        result = relay("once")
        assert "Traceback" not in result.output, result.output
        assert configured.requests and configured.requests[0].headers.get("apikey") == NVD_KEY
        assert elsewhere.requests, "the redirect was not followed"
        for request in elsewhere.requests:
            assert NVD_KEY not in json.dumps(request.headers), f"apiKey sent to {elsewhere.url()}: {request.headers}"


def _around(text: str, needle: str, width: int = 80) -> str:
    i = text.find(needle)
    return text[max(0, i - width): i + len(needle) + width]


def test_a_secret_with_a_trailing_newline_is_redacted_too(tmp_path: Path) -> None:
    # `kubectl create secret --from-file`, or an env file written with echo, leave a newline at the end; the
    # sinks strip it before use, so what a library logs is the stripped value and must be caught as such.
    hook = f"canary-hook-{secrets.token_hex(6)}"
    with FakeSlack() as slack, FeedServer() as feeds:
        relay = Relay(tmp_path, slack.api_url, extra_env={"TEAM_HOOK": slack.webhook_url(hook) + "\n"})
        feeds.set("/blog.xml", rss(make_items(1)))
        relay.configure(channels={"hook": {"webhook_env": "TEAM_HOOK", "min_interval": "0s"}},
                        feeds=[{"name": "Blog", "url": feeds.url("/blog.xml"), "channels": ["hook"], "backlog": 1}])
        result = relay("-vv", "once")
        assert result.code == 0, result.output
        assert len(slack.messages(f"webhook:{hook}")) == 1  # the secret was used
        assert hook not in result.output


def test_a_webhook_error_that_quotes_the_url_keeps_it_out_of_status_and_alerts(tmp_path: Path) -> None:
    # An egress proxy or a gateway in front of Slack answers an error page naming the request it refused; that
    # text would become the channel's error, kept in the database, shown by status and posted in an alert.
    hook = f"canary-hook-{secrets.token_hex(6)}"

    def proxy_refuses(h: BaseHTTPRequestHandler) -> None:
        body = f"Forbidden: POST {h.path}".encode()
        h.send_response(403)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with FakeSlack() as slack, FeedServer() as feeds:
        feeds.set_handler(f"/services/{hook}", proxy_refuses)
        relay = Relay(tmp_path, slack.api_url, extra_env={"TEAM_HOOK": feeds.url(f"/services/{hook}")})
        feeds.set("/blog.xml", rss(make_items(1)))
        relay.configure(channels={"hook": {"webhook_env": "TEAM_HOOK", "min_interval": "0s"},
                                  "ops": {"slack": "#ops", "min_interval": "0s"}},
                        alerts={"channel": "ops"},
                        feeds=[{"name": "Blog", "url": feeds.url("/blog.xml"), "channels": ["hook"], "backlog": 1}])
        result = relay("once")
        assert result.code == 1, result.output
        assert feeds.hits(f"/services/{hook}") == 1
        [alert] = slack.messages("#ops")
        assert "Cannot post to channel *hook*" in (alert.text or "") + json.dumps(alert.blocks)
        shown = result.output + relay("status").output + relay("status", "--json").output
        for text in (shown, json.dumps([alert.text, alert.blocks])):
            assert hook not in text
            assert "HTTP 403" in text
        for f in tmp_path.glob("feedrelay.db*"):
            assert hook.encode() not in f.read_bytes()
