"""GitHub advisories (`type = "ghsa"`): through the CLI against a loopback GitHub and the fake Slack, on real
advisories."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from feedrelay.config import Filter
from feedrelay.decide.filters import evaluate
from feedrelay.ingest.fetch import Fetcher
from feedrelay.render import render
from feedrelay.sources import ghsa as ghsa_module
from feedrelay.sources.ghsa import GHSASource, advisory_item
from tests.cli import Relay
from tests.ghsa_server import FakeGitHub, advisory, fixture_advisories
from tests.nvd_server import FakeNVD, synthetic
from tests.servers import FakeSlack, FeedServer

TOKEN = "ghp_canaryTOKEN0123456789abcdefABCDEF0000"
SECURITY = {"security": {"slack": "#security", "min_interval": "0s"}}
DJANGO = "GHSA-rf4j-j272-fj86"


def ghsa_feed(url: str, **extra: object) -> dict[str, object]:
    return {"name": "GitHub advisories", "type": "ghsa", "url": url, "token_env": "GITHUB_TOKEN",
            "channels": ["security"], **extra}


def fresh(ghsa_id: str, updated: str = "2026-11-30T10:00:00Z", **changes: Any) -> dict[str, Any]:
    """A real advisory as GitHub returns it once it is updated again (a new updated_at)."""
    return {**advisory(ghsa_id), "updated_at": updated, **changes}


def posted_ids(slack: FakeSlack) -> list[str]:
    return [json.dumps(p.blocks).split("GHSA-")[1][:14] if "GHSA-" in json.dumps(p.blocks) else "?"
            for p in slack.posts]


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url, extra_env={"GITHUB_TOKEN": TOKEN})


def test_first_poll_remembers_then_pip_route_posts_only_pip_advisories(relay: Relay, feed_server: FeedServer,
                                                                       fake_slack: FakeSlack) -> None:
    github = FakeGitHub(feed_server, fixture_advisories(), page_size=2, token=TOKEN)
    relay.configure(channels=SECURITY, feeds=[ghsa_feed(github.url, ecosystems=["pip"])])
    first = relay("once")
    assert first.code == 0, first.output
    assert fake_slack.posts == []  # the newest page is remembered, not posted
    assert github.queries[0]["direction"] == "desc" and github.queries[0]["type"] == "reviewed"
    assert github.headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert github.headers[0]["x-github-api-version"] == "2022-11-28"

    # GitHub updates all three reviewed advisories (two npm, one pip): they come back, across pages.
    github.advisories = [fresh("GHSA-29mw-wpgm-hmr9", "2026-11-30T10:00:00Z"),
                         fresh(DJANGO, "2026-11-30T11:00:00Z"),
                         fresh("GHSA-35jh-r3h4-6jhm", "2026-11-30T12:00:00Z")]
    github.queries.clear()
    second = relay("once")
    assert second.code == 0, second.output
    assert [q.get("after") is not None for q in github.queries] == [False, True]  # followed the Link cursor
    assert github.queries[0]["direction"] == "asc" and github.queries[0]["updated"].startswith(">=")
    assert len(fake_slack.posts) == 1  # only the pip advisory: lodash is npm
    text = json.dumps(fake_slack.posts[0].blocks)
    assert DJANGO in text and "CVE-2018-6188" in text and "django" in text
    assert "&gt;= 2.0.0, &lt; 2.0.2" in text and "patched in *2.0.2*" in text and "1.11.10" in text
    assert "High 7.5 (CVSS 3.0, GitHub score)" in text
    assert TOKEN not in relay("status").output + second.output + first.output

    assert relay("once").code == 0
    assert len(fake_slack.posts) == 1  # seen again in the overlap: not posted again


def test_an_advisory_for_a_cve_nvd_posted_is_a_thread_follow_up_not_a_second_post(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    nvd = FakeNVD(feed_server, [synthetic("CVE-2018-6188", description="Django AuthenticationForm exposure.")])
    github = FakeGitHub(feed_server, [advisory("GHSA-29mw-wpgm-hmr9")], token=TOKEN)
    relay.configure(channels=SECURITY, feeds=[
        {"name": "NVD", "type": "nvd", "url": nvd.url, "channels": ["security"]}, ghsa_feed(github.url)])
    assert relay("once").code == 0  # both first polls: nothing posted
    assert relay("once").code == 0, "NVD posts the CVE"
    assert [p.thread_ts for p in fake_slack.posts] == [None]
    parent = fake_slack.posts[0]
    assert "CVE-2018-6188" in json.dumps(parent.blocks)

    github.advisories.append(fresh(DJANGO))
    result = relay("once")
    assert result.code == 0, result.output
    assert len(fake_slack.posts) == 2
    reply = fake_slack.posts[1]
    assert reply.thread_ts == parent.ts  # one story: GitHub's packages in the CVE's thread
    text = json.dumps(reply.blocks)
    assert "GitHub advisory GHSA-rf4j-j272-fj86" in text and "pip django &gt;= 2.0.0, &lt; 2.0.2 (patched in 2.0.2)" \
        in text

    # GitHub touches the advisory again without changing what it says: nothing more.
    github.advisories[-1] = fresh(DJANGO, "2026-11-30T12:00:00Z", summary="Django: information exposure")
    assert relay("once").code == 0
    assert len(fake_slack.posts) == 2
    # A patched version for a range that had none is news.
    changed = fresh(DJANGO, "2026-11-30T13:00:00Z")
    changed["vulnerabilities"] = [*changed["vulnerabilities"], {"package": {"ecosystem": "pip", "name": "django"},
                                                                "vulnerable_version_range": "< 1.11.8",
                                                                "first_patched_version": None}]
    github.advisories[-1] = changed
    assert relay("once").code == 0
    assert len(fake_slack.posts) == 3 and fake_slack.posts[2].thread_ts == parent.ts
    assert "pip django &lt; 1.11.8 (no patched version yet)" in json.dumps(fake_slack.posts[2].blocks)


def test_withdrawn_advisory_is_never_posted_and_a_posted_one_gets_a_reply(relay: Relay, feed_server: FeedServer,
                                                                          fake_slack: FakeSlack) -> None:
    github = FakeGitHub(feed_server, [advisory("GHSA-29mw-wpgm-hmr9")], token=TOKEN)
    relay.configure(channels=SECURITY, feeds=[ghsa_feed(github.url)])
    assert relay("once").code == 0
    github.advisories = [fresh(DJANGO, "2026-11-30T10:00:00Z"),
                         fresh("GHSA-35jh-r3h4-6jhm", "2026-11-30T10:00:00Z", withdrawn_at="2026-11-30T10:00:00Z")]
    assert relay("once").code == 0
    assert len(fake_slack.posts) == 1 and DJANGO in json.dumps(fake_slack.posts[0].blocks)
    github.advisories = [fresh(DJANGO, "2026-11-30T11:00:00Z", withdrawn_at="2026-11-30T11:00:00Z")]
    assert relay("once").code == 0
    assert len(fake_slack.posts) == 2 and fake_slack.posts[1].thread_ts == fake_slack.posts[0].ts
    assert "GitHub withdrew advisory GHSA-rf4j-j272-fj86" in json.dumps(fake_slack.posts[1].blocks)


def _poll_once_then(relay: Relay, github: FakeGitHub, *failure: tuple[int, dict[str, str], bytes]) -> str:
    assert relay("once").code == 0
    github.advisories = [fresh(DJANGO)]
    github.failures.extend(failure)
    result = relay("once")
    assert result.code == 1, result.output
    assert TOKEN not in result.output + relay("status").output
    return result.err


@pytest.mark.parametrize("failure, expected", [
    ((403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1800)}, b'{"message":"API'
      b' rate limit exceeded"}'), "rate limit reached (HTTP 403); it resets at"),
    ((429, {"Retry-After": "120"}, b"{}"), "rate limit reached (HTTP 429)"),
    ((503, {}, b"<html>unavailable</html>"), "GitHub advisories: HTTP 503"),
    ((422, {}, b'{"message":"Validation Failed"}'), "check the feed's url (it should end in /advisories)"),
    ((401, {}, b'{"message":"Bad credentials"}'), "GitHub rejected the token in $GITHUB_TOKEN"),
    ((200, {}, b"{not json"), "GitHub advisories: the answer is not JSON"),
    ((200, {}, b'{"message": "Moved"}'), "the answer is not a list of advisories: Moved"),
    ((200, {}, b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
])
def test_hostile_answers_are_one_clear_error_naming_the_feed(relay: Relay, feed_server: FeedServer,
                                                             failure: tuple[int, dict[str, str], bytes],
                                                             expected: str) -> None:
    github = FakeGitHub(feed_server, [advisory("GHSA-29mw-wpgm-hmr9")], token=TOKEN)
    relay.configure(channels=SECURITY, feeds=[ghsa_feed(github.url)])
    err = _poll_once_then(relay, github, failure)
    assert "GitHub advisories" in err and expected in err
    assert "Traceback" not in err


def test_rate_limit_without_a_token_advises_token_env(tmp_path: Path, feed_server: FeedServer,
                                                      fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url)  # GITHUB_TOKEN not set
    github = FakeGitHub(feed_server, [advisory("GHSA-29mw-wpgm-hmr9")])
    relay.configure(channels=SECURITY, feeds=[ghsa_feed(github.url)])
    err = _poll_once_then(relay, github, (403, {"x-ratelimit-remaining": "0",
                                                "x-ratelimit-reset": str(int(time.time()) + 600)}, b"{}"))
    assert "$GITHUB_TOKEN is not set, so GitHub allows 60 requests an hour" in err
    assert "authorization" not in github.headers[0]
    again = relay("once")  # the feed waits for the reset, as GitHub asked
    assert again.code == 0 and len(github.queries) == 2


def test_huge_pages_and_links_to_another_host_are_refused(relay: Relay, feed_server: FeedServer) -> None:
    github = FakeGitHub(feed_server, [advisory("GHSA-29mw-wpgm-hmr9")], page_size=1, token=TOKEN)
    relay.configure(channels=SECURITY, feeds=[ghsa_feed(github.url)], defaults={"max_body": "100KB"})
    assert relay("once").code == 0
    github.advisories = [fresh(DJANGO), fresh("GHSA-35jh-r3h4-6jhm", "2026-11-30T11:00:00Z")]
    github.next_host = "attacker.example:80"
    result = relay("once")
    assert result.code == 1
    assert "the next page's link points to attacker.example" in result.err and "not followed" in result.err
    github.next_host = None
    github.failures.append((200, {}, b"[" + b'{"ghsa_id": "x"},' * 20_000 + b"{}]"))
    result = relay("once")
    assert result.code == 1 and "GitHub advisories" in result.err and "Traceback" not in result.err


def test_a_catch_up_is_read_in_parts_resuming_at_the_cursor(feed_server: FeedServer, fake_slack: FakeSlack,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ghsa_module, "MAX_PAGES", 1)
    github = FakeGitHub(feed_server, [fresh(DJANGO, "2026-11-30T10:00:00Z"),
                                      fresh("GHSA-29mw-wpgm-hmr9", "2026-11-30T11:00:00Z"),
                                      fresh("GHSA-35jh-r3h4-6jhm", "2026-11-30T12:00:00Z")], page_size=2)
    feed = _feed(github.url)

    async def run() -> list[Any]:
        async with Fetcher() as fetcher:
            source = GHSASource(feed, fetcher, environ={})
            state = {"watermark": "2026-11-29T00:00:00+00:00"}
            first = await source.poll(state)
            second = await source.poll(first.state)
            return [first, second]

    first, second = asyncio.run(run())
    assert first.more and [i.key for i in first.items] == [DJANGO, "GHSA-29mw-wpgm-hmr9"]
    assert not second.more and [i.key for i in second.items] == ["GHSA-35jh-r3h4-6jhm"]
    assert "after" in github.queries[1]  # resumed at the saved cursor, not from the watermark again
    assert second.state["watermark"].startswith("2026-11-30T12:00")


def _feed(url: str, **route: Any) -> Any:
    from feedrelay.config import parse_config

    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in route.items())
    text = (f'[channels.security]\nconsole = true\n[[feeds]]\nname = "GitHub"\ntype = "ghsa"\nurl = "{url}"\n'
            f'channels = ["security"]\n{extra}')
    return parse_config(text, "feeds.toml", environ={}).feeds[0]


def test_filters_on_packages_ecosystems_and_severity() -> None:
    items = {a["ghsa_id"]: advisory_item(a) for a in fixture_advisories()}
    django, lodash = items[DJANGO], items["GHSA-35jh-r3h4-6jhm"]
    assert django is not None and lodash is not None
    assert evaluate(Filter(ecosystems=("pip",)), django).passed
    assert not evaluate(Filter(ecosystems=("npm", "go")), django).passed
    assert evaluate(Filter(packages=("lodash",)), lodash).passed and not evaluate(Filter(packages=("lodash",)),
                                                                                  django).passed
    assert evaluate(Filter(products=("django",)), django).passed  # package names are the products
    assert evaluate(Filter(min_severity="high"), lodash).passed and lodash.extra["score"] == 7.2
    assert not evaluate(Filter(min_score=8.0), django).passed
    withdrawn = items["GHSA-8p5q-j9m2-g8wr"]
    assert withdrawn is not None and evaluate(Filter(), withdrawn).reason == "excluded: withdrawn by GitHub"
    # An advisory with missing or wrongly typed fields is kept as far as it goes, never a crash.
    sparse = advisory_item({"ghsa_id": DJANGO, "vulnerabilities": [None, {"package": {"name": 3}}],
                            "cvss_severities": "x", "cwes": [1], "references": [{}]})
    assert sparse is not None and sparse.extra["severity"] is None and sparse.extra["packages"] == []
    assert advisory_item({"ghsa_id": "<!channel>"}) is None


def test_message_escapes_hostile_advisory_text() -> None:
    hostile = fresh(DJANGO, summary="<!channel> pwn <https://evil.example|github.com>",
                    description="<@U123> see <javascript:alert(1)|here>")
    hostile["vulnerabilities"][0]["package"]["name"] = "<!here>"
    item = advisory_item(hostile)
    assert item is not None
    message = render(item, "GitHub")
    text = json.dumps([message.text, message.blocks])  # what Slack gets (the terminal's plain text is not sent)
    for raw in ("<!channel>", "<@U123>", "<!here>", "<javascript:", "<https://evil.example"):
        assert raw not in text


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    relay = Relay(tmp_path, api_url=None, token=None)
    relay.configure(channels=SECURITY, feeds=[ghsa_feed("https://api.github.com/advisories",
                                                        ecosystems=["pypi"])])
    result = relay("check")
    assert result.code == 2
    assert "feeds[0].ecosystems[0]: unknown ecosystem 'pypi'; GitHub's ecosystems are actions, composer" in result.err
    relay.configure(channels=SECURITY, feeds=[{"name": "NVD", "type": "nvd", "channels": ["security"],
                                               "packages": ["django"]}])
    result = relay("check")
    assert result.code == 2 and 'feeds[0].packages: applies to GitHub advisory feeds only (type = "ghsa")' \
        in result.err
    relay.configure(channels=SECURITY, feeds=[{"name": "NVD", "type": "nvd", "channels": ["security"],
                                               "token_env": "GITHUB_TOKEN"}])
    result = relay("check")
    assert result.code == 2 and "feeds[0].token_env: only GitHub advisory feeds" in result.err
    relay.configure(channels=SECURITY, feeds=[ghsa_feed("https://api.github.com/advisories", token_env=TOKEN)])
    result = relay("check")
    assert result.code == 2 and "must name an environment variable" in result.err and TOKEN not in result.output
    relay.configure(channels=SECURITY, feeds=[{"name": "GitHub", "type": "ghsa", "channels": ["security"],
                                               "token_env": "GITHUB_TOKEN"}])
    result = relay("check")
    assert result.code == 0 and "$GITHUB_TOKEN is not set" in result.err and "fail until" not in result.err
