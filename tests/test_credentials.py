"""Secrets as systemd credentials (LoadCredential=NAME:/path): systemd puts each in $CREDENTIALS_DIRECTORY/NAME,
and feedrelay reads it as the variable NAME. Run as the unit runs it: a real directory, the real CLI, a fake
Slack and a fake NVD that check the secrets they receive."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.cli import Relay
from tests.feedgen import make_items, rss
from tests.nvd_server import FakeNVD, fixture_records
from tests.servers import FakeSlack, FeedServer

_RANDOM = secrets.token_hex(6)
TOKEN = f"xoxb-CRED-{_RANDOM}"
HOOK = f"cred-hook-{_RANDOM}"
NVD_KEY = f"nvd-CRED-{_RANDOM}"


def _credentials(tmp_path: Path, values: dict[str, str]) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    for name, value in values.items():
        (directory / name).write_text(value)
        (directory / name).chmod(0o400)  # as systemd leaves them
    return directory


def test_token_webhook_and_api_key_from_credentials_are_used_and_redacted(tmp_path: Path) -> None:
    with FakeSlack(token=TOKEN) as slack, FeedServer() as feeds:
        nvd = FakeNVD(feeds, fixture_records(), api_key=NVD_KEY)
        feeds.set("/blog.xml", rss(make_items(1)))
        creds = _credentials(tmp_path, {
            "SLACK_BOT_TOKEN": TOKEN + "\n",  # written with echo
            "TEAM_HOOK": slack.webhook_url(HOOK),
            "NVD_API_KEY": NVD_KEY,
        })
        relay = Relay(tmp_path, slack.api_url, token=None, extra_env={"CREDENTIALS_DIRECTORY": str(creds)})
        relay.configure(
            channels={"readings": {"slack": "#readings", "min_interval": "0s"},
                      "hook": {"webhook_env": "TEAM_HOOK", "min_interval": "0s"}},
            feeds=[{"name": "Blog", "url": feeds.url("/blog.xml"), "channels": ["readings", "hook"], "backlog": 1},
                   {"name": "NVD", "type": "nvd", "url": nvd.url, "api_key_env": "NVD_API_KEY",
                    "channels": ["readings"], "backlog": 1}])
        check = relay("check", "--require-slack")
        assert check.code == 0, check.output
        assert "is not set" not in check.output
        result = relay("-vv", "once", "--require-slack")
        assert result.code == 0, result.output
        assert [p.text for p in slack.messages("webhook:" + HOOK)]  # the webhook URL from its credential
        # The token was accepted (the blog post), and so was the API key (FakeNVD answers 403 without it: a CVE).
        texts = [p.text or "" for p in slack.messages("#readings")]
        assert len(texts) == 2 and any("CVE-" in t for t in texts), texts
    for secret in (TOKEN, HOOK, NVD_KEY):
        assert secret not in check.output + result.output


def test_a_variable_given_both_ways_is_refused_naming_it(tmp_path: Path) -> None:
    creds = _credentials(tmp_path, {"SLACK_BOT_TOKEN": TOKEN})
    relay = Relay(tmp_path, None, token="xoxb-from-the-environment",
                  extra_env={"CREDENTIALS_DIRECTORY": str(creds)})
    relay.configure(feeds=[{"name": "Blog", "url": "https://example.com/feed.xml", "channels": ["readings"]}])
    result = relay("run")
    assert result.code == 2
    assert "$SLACK_BOT_TOKEN is set in the environment and as a credential" in result.err
    assert "Traceback" not in result.err
    assert TOKEN not in result.output and "xoxb-from-the-environment" not in result.output


def test_an_oversized_credential_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "NVD_API_KEY").write_bytes(b"x" * 10_000_000)  # LoadCredential= pointed at the wrong file
    relay = Relay(tmp_path, None, extra_env={"CREDENTIALS_DIRECTORY": str(creds)})
    relay.configure(feeds=[{"name": "Blog", "url": "https://example.com/feed.xml", "channels": ["readings"]}])
    result = relay("check")
    assert result.code == 2
    assert "$CREDENTIALS_DIRECTORY/NVD_API_KEY: larger than 64 KiB" in result.err
