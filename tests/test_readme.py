"""The README's "Use feedrelay from Python" examples, run as written against loopback servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.cli import TOKEN, Relay
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer

README = Path(__file__).parent.parent / "README.md"


def examples() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Use feedrelay from Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_library_examples_run(tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    relay_example, source_example = examples()
    feed_server.set("/blog.xml", rss(make_items(3)))
    tickets = [{"id": 7, "title": "Disk full on db-3", "url": "https://tickets.example.com/7"}]
    feed_server.set("/tickets.json", json.dumps(tickets).encode(), content_type="application/json")
    Relay(tmp_path, None).configure(
        channels={"readings": {"slack": "#readings", "min_interval": "0s"}},
        feeds=[{"name": "Blog", "url": feed_server.url("/blog.xml"), "backlog": 1, "channels": ["readings"]},
               {"name": "Tickets", "type": "tickets", "url": feed_server.url("/tickets.json"), "backlog": 5,
                "channels": ["readings"]}])
    # The source is registered before the config is loaded, as the README says.
    (tmp_path / "example.py").write_text(source_example + "\n" + relay_example)
    env = Relay(tmp_path, fake_slack.api_url, token=TOKEN).env
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Blog: 3 new, 1 queued " in lines and "Tickets: 1 new, 1 queued " in lines, lines
    assert "Blog: 3 remembered, 0 pending, ok" in lines and "Tickets: 1 remembered, 0 pending, ok" in lines, lines
    assert "#readings: 2 sent, ok" in lines, lines
    assert len(fake_slack.posts) == 2
    assert any("Disk full on db-3" in p.payload["text"] for p in fake_slack.posts)
