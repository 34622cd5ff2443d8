"""Crashes and outages, injected for real: kill -9 of the daemon process, a Slack that refuses
connections, answers 503 and then storms 429s, a database held by another process, damaged on disk,
or on a disk that fills up under a running process (RLIMIT_FSIZE, lowered and raised with prlimit)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import resource
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import Daemon, Relay, Result, wait_until
from tests.feedgen import make_items, rss
from tests.servers import Attempt, FakeSlack, FeedServer, Post


def title(post: Post) -> str:
    text = post.blocks[0]["text"]["text"] if post.blocks else post.text or ""
    return text.split("|", 1)[1].split(">", 1)[0] if "|" in text else text.strip("*")


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def outbox(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the daemon's database while it runs (WAL lets readers in)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def poll_db(db: Path, sql: str) -> list[tuple]:
    """`outbox`, or [] while the daemon has not created its tables yet."""
    try:
        return outbox(db, sql)
    except sqlite3.OperationalError:
        return []


def assert_one_clear_line(result: Result, *expected: str) -> None:
    assert result.code == 1, result.output
    assert "Traceback" not in result.output, result.output
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("feedrelay: error: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Switch:
    """A loopback port that refuses connections while down and forwards them to `target` while up, so
    one running process sees Slack go from "connection refused" to answering."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for s in self._open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


# --- (a) kill -9 at random moments ------------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing(relay: Relay, feed_server: FeedServer,
                                                 fake_slack: FakeSlack) -> None:
    """Three feeds × 20 new items into two channels through a slow Slack; the daemon is killed with
    SIGKILL four times at random moments (during start-up, polls or deliveries) and restarted."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    started = time.monotonic()
    for prefix in "ABC":  # distinct links: the same link twice in a channel is deduplicated by design
        items = [{**i, "guid": f"{prefix}-{i['guid']}", "link": i["link"].replace("/posts/", f"/{prefix}/")}
                 for i in make_items(20, prefix=prefix)]
        feed_server.set(f"/{prefix}.xml", rss(items))
    relay.configure(
        channels={"one": {"slack": "#one", "min_interval": "0s"}, "two": {"slack": "#two", "min_interval": "0s"}},
        feeds=[{"name": p, "url": feed_server.url(f"/{p}.xml"), "channels": ["one" if p != "C" else "two"],
                "backlog": 20, "interval": "2s"} for p in "ABC"],
    )
    fake_slack.delay = 0.12
    expected = {"#one": {f"{p} {i}" for p in "AB" for i in range(20)}, "#two": {f"C {i}" for i in range(20)}}

    kills = 0
    for round_ in range(4):
        daemon = relay.start()
        if round_ == 0:
            time.sleep(rng.uniform(0.1, 1.0))  # start-up, first polls or first posts
        else:
            before = len(fake_slack.posts)
            wait_until(lambda before=before: len(fake_slack.posts) > before, timeout=20)
            time.sleep(rng.uniform(0.0, 0.5))  # mid-delivery, often with a post in flight
        daemon.kill()
        kills += 1
    assert len(fake_slack.posts) < 60, "everything was delivered before the last kill: make Slack slower"

    daemon = relay.start()
    try:
        wait_until(lambda: all({title(p) for p in fake_slack.messages(ch)} >= want for ch, want in expected.items()),
                   timeout=30)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    assert "Traceback" not in result.err

    for channel, want in expected.items():
        got = [title(p) for p in fake_slack.messages(channel)]
        assert set(got) == want, f"seed {seed}"
        duplicates = len(got) - len(set(got))
        # At most the one message in flight per channel at each kill.
        assert duplicates <= kills, f"seed {seed}: {duplicates} duplicates in {channel}: {Counter(got)}"
        for prefix in {t.split()[0] for t in want}:  # each feed's items arrive in publication order
            first_seen = list(dict.fromkeys(t for t in got if t.startswith(prefix + " ")))
            assert first_seen == [f"{prefix} {i}" for i in range(20)], f"seed {seed}: {first_seen}"
    assert integrity(relay.db) == "ok"
    assert outbox(relay.db, "SELECT COUNT(*) FROM outbox WHERE status != 'sent'") == [(0,)]
    assert time.monotonic() - started < 40


# --- (b) Slack unreachable, then 503, then 429 storms -------------------------------------------------


def _posts_attempts(slack: FakeSlack) -> list[Attempt]:
    return [a for a in slack.attempts if a.endpoint == "chat.postMessage"]


def test_slack_refused_then_503_then_429_storm_drains_in_order(relay: Relay, feed_server: FeedServer,
                                                                 fake_slack: FakeSlack) -> None:
    switch = Switch(fake_slack.port)  # down: connection refused
    relay.env["SLACK_API_URL"] = f"http://127.0.0.1:{switch.port}/api/"
    feed_server.set("/f.xml", rss(make_items(8)))
    relay.configure(
        channels={"one": {"slack": "#one", "min_interval": "0s"}, "two": {"slack": "C0TWO", "min_interval": "0s"}},
        feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["one", "two"], "backlog": 8,
                "interval": "1h"}],
    )

    # 1. Connection refused: every delivery is kept, with its error, across a restart.
    daemon = relay.start()
    try:
        wait_until(lambda: len(poll_db(relay.db, "SELECT DISTINCT channel FROM outbox WHERE attempts > 0 AND "
                                                "last_error LIKE 'network:%'")) == 2, timeout=20)
    finally:
        stopped = daemon.stop()
    assert stopped.code == 0 and "Traceback" not in stopped.err, stopped.err
    status = relay("status", "--json")
    channels = json.loads(status.out)["channels"]
    for name in ("one", "two"):
        assert channels[name]["pending"] == 8 and channels[name]["sent"] == 0, channels
        assert channels[name]["last_error"].startswith("network:"), channels
    assert "retrying: network:" in relay("status").out

    # 2. Slack answers, but 503 for everything.
    fake_slack.outage(503)
    switch.up()
    daemon = relay.start()
    try:
        wait_until(lambda: {a.channel for a in _posts_attempts(fake_slack) if a.outcome == "outage"}
                   == {"#one", "C0TWO"}, timeout=20)
        # 3. Slack is back but rate limits the workspace, four times in a row.
        fake_slack.script([("429", 1), ("429", 1), ("429", 2), ("429", 1)])
        fake_slack.outage(None)
        wait_until(lambda: len(fake_slack.posts) >= 16, timeout=40)
        time.sleep(0.3)  # nothing more may arrive
    finally:
        stopped = daemon.stop()
        switch.down()
    assert stopped.code == 0 and "Traceback" not in stopped.err, stopped.err

    # Nothing dropped, nothing twice, each channel in publication order.
    for channel in ("#one", "C0TWO"):
        assert [title(p) for p in fake_slack.messages(channel)] == [f"Post {i}" for i in range(8)]
    assert len(fake_slack.posts) == 16

    attempts = _posts_attempts(fake_slack)
    limited = [a for a in attempts if a.outcome == "ratelimited"]
    assert len(limited) == 4
    # Slack's pace: after a 429, no post to the workspace (any channel) until Retry-After has passed. A post
    # already on the wire when the 429 was answered may arrive a moment later; that is allowed.
    in_flight = 0.1
    for limit in limited:
        assert limit.retry_after is not None
        too_soon = [a for a in attempts
                    if limit.time + in_flight < a.time < limit.time + limit.retry_after - 0.05]
        assert not too_soon, f"posted {too_soon[0].time - limit.time:.2f}s after a 429 asking for {limit.retry_after}s"
    # Outages are retried with backoff, not hammered.
    for channel in ("#one", "C0TWO"):
        failing = [a for a in attempts if a.channel == channel and a.outcome != "ok"]
        for before, after in itertools.pairwise(failing):
            assert after.time - before.time >= 0.45, (before, after)


# --- (c) the database: locked, damaged, on a full disk -----------------------------------------------


def test_status_works_while_the_daemon_runs_and_another_process_holds_the_write_lock(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(3)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 3,
                            "interval": "1s"}],
                    channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    daemon = relay.start()
    try:
        fake_slack.wait_for_posts(3, timeout=20)
        locker = sqlite3.connect(relay.db, timeout=30, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # in WAL mode: the write lock; readers must still get in
        try:
            started = time.monotonic()
            text, as_json = relay("status", timeout=20), relay("status", "--json", timeout=20)
            assert time.monotonic() - started < 10
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        for r in (text, as_json):
            assert r.code == 0 and "Traceback" not in r.output, r.output
        [row] = json.loads(as_json.out)["feeds"]
        assert row["feed"] == "F" and row["items"] == 3 and row["error"] is None
        assert "readings" in text.out
        # The daemon waited for the lock and carries on.
        feed_server.set("/f.xml", rss(make_items(1, start=3) + make_items(3)))
        fake_slack.wait_for_posts(4, timeout=20)
        assert daemon.proc.poll() is None
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err, result.err
    assert integrity(relay.db) == "ok"


def test_a_second_run_or_once_on_the_same_database_is_refused_instead_of_posting_twice(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    """Started twice by mistake (a cron `once` beside the service, two containers on one volume), each process
    would send every pending message: the second one stops with one clear line and the first carries on."""
    daemon = _backlog_daemon(relay, feed_server, fake_slack, 10, delay=0.3)  # a backlog both would be draining
    try:
        wait_until(lambda: fake_slack.posts, timeout=20)
        for args in (("once", "--max-wait", "5s"), ("run",)):
            assert_one_clear_line(relay(*args, timeout=30), "feedrelay.db: another feedrelay",
                                  f"pid {daemon.proc.pid}", "run one per database")
        fake_slack.wait_for_posts(10, timeout=20)
        time.sleep(0.5)
    finally:
        result = daemon.stop()
    assert result.code == 0 and "Traceback" not in result.err, result.err
    got = [title(p) for p in fake_slack.posts]
    assert sorted(got) == sorted(set(got)) and len(got) == 10, Counter(got)
    # The lock goes with the process, even a killed one: the next start is not refused.
    daemon = relay.start()
    wait_until(lambda: "feedrelay running" in daemon.log(), timeout=20)
    daemon.kill()
    assert relay("once").code == 0


def test_garbage_database_file_is_one_clear_error(relay: Relay, feed_server: FeedServer) -> None:
    feed_server.set("/f.xml", rss(make_items(2)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    relay.db.write_bytes(random.Random(1).randbytes(64 * 1024))
    for args in (("once",), ("status",), ("status", "--json"), ("retry",), ("run",)):
        assert_one_clear_line(relay(*args, timeout=30), "feedrelay.db: the database file is damaged",
                              "restore a backup or move it aside")


def _damage_items_table(db: Path) -> None:
    """Overwrite the root page of the `items` table: the header and schema stay readable, so feedrelay
    opens the file and meets the damage in the middle of its work, as with a real bad sector."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'items'").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(random.Random(2).randbytes(page_size))


def test_damaged_database_page_is_one_clear_error(relay: Relay, feed_server: FeedServer,
                                                  fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(50)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"]}])
    assert relay("once").code == 0
    _damage_items_table(relay.db)
    feed_server.set("/f.xml", rss(make_items(1, start=50) + make_items(50)))
    for args in (("once",), ("status",), ("status", "--json")):
        assert_one_clear_line(relay(*args, timeout=30), "feedrelay.db: the database file is damaged")


def _backlog_daemon(relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack, n: int, *, delay: float) -> Daemon:
    """`feedrelay run` with ``n`` entries to post to #readings (backlog), each post taking ``delay`` at Slack."""
    feed_server.set("/f.xml", rss(make_items(n)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": n,
                            "interval": "1h"}],
                    channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    fake_slack.delay = delay
    return relay.start()


def _limit_file_size(pid: int, size: int | None) -> None:
    """The child may write files up to `size` bytes (None: no limit). Writes past it fail with EFBIG,
    which SQLite reports as a disk I/O error, exactly where a full disk would fail."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY if size is None else size, hard))


def test_disk_full_before_polling_is_one_clear_error_and_loses_nothing(relay: Relay, feed_server: FeedServer,
                                                                        fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(3)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 3}],
                    channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    limited = relay.cmd("once")
    wrapper = ("import resource, os, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384)); "
               "os.execv(sys.argv[1], sys.argv[1:])")
    p = subprocess.run([limited[0], "-c", wrapper, *limited], env=relay.env, cwd=relay.dir, capture_output=True,
                       text=True, timeout=60)
    assert_one_clear_line(Result(p.returncode, p.stdout, p.stderr), "cannot write", "Free disk space")
    assert fake_slack.posts == []
    # Space is back: the next run does everything, once.
    again = relay("once")
    assert again.code == 0, again.output
    assert [title(p) for p in fake_slack.posts] == ["Post 0", "Post 1", "Post 2"]
    assert integrity(relay.db) == "ok"


@contextlib.contextmanager
def popen(relay: Relay, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(relay.cmd(*args), env=relay.env, cwd=relay.dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_disk_full_during_delivery_is_one_clear_error_and_loses_nothing(relay: Relay, feed_server: FeedServer,
                                                                         fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss(make_items(6)))
    relay.configure(feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 6}],
                    channels={"readings": {"slack": "#readings", "min_interval": "0s"}})
    fake_slack.delay = 0.3
    with popen(relay, "once") as proc:
        fake_slack.wait_for_posts(1, timeout=20)
        _limit_file_size(proc.pid, 1024)  # the disk is full from now on
        out, err = proc.communicate(timeout=60)
    result = Result(proc.returncode, out, err)
    assert result.code == 1, result.output
    assert "Traceback" not in result.output, result.output
    assert "cannot write" in result.err and "Free disk space" in result.err, result.err

    fake_slack.delay = 0
    again = relay("once")
    assert again.code == 0, again.output
    got = [title(p) for p in fake_slack.posts]
    assert set(got) == {f"Post {i}" for i in range(6)}
    assert len(got) - len(set(got)) <= 1  # the one post whose "sent" could not be written
    assert integrity(relay.db) == "ok"


def test_daemon_survives_a_disk_that_fills_up_and_frees_again(relay: Relay, feed_server: FeedServer,
                                                               fake_slack: FakeSlack) -> None:
    daemon = _backlog_daemon(relay, feed_server, fake_slack, 8, delay=0.3)
    try:
        fake_slack.wait_for_posts(1, timeout=20)
        _limit_file_size(daemon.proc.pid, 1024)
        time.sleep(1.5)  # deliveries go on failing to record themselves
        _limit_file_size(daemon.proc.pid, None)
        fake_slack.delay = 0
        wait_until(lambda: {title(p) for p in fake_slack.posts} >= {f"Post {i}" for i in range(8)}, timeout=15)
        assert daemon.proc.poll() is None
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    got = [title(p) for p in fake_slack.posts]
    assert len(got) - len(set(got)) <= 1, got
    assert integrity(relay.db) == "ok"
    assert outbox(relay.db, "SELECT COUNT(*) FROM outbox WHERE status != 'sent'") == [(0,)]
    assert os.path.getsize(relay.db) > 0


def test_a_disk_full_for_a_while_does_not_post_the_same_message_again_and_again(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    """The post went out but its `sent` mark cannot be written: the daemon retries writing the mark, not the post
    (it retried the whole step every 5 s, posting the message again each time until space came back)."""
    daemon = _backlog_daemon(relay, feed_server, fake_slack, 3, delay=0.5)
    try:
        wait_until(lambda: fake_slack.attempts, timeout=20)  # the first post is in flight
        _limit_file_size(daemon.proc.pid, 1024)
        time.sleep(12)  # the deliverer tries again every 5 s meanwhile
        _limit_file_size(daemon.proc.pid, None)
        wait_until(lambda: {title(p) for p in fake_slack.posts} >= {"Post 0", "Post 1", "Post 2"}, timeout=20)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    got = [title(p) for p in fake_slack.posts]
    assert sorted(got) == ["Post 0", "Post 1", "Post 2"], got
    assert outbox(relay.db, "SELECT COUNT(*) FROM outbox WHERE status != 'sent'") == [(0,)]


def test_a_config_edit_during_a_full_disk_is_applied_once_space_is_back(relay: Relay, feed_server: FeedServer,
                                                                         fake_slack: FakeSlack) -> None:
    feed_server.set("/a.xml", rss(make_items(2)))
    feed_server.set("/b.xml", rss(make_items(2)))
    a = {"name": "A", "url": feed_server.url("/a.xml"), "channels": ["readings"], "interval": "1h"}
    relay.configure(feeds=[a])
    daemon = relay.start()
    try:
        wait_until(lambda: "feed 'A': first poll" in daemon.log(), timeout=20)
        _limit_file_size(daemon.proc.pid, 1024)
        relay.configure(feeds=[a, {**a, "name": "B", "url": feed_server.url("/b.xml")}])
        wait_until(lambda: "config change not applied yet" in daemon.log(), timeout=15)
        time.sleep(3)  # tried again meanwhile, logged once
        _limit_file_size(daemon.proc.pid, None)
        wait_until(lambda: feed_server.hits("/b.xml") >= 1, timeout=15)
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "raised an exception" not in result.err, result.err
    assert result.err.count("config change not applied yet, still running the previous configuration: ") == 1
    assert "configuration reloaded" in result.err
