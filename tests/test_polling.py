"""Polling many feeds at once: order, fairness between hosts, and the parse worker processes."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import feedrelay.ingest.workers as workers
import feedrelay.runtime.relay as relay_module
from feedrelay.config import Feed, parse_config
from feedrelay.ingest.parsing import parse_feed
from feedrelay.ingest.workers import ParsePool
from feedrelay.runtime.relay import Relay
from tests.feedgen import make_items, rss
from tests.servers import FeedServer


def config_text(tmp_path: Path, urls: list[str], per_host: int) -> str:
    feeds = "\n".join(f'[[feeds]]\nname = "f{i}"\nurl = "{u}"\nchannels = ["readings"]\n' for i, u in enumerate(urls))
    return (f'database = "{tmp_path / "relay.db"}"\n[defaults]\nper_host = {per_host}\n'
            f"[channels.readings]\nconsole = true\n\n{feeds}")


def test_a_slow_host_with_many_feeds_does_not_hold_up_the_others(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """24 feeds on a slow host (2 at a time) and, listed after them in feeds.toml, 24 feeds of a fast host; 8 polls
    at a time. The slow host's answers are held until every fast feed is polled, so a fast feed waiting behind
    them would never be (the hold gives up after 20 s and the test fails); no fixed deadline, which a busy
    machine misses without anything being wrong."""
    monkeypatch.setattr(relay_module, "POLL_CONCURRENCY", 8)
    done_at: dict[str, float] = {}
    fast_names = {f"f{i}" for i in range(24, 48)}
    fast_all_done = threading.Event()
    held_up: list[bool] = []
    lock = threading.Lock()
    in_flight = most_in_flight = 0

    def slow(h: BaseHTTPRequestHandler) -> None:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        if not fast_all_done.wait(20):
            held_up.append(True)
            fast_all_done.set()
        time.sleep(0.25)
        body = rss(make_items(2))
        with lock:  # before the answer: once it is read, the relay may send this host's next request
            in_flight -= 1
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with FeedServer() as slow_host, FeedServer() as fast_host:
        slow_host.set_handler("/f.xml", slow)
        fast_host.set("/f.xml", rss(make_items(2)))
        urls = [slow_host.url(f"/f.xml?{i}") for i in range(24)] + [fast_host.url(f"/f.xml?{i}") for i in range(24)]
        config = parse_config(config_text(tmp_path, urls, per_host=2), tmp_path / "feeds.toml", environ={})

        async def go() -> list[str]:
            relay = Relay(config, environ={}, stream=io.StringIO())
            await relay.start()
            start = time.monotonic()
            original = relay.poll

            async def timed(f: Feed):  # type: ignore[no-untyped-def]
                report = await original(f)
                done_at[f.name] = time.monotonic() - start
                if fast_names <= done_at.keys():
                    fast_all_done.set()
                return report

            relay.poll = timed  # type: ignore[method-assign]
            try:
                reports = await relay.poll_all()
            finally:
                await relay.close()
            return [r.feed for r in reports if r.error is None]

        names = asyncio.run(go())
    assert names == [f"f{i}" for i in range(48)]  # every feed, in configuration order
    assert not held_up, "the fast host's feeds waited behind the slow host's"
    fast = [done_at[f"f{i}"] for i in range(24, 48)]
    slow_done = [done_at[f"f{i}"] for i in range(24)]
    assert max(fast) < min(slow_done)
    assert most_in_flight == 2  # per_host: the slow host got 2 requests at a time, never more


def test_the_daemon_polls_a_fast_host_while_a_slow_hosts_feeds_hang(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`feedrelay run` (the Daemon on a real Relay): 8 feeds of a slow host come due first, then 8 of a fast host;
    per_host = 2, 4 polls at a time. The slow host answers nothing until the test lets it. The daemon's timers used
    to poll each feed in a job that took one of the 4 slots and then waited for the slow host's turn: the fast
    feeds waited for the slow host to answer. Now the fast feeds are polled while the slow ones still hang."""
    import feedrelay.runtime.daemon as daemon_module
    from feedrelay.runtime.daemon import Daemon

    monkeypatch.setattr(relay_module, "POLL_CONCURRENCY", 4)
    monkeypatch.setattr(daemon_module, "FIRST_POLL_SPREAD", 0.5)  # the slow host's feeds come due first
    release = threading.Event()
    lock = threading.Lock()
    in_flight = most_in_flight = 0

    def slow(h: BaseHTTPRequestHandler) -> None:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        release.wait(30)
        body = rss(make_items(2))
        with lock:
            in_flight -= 1
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with FeedServer() as slow_host, FeedServer() as fast_host:
        slow_host.set_handler("/f.xml", slow)
        fast_host.set("/f.xml", rss(make_items(2)))
        urls = [slow_host.url(f"/f.xml?{i}") for i in range(8)] + [fast_host.url(f"/f.xml?{i}") for i in range(8)]
        text = config_text(tmp_path, urls, per_host=2).replace('channels = ["readings"]\n',
                                                               'channels = ["readings"]\ninterval = "1h"\n')
        config = parse_config(text, tmp_path / "feeds.toml", environ={})
        fast, slow_feeds = [f"f{i}" for i in range(8, 16)], [f"f{i}" for i in range(8)]

        def polled(relay: Relay, names: list[str]) -> list[str]:
            return [n for n in names if (row := relay.store.feed(n)) is not None and row.last_success]

        async def go() -> tuple[list[str], list[str]]:
            relay = Relay(config, environ={}, stream=io.StringIO())
            await relay.start()
            daemon = Daemon(relay)
            run = asyncio.create_task(daemon.run())
            try:
                deadline = time.monotonic() + 15  # (on the old code they waited the whole 30 s hold)
                while len(polled(relay, fast)) < len(fast) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                seen = polled(relay, fast), polled(relay, slow_feeds)
                release.set()
                while len(polled(relay, slow_feeds)) < len(slow_feeds):
                    await asyncio.sleep(0.05)
                return seen
            finally:
                release.set()
                daemon.stopping.set()
                await run
                await relay.close()

        fast_done, slow_done = asyncio.run(go())
    assert fast_done == fast, "the fast host's feeds waited behind the slow host's"
    assert slow_done == []  # while every slow feed still hung
    assert most_in_flight == 2  # per_host: the slow host got 2 requests at a time, never more


def test_parse_pool_retires_workers_and_still_parses_every_feed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(workers, "RETIRE_AFTER", 4)
    bodies = [rss(make_items(3, start=i * 3)) for i in range(12)]
    expected = [parse_feed(b, "https://blog.example/feed.xml") for b in bodies]

    async def go() -> tuple[list, set[int]]:  # type: ignore[type-arg]
        import os

        pool = ParsePool(workers=2)
        pids: set[int] = set()
        try:
            results = []
            for batch in range(3):  # 4 at a time: each batch goes to a fresh set of workers
                chunk = bodies[batch * 4 : batch * 4 + 4]
                results += await asyncio.gather(*(pool(parse_feed, b, "https://blog.example/feed.xml")
                                                  for b in chunk))
                pids |= set(await asyncio.gather(*(pool(os.getpid) for _ in range(2))))
            return results, pids
        finally:
            pool.close()

    results, pids = asyncio.run(go())
    assert [[i.key for i in r.items] for r in results] == [[i.key for i in r.items] for r in expected]
    assert results == expected
    assert len(pids) > 2  # workers were replaced


def test_parse_workers_do_not_load_the_cli(tmp_path: Path) -> None:
    """The daemon's __main__ is the `feedrelay` console script, which imports the whole CLI; its parse
    workers must not (it cost 17 MB per worker)."""
    script = tmp_path / "relay_main.py"
    names = {"feedparser", "httpx", "slack_sdk", "apscheduler", "sqlite_utils"}
    script.write_text(  # a stand-in for the console script: it imports the CLI, then parses in the pool
        "import asyncio, sys\n"
        "import feedrelay.cli\n"
        "from feedrelay.ingest.workers import ParsePool\n"
        f"LOADED = \"sorted(m for m in __import__('sys').modules if m.split('.')[0] in {names})\"\n"
        "async def go():\n"
        "    pool = ParsePool(workers=1)\n"
        "    try:\n"
        "        print(await pool(eval, LOADED))\n"
        "    finally:\n"
        "        pool.close()\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(go())\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {m.split(".")[0] for m in eval(out.stdout)} == {"feedparser"}  # the parser's, and none of the CLI's


def test_the_first_parse_does_not_block_the_event_loop_while_the_workers_start(tmp_path: Path) -> None:
    """The first parse of a daemon starts the fork server, which imports feedparser before it can fork a worker:
    0.5 s, seconds on a busy machine. That used to happen on the event loop, so every poll and post waited (the
    daemon bench saw every feed's timer ~5 s late after the first new entry). In a fresh interpreter, since the
    fork server is started once per process."""
    script = tmp_path / "first_parse.py"
    script.write_text(
        "import asyncio, time\n"
        "from feedrelay.ingest.parsing import parse_feed\n"
        "from feedrelay.ingest.workers import ParsePool\n"
        f"BODY = {rss(make_items(3))!r}\n"
        "async def go():\n"
        "    gaps = []\n"
        "    async def tick():\n"
        "        last = time.monotonic()\n"
        "        while True:\n"
        "            await asyncio.sleep(0.01)\n"
        "            now = time.monotonic()\n"
        "            gaps.append(now - last)\n"
        "            last = now\n"
        "    ticker = asyncio.create_task(tick())\n"
        "    await asyncio.sleep(0.05)\n"
        "    pool = ParsePool(workers=1)\n"
        "    start = time.monotonic()\n"
        "    try:\n"
        "        result = await pool(parse_feed, BODY, 'https://blog.example/feed.xml')\n"
        "    finally:\n"
        "        pool.close()\n"
        "    took = time.monotonic() - start\n"
        "    ticker.cancel()\n"
        "    print(len(result.items), took, max(gaps))\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(go())\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    items, took, longest_stall = out.stdout.split()
    assert items == "3"
    assert float(longest_stall) < float(took) / 2, out.stdout  # the loop kept running while the workers started


def test_the_system_clock_set_back_does_not_stop_polls_or_retries(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The clock of the whole process goes back an hour (an NTP step, a restored VM): polls go on at their
    interval, and a Retry-After or a message retry still ends when it would have, not an hour later."""
    import datetime as dt

    import apscheduler.schedulers.base
    import apscheduler.triggers.interval

    import feedrelay.runtime.daemon as daemon_module
    from feedrelay.runtime.daemon import Daemon

    monkeypatch.setattr(daemon_module, "CONFIG_CHECK", 0.2)
    back = [0.0]
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - back[0])

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return dt.datetime.fromtimestamp(time.time(), tz)

    for module in (apscheduler.schedulers.base, apscheduler.triggers.interval, daemon_module):
        monkeypatch.setattr(module, "datetime", Clock)

    with FeedServer() as server:
        server.set("/f.xml", rss(make_items(2)))
        server.set("/slow.xml", b"", status=503, headers={"Retry-After": "3"})
        text = (f'database = "{tmp_path / "relay.db"}"\n[channels.readings]\nconsole = true\n'
                f'[[feeds]]\nname = "f"\nurl = "{server.url("/f.xml")}"\nchannels = ["readings"]\ninterval = "1s"\n'
                f'[[feeds]]\nname = "slow"\nurl = "{server.url("/slow.xml")}"\nchannels = ["readings"]\n'
                'interval = "1s"\n')
        config = parse_config(text, tmp_path / "feeds.toml", environ={})

        async def go() -> None:
            relay = Relay(config, environ={}, stream=io.StringIO())
            await relay.start()
            daemon = Daemon(relay)
            run = asyncio.create_task(daemon.run())
            try:
                while server.hits("/f.xml") < 2 or server.hits("/slow.xml") < 1:
                    await asyncio.sleep(0.05)
                server.set("/slow.xml", rss(make_items(1)))
                back[0] = 3600.0
                hits = server.hits("/f.xml")
                await asyncio.sleep(4)
                assert server.hits("/f.xml") >= hits + 2  # still polled every second
                assert server.hits("/slow.xml") >= 2  # polled again once its 3 s Retry-After was over
            finally:
                daemon.stopping.set()
                await run
                await relay.close()

        asyncio.run(go())


def test_a_config_caught_half_written_is_not_applied(tmp_path: Path) -> None:
    """An editor or a tool saving feeds.toml truncates it, then writes it. A look in between sees a valid file
    (an empty one is) without the feeds: applied, every feed would stop, and start afresh when it came back,
    its new entries remembered but never posted. And a save is noticed even when it keeps the mtime."""
    from feedrelay.runtime.daemon import Daemon

    path = tmp_path / "feeds.toml"
    text = (f'database = "{tmp_path / "relay.db"}"\n[channels.readings]\nconsole = true\n'
            '[[feeds]]\nname = "f"\nurl = "http://127.0.0.1:9/f.xml"\nchannels = ["readings"]\ninterval = "1h"\n')
    path.write_text(text)

    async def go() -> None:
        relay = Relay(parse_config(text, path, environ={}), environ={}, stream=io.StringIO())
        await relay.start()
        try:
            daemon = Daemon(relay)
            daemon.schedule_all(relay.config.feeds)
            path.write_text("")  # caught between the truncation and the write
            mtime = path.stat().st_mtime_ns
            await daemon.check_config()
            assert [f.name for f in relay.config.feeds] == ["f"]
            assert relay.store.feed("f").active
            path.write_text(text.replace('"1h"', '"90m"'))
            os.utime(path, ns=(mtime, mtime))  # written within the same clock tick as the truncation
            await daemon.check_config()
            await daemon.check_config()  # it stayed the same for one look: applied
            assert [f.interval for f in relay.config.feeds] == [5400]
        finally:
            await relay.close()

    asyncio.run(go())


def test_pruning_on_a_database_that_cannot_be_written_is_one_log_line(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """The hourly prune meets a full disk: an error line like a poll's, not a scheduler traceback."""
    from feedrelay.runtime.daemon import Daemon

    text = (f'database = "{tmp_path / "relay.db"}"\n[channels.readings]\nconsole = true\n'
            '[[feeds]]\nname = "f"\nurl = "http://127.0.0.1:9/f.xml"\nchannels = ["readings"]\n')

    async def go() -> Daemon:
        relay = Relay(parse_config(text, tmp_path / "feeds.toml", environ={}), environ={}, stream=io.StringIO())
        await relay.start()
        try:
            daemon = Daemon(relay)
            relay.store.db.execute("PRAGMA query_only = 1")  # every write fails, as on a full disk
            await daemon._prune()
            return daemon
        finally:
            relay.store.db.execute("PRAGMA query_only = 0")
            await relay.close()

    daemon = asyncio.run(go())
    assert daemon.fatal is None and not daemon.stopping.is_set()
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage().startswith("pruning: ") and "readonly" in record.getMessage()


def test_a_reload_in_progress_at_shutdown_does_not_start_the_channels_again(tmp_path: Path) -> None:
    """`systemctl reload` then `systemctl stop` while Slack hangs on a post: the reload waits for that post, the
    stop drops it after its grace. The reload then went on and started the channels again after the stop: they
    posted on, or the relay closed under them and left their HTTP session open ("Unclosed client session")."""
    from feedrelay.runtime.daemon import Daemon
    from tests.servers import FakeSlack

    with FakeSlack() as slack, FeedServer() as server:
        server.set("/f.xml", rss(make_items(3)))
        env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.api_url}
        path = tmp_path / "feeds.toml"

        def text(min_interval: str) -> str:
            return (f'database = "{tmp_path / "relay.db"}"\n[channels.readings]\nslack = "#r"\n'
                    f'min_interval = "{min_interval}"\n[[feeds]]\nname = "f"\nurl = "{server.url("/f.xml")}"\n'
                    'channels = ["readings"]\ninterval = "1h"\nbacklog = 3\n')

        path.write_text(text("2s"))

        async def go() -> None:
            relay = Relay(parse_config(text("2s"), path, environ=env), environ=env)
            await relay.start()
            daemon = Daemon(relay)
            run = asyncio.create_task(daemon.run())
            try:
                while not slack.posts:
                    await asyncio.sleep(0.05)
                slack.delay = 8
                await asyncio.sleep(2.5)  # the next post is in flight, hanging
                path.write_text(text("3s"))  # a channel change: the channels are stopped and opened again
                reload = asyncio.ensure_future(daemon.reload())  # as SIGHUP
                await asyncio.sleep(0.5)
                daemon.stopping.set()
                await run
                assert reload.done()  # it ended before `run` returned, and the relay closes
                assert not relay.deliverer._tasks  # nothing delivers after the stop
            finally:
                daemon.stopping.set()
                await relay.close()

        asyncio.run(go())
