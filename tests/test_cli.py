"""Operator conventions: options after the command, help that says what exit codes mean, shell completion, and
`status` before the first poll."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import Relay
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer


@pytest.fixture
def relay(tmp_path: Path) -> Relay:
    return Relay(tmp_path, None)


COMMANDS = ("run", "once", "check", "import-opml", "export-opml", "preview", "status", "health", "retry")


def feedrelay(relay: Relay, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The command exactly as typed, with no -c of the test helper in front."""
    return subprocess.run([sys.executable, "-m", "feedrelay", *args], env={**relay.env, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_config_and_db_work_after_the_command_as_well_as_before(feed_server: FeedServer, fake_slack: FakeSlack,
                                                               tmp_path: Path) -> None:
    relay = Relay(tmp_path, fake_slack.api_url)
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = tmp_path / "var" / "state.db"
    once = feedrelay(relay, "once", "-c", str(relay.config), "--db", str(db), cwd=elsewhere)
    assert once.returncode == 0, once.stderr
    assert db.exists() and not relay.db.exists() and not (elsewhere / "feedrelay.db").exists()
    # After the command it wins over the one before it, and over the environment.
    status = feedrelay(relay, "-c", "/nonexistent/feeds.toml", "status", "--json", "--config", str(relay.config),
                       "--db", str(db), cwd=elsewhere, env={"FEEDRELAY_DB": str(tmp_path / "other.db")})
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["feeds"][0]["items"] == 2
    missing = feedrelay(relay, "check", "--config", str(tmp_path), cwd=elsewhere)
    assert missing.returncode == 2 and "is a directory" in missing.stderr  # click.Path: a usage error


def test_every_command_has_a_short_help_and_its_exit_codes_in_its_help(relay: Relay, tmp_path: Path) -> None:
    top = feedrelay(relay, "--help", cwd=tmp_path)
    listed = dict(re.findall(r"^  ([a-z-]+)\s{2,}(.+)$", top.stdout.split("Commands:")[1], re.M))
    assert sorted(listed) == sorted(COMMANDS)
    for name, summary in listed.items():
        assert summary.endswith(".") and not summary.endswith("..."), (name, summary)  # whole, not cut short
    for name in COMMANDS:
        text = feedrelay(relay, name, "--help", cwd=tmp_path).stdout
        assert "Exit status: 0 " in text, name
        assert re.search(r"-c, --config FILE", text) and "--db FILE" in text, name


def complete(relay: Relay, words: str, cwd: Path, shell: str = "bash") -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    result = feedrelay(relay, cwd=cwd, env={"_FEEDRELAY_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
                                            "COMP_CWORD": str(cword)})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_shell_completion_offers_feed_and_channel_names_from_the_config(relay: Relay, tmp_path: Path) -> None:
    relay.configure(channels={"readings": {"slack": "#readings"}, "security": {"slack": "#security"}},
                    feeds=[{"name": "Cloudflare Blog", "url": "https://blog.cloudflare.com/rss/",
                            "channels": ["readings"]},
                           {"name": "CISA KEV", "type": "kev", "channels": ["security"]},
                           {"name": "NVD", "type": "nvd", "channels": ["security"]}])
    config = str(relay.config)
    assert complete(relay, "feedrelay preview c", relay.dir) == ["Cloudflare Blog", "CISA KEV"]  # ./feeds.toml
    assert complete(relay, f"feedrelay -c {config} preview ", tmp_path.parent) == [
        "Cloudflare Blog", "CISA KEV", "NVD"]
    assert complete(relay, f"feedrelay preview --config {config} N", tmp_path.parent) == ["NVD"]
    assert complete(relay, f"feedrelay retry -c {config} s", tmp_path.parent) == ["security"]
    assert complete(relay, f"feedrelay import-opml x.opml -c {config} --channel r", tmp_path.parent) == ["readings"]
    assert complete(relay, "feedrelay st", relay.dir) == ["status"]
    # A broken config completes nothing, quietly: no error in the middle of a command line.
    relay.config.write_text("[[feeds]\n")
    assert complete(relay, "feedrelay preview ", relay.dir) == []


def test_status_before_the_first_poll_lists_what_is_configured(relay: Relay) -> None:
    relay.configure(channels={"readings": {"slack": "#readings"}, "security": {"slack": "#security"}},
                    feeds=[{"name": "Blog", "url": "https://example.com/feed.xml", "channels": ["readings"]},
                           {"name": "CISA KEV", "type": "kev", "channels": ["security"]}])
    text = relay("status")
    assert text.code == 0, text.output
    assert re.search(r"^Blog\s+never\s+0\s+0\s+0  never polled$", text.out, re.M), text.out
    assert re.search(r"^CISA KEV\s+never\s+0\s+0\s+0  never polled$", text.out, re.M), text.out
    assert re.search(r"^security\s+0\s+0\s+0  nothing sent yet$", text.out, re.M), text.out
    assert "no database yet" in text.err and "Traceback" not in text.err
    as_json = relay("status", "--json")
    assert as_json.code == 0, as_json.output
    data = json.loads(as_json.out)
    rows = [(f["feed"], f["last_poll"], f["items"]) for f in data["feeds"]]
    assert rows == [("Blog", None, 0), ("CISA KEV", None, 0)]
    assert data["channels"]["readings"] == {"pending": 0, "failed": 0, "sent": 0, "oldest_pending": None,
                                            "failing": None, "last_error": None, "configured": True}
    assert not relay.db.exists()  # status reads; it creates nothing
