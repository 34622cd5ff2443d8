"""Log formats an operator picks: --log-format json (or FEEDRELAY_LOG_FORMAT=json) for log shippers, and plain
lines without our own timestamps when stderr is journald's stream. The CLI runs as a user runs it; its stderr
is parsed."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
from pathlib import Path

from feedrelay.cli import JSONFormatter, Redactor
from tests.cli import Relay
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer

HOOK = "canary-hook-logs-4711"  # the secret part of a webhook URL


def _world(tmp_path: Path, slack: FakeSlack, feeds: FeedServer, **env: str) -> Relay:
    relay = Relay(tmp_path, slack.api_url, extra_env={"TEAM_HOOK": slack.webhook_url(HOOK), **env})
    feeds.set("/blog.xml", rss(make_items(2)))
    relay.configure(channels={"hook": {"webhook_env": "TEAM_HOOK", "min_interval": "0s"}},
                    feeds=[{"name": "Blog", "url": feeds.url("/blog.xml"), "channels": ["hook"], "backlog": 2},
                           {"name": "Gone", "url": feeds.url("/gone.xml"), "channels": ["hook"]}])
    return relay


def _records(stderr: str) -> list[dict[str, object]]:
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON object: {line!r}") from None
    return records


def test_json_logs_are_one_object_per_line_with_the_secrets_redacted(tmp_path: Path) -> None:
    with FakeSlack() as slack, FeedServer() as feeds:
        relay = _world(tmp_path, slack, feeds)
        # -vv: the libraries' debug logs too, which name the webhook URL they post to.
        result = relay("-vv", "--log-format", "json", "once")
        assert result.code == 1, result.err  # the "Gone" feed fails
        assert len(slack.messages(f"webhook:{HOOK}")) == 2  # the secret was really used
    records = _records(result.err)
    for r in records:
        assert set(r) >= {"time", "level", "logger", "message"}, r
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(r["time"])), r
    assert HOOK not in result.err
    assert any(str(r["logger"]).startswith(("aiohttp", "slack_sdk", "httpx", "httpcore")) for r in records)
    failed = [r for r in records if r["level"] == "ERROR" and "'Gone'" in str(r["message"])]
    assert failed and "404" in str(failed[0]["message"])
    assert any(r["level"] == "INFO" and str(r["message"]).startswith("polled 2 feed(s)") for r in records)


def test_json_logs_from_the_environment_and_a_fatal_error_as_json(tmp_path: Path) -> None:
    with FakeSlack() as slack, FeedServer() as feeds:
        relay = _world(tmp_path, slack, feeds, FEEDRELAY_LOG_FORMAT="json")
        relay.config.write_text(relay.config.read_text().replace("backlog = 2", "backlog = -2"))
        result = relay("run")
    assert result.code == 2
    [record] = _records(result.err)
    assert record["level"] == "ERROR"
    assert "feeds.toml:" in str(record["message"]) and "backlog" in str(record["message"])


def test_an_exception_is_one_record_with_its_traceback_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(Redactor(["secret-value-123"]))
    logger = logging.getLogger("feedrelay.test_logs")
    logger.addHandler(handler)
    try:
        raise ValueError("bad response from https://hooks.example/secret-value-123")
    except ValueError:
        logger.exception("feed %r: unexpected error while polling", "Blog")
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "feed 'Blog': unexpected error while polling"
    assert record["exception"].startswith("Traceback") and "ValueError: bad response" in record["exception"]
    assert "secret-value-123" not in line


def _run_with_stderr_file(relay: Relay, err: Path, journal_stream: str) -> str:
    with err.open("w") as f:
        env = dict(relay.env, JOURNAL_STREAM=journal_stream)
        subprocess.run(relay.cmd("check"), env=env, cwd=relay.dir, stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    return err.read_text()


def test_under_journald_lines_have_a_priority_and_no_timestamp_of_ours(tmp_path: Path) -> None:
    with FakeSlack() as slack, FeedServer() as feeds:
        relay = _world(tmp_path, slack, feeds)
    # Something `check` logs as a warning: a credential it cannot use.
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "slack-token").write_text("xoxb-whatever\n")
    relay.env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
    err = tmp_path / "journal.stream"
    err.touch()
    st = os.stat(err)
    # systemd sets JOURNAL_STREAM to the device:inode of the stream it connects to stderr.
    text = _run_with_stderr_file(relay, err, f"{st.st_dev}:{st.st_ino}")
    warning = next(line for line in text.splitlines() if "slack-token" in line)
    assert re.fullmatch(r"<4>WARNING \$CREDENTIALS_DIRECTORY/slack-token: ignored, .*", warning), warning
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text)
    # Inherited by a process whose stderr goes elsewhere (a shell in the unit, output redirected): not journald.
    text = _run_with_stderr_file(relay, tmp_path / "other.log", f"{st.st_dev}:{st.st_ino}")
    warning = next(line for line in text.splitlines() if "slack-token" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING \$CREDENTIALS_DIRECTORY/slack-token", warning), warning
