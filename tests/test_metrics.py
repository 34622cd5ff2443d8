"""The daemon's /metrics endpoint, scraped as Prometheus would: what it says agrees with what happened, it
names no secret, and a misbehaving client or a taken port never hurts the relay."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from feedrelay.runtime.metrics import Metrics
from feedrelay.store import Store
from tests.cli import TOKEN, Relay, wait_until
from tests.feedgen import make_items, rss
from tests.servers import FakeSlack, FeedServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[str, float]:
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


def test_metrics_tell_what_status_tells_and_no_secret(relay: Relay, feed_server: FeedServer,
                                                       fake_slack: FakeSlack) -> None:
    port = free_port()
    feed_server.set("/ok.xml", rss(make_items(2)))
    feed_server.set("/down.xml", b"", status=503)
    relay.configure(metrics={"listen": f"127.0.0.1:{port}"}, feeds=[
        # (a short interval: the daemon spreads first polls over min(interval, 30 s))
        {"name": "Fine", "url": feed_server.url("/ok.xml?token=feed-secret"), "channels": ["readings"], "backlog": 2,
         "interval": "2s"},
        {"name": "Down", "url": feed_server.url("/down.xml"), "channels": ["readings"], "interval": "2s"},
    ])
    base = f"http://127.0.0.1:{port}"
    assert f"metrics → {base}/metrics" in relay("check").out
    fake_slack.script([("429", 0.2)])  # the first post is rate limited, then goes through
    daemon = relay.start()
    try:
        wait_until(lambda: len(fake_slack.posts) == 2 and feed_server.hits("/down.xml") >= 1, timeout=30)
        with httpx.Client(trust_env=False, timeout=10) as client:
            m = client.get(f"{base}/metrics")
            got = samples(m.text)
            assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert got['feedrelay_feed_up{feed="Fine"}'] == 1 and got['feedrelay_feed_up{feed="Down"}'] == 0
            assert got['feedrelay_feed_consecutive_errors{feed="Down"}'] >= 1
            assert got['feedrelay_outbox_messages{channel="readings",state="sent"}'] == 2
            assert got['feedrelay_outbox_messages{channel="readings",state="pending"}'] == 0
            assert got['feedrelay_channel_failing{channel="readings"}'] == 0
            assert got["feedrelay_feeds"] == 2 and got["process_resident_memory_bytes"] > 10_000_000
            assert 0 <= time.time() - got['feedrelay_feed_last_success_timestamp_seconds{feed="Fine"}'] < 60
            assert got["feedrelay_start_time_seconds"] != int(got["feedrelay_start_time_seconds"])  # every digit
            # Counters since start: what happened, for rates.
            assert got['feedrelay_polls_total{result="changed"}'] >= 1
            assert got['feedrelay_polls_total{result="failed"}'] >= 1
            assert got['feedrelay_polls_total{result="deferred"}'] == 0  # known series start at 0
            assert got["feedrelay_items_new_total"] == 2
            assert got['feedrelay_messages_queued_total{channel="readings"}'] == 2
            assert got['feedrelay_send_attempts_total{channel="readings",outcome="sent"}'] == 2
            assert got['feedrelay_send_attempts_total{channel="readings",outcome="rate_limited"}'] == 1
            assert got['feedrelay_send_attempts_total{channel="readings",outcome="refused"}'] == 0
            assert "# TYPE feedrelay_send_attempts_total counter" in m.text
            # Histograms: how long polls take, and how long a message waits from queued to sent.
            assert got['feedrelay_delivery_latency_seconds_count{channel="readings"}'] == 2
            assert got['feedrelay_delivery_latency_seconds_bucket{channel="readings",le="+Inf"}'] == 2
            assert 0 < got['feedrelay_delivery_latency_seconds_sum{channel="readings"}'] < 30
            assert got['feedrelay_poll_duration_seconds_count{result="changed"}'] >= 1
            assert got['feedrelay_poll_duration_seconds_count{result="failed"}'] >= 1
            assert "# TYPE feedrelay_poll_duration_seconds histogram" in m.text
            # The standard process metrics, as every exporter has them.
            assert got["process_cpu_seconds_total"] > 0 and got["process_open_fds"] > 0
            assert got["process_start_time_seconds"] <= time.time()
            # What Prometheus itself sends: OpenMetrics if it asks, gzip if it accepts it.
            om = client.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0",
                                                         "Accept-Encoding": "gzip"})
            assert om.headers["content-type"].startswith("application/openmetrics-text")
            assert om.headers["content-encoding"] == "gzip" and om.text.rstrip().endswith("# EOF")
            for secret in (TOKEN, "feed-secret", "/ok.xml", "#readings", "Service Unavailable"):
                assert secret not in m.text

            assert client.get(f"{base}/healthz").text == "ok\n"
            assert client.get(f"{base}/other").status_code == 404
            assert client.post(f"{base}/metrics").status_code == 405

            # A client that connects and says nothing, and one that sends an endless header, hold nothing up.
            with socket.create_connection(("127.0.0.1", port)) as silent, \
                    socket.create_connection(("127.0.0.1", port)) as flood:
                flood.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 100_000)
                assert client.get(f"{base}/metrics").status_code == 200
                silent.settimeout(10)
                assert silent.recv(100) == b""  # closed after the read timeout, without an answer
    finally:
        result = daemon.stop()
    assert result.code == 0, result.err
    assert "metrics at http://127.0.0.1:" in result.err


def test_a_taken_port_is_reported_and_the_relay_runs_on(relay: Relay, feed_server: FeedServer,
                                                        fake_slack: FakeSlack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        feed_server.set("/f.xml", rss(make_items(1)))
        relay.configure(metrics={"listen": f"127.0.0.1:{port}"},
                        feeds=[{"name": "F", "url": feed_server.url("/f.xml"), "channels": ["readings"], "backlog": 1}])
        daemon = relay.start()
        try:
            wait_until(lambda: fake_slack.posts, timeout=30)
        finally:
            result = daemon.stop()
    assert result.code == 0
    assert re.search(r"metrics: cannot listen for http://127\.0\.0\.1:\d+/metrics \(.*\); check \[metrics\] listen",
                     result.err)


def test_names_are_escaped_as_the_exposition_format_requires(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    name = 'Team "core" \\ blog\nsecond line'
    store.ensure_feed(name, "https://example.com/feed", "rss")
    store.close()
    metrics = Metrics()
    metrics.watch(str(tmp_path / "m.db"), lambda: ([name], ["readings"]))
    status, body, _ = metrics.exposition()
    text = body.decode()
    assert status == "200 OK"
    assert 'feedrelay_feed_up{feed="Team \\"core\\" \\\\ blog\\nsecond line"} 1' in text
    assert sum(line.startswith("feedrelay_feed_up{") for line in text.splitlines()) == 1  # one sample, one line


@pytest.mark.parametrize("listen", ["9464", "localhost", "127.0.0.1:0", "127.0.0.1:70000", ":9464"])
def test_a_bad_listen_address_is_a_config_error(relay: Relay, listen: str) -> None:
    relay.configure(metrics={"listen": listen}, feeds=[{"name": "F", "url": "http://127.0.0.1:9/f.xml",
                                                       "channels": ["readings"]}])
    result = relay("check")
    assert result.code == 2 and "Traceback" not in result.output
    assert "metrics.listen" in result.err and "HOST:PORT" in result.err


def test_each_relay_counts_on_a_registry_of_its_own(tmp_path: Path) -> None:
    """Two relays in one process (tests, library users) do not share or collide on metrics."""
    a, b = Metrics(), Metrics()
    a.poll("changed", 0.2, new=3)
    a.send_attempt("readings", "sent")
    got_a, got_b = (samples(m.exposition()[1].decode()) for m in (a, b))
    assert got_a['feedrelay_polls_total{result="changed"}'] == 1 and got_a["feedrelay_items_new_total"] == 3
    assert got_b['feedrelay_polls_total{result="changed"}'] == 0 and got_b["feedrelay_items_new_total"] == 0
    assert got_a['feedrelay_poll_duration_seconds_bucket{le="0.25",result="changed"}'] == 1
    assert 'feedrelay_send_attempts_total{channel="readings",outcome="sent"}' not in got_b
