"""Prometheus metrics for the running daemon, at ``http://LISTEN/metrics`` (``[metrics] listen``), with
prometheus-client.

Gauges are read from the database at scrape time (:class:`DatabaseCollector`), the same rows ``feedrelay
status`` shows, so the two always agree. Counters (polls by result, new entries, messages queued, send attempts
by outcome) and histograms (poll duration, delivery latency) are kept in memory since the daemon started;
Prometheus expects them to restart from zero with the process. Each :class:`Metrics` has a registry of its own,
not prometheus-client's global one, so several relays (tests, library users) can run in one process.

Nothing secret is exported: no URL (a feed URL may carry a token in its query), no error text, no Slack target;
feeds and channels are named as in feeds.toml. ``/healthz`` answers 200 while the daemon runs.

The server runs in threads of its own (the standard library's WSGI server), and each scrape reads the database
through a read-only connection of its own: a scrape never waits for the event loop, nor the event loop for a
scrape's queries. It is for a scraper on a private network: no authentication, a silent client is dropped after
a few seconds, a request head is read up to the standard library's limits.
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from feedrelay import __version__
from feedrelay.delivery.outbox import Outbox
from feedrelay.runtime.alerts import CHANNEL_FAILING, RUNBOOKS
from feedrelay.store import DB_ERRORS, Store

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0  # seconds a client may take to send its request

POLL_RESULTS = ("changed", "unchanged", "failed", "deferred")
SEND_OUTCOMES = ("sent", "rate_limited", "retry", "refused", "rejected")
# A poll: a 304 on loopback takes milliseconds, a distant server's full listing seconds, a timeout 30 s.
POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Queued → sent: ~0.3 s on an idle channel; pacing, rate limits and outages stretch it to minutes or hours.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


Names = Callable[[], tuple[Iterable[str], Iterable[str]]]  # () → (configured feed names, channel names)


class DatabaseCollector(Collector):
    """Per-feed and per-channel gauges, read from the database when Prometheus scrapes."""

    def __init__(self, db_path: str, names: Names) -> None:
        self.db_path = db_path
        self.names = names  # the current configuration's: feeds come and go with live reloads

    def collect(self) -> Iterator[Metric]:
        feeds, channels = self.names()
        configured = set(feeds)
        # A connection of this scrape's own (the relay's belongs to the event loop's thread); with WAL, readers
        # and the relay's writer do not wait for each other.
        store = Store(self.db_path, readonly=True)
        try:
            rows = [f for f in store.feed_health() if f[0] in configured]
            stats = Outbox(store).channel_stats()
        finally:
            store.close()
        names = sorted(set(channels) | set(stats))
        now = time.time()

        yield GaugeMetricFamily("feedrelay_feeds", "Feeds in the configuration.", value=len(configured))
        up = GaugeMetricFamily("feedrelay_feed_up", "1 if the feed's last poll succeeded (or it was never polled), "
                               "0 if it is failing.", labels=["feed"])
        errors = GaugeMetricFamily("feedrelay_feed_consecutive_errors", "Failed polls in a row.", labels=["feed"])
        success = GaugeMetricFamily("feedrelay_feed_last_success_timestamp_seconds",
                                    "When the feed was last polled successfully (Unix time).", labels=["feed"])
        polled = GaugeMetricFamily("feedrelay_feed_last_poll_timestamp_seconds", "When the feed was last polled.",
                                   labels=["feed"])
        for name, failing, n, last_success, last_poll in rows:
            up.add_metric([name], 0 if failing else 1)
            errors.add_metric([name], n)
            if last_success:
                success.add_metric([name], last_success)
            if last_poll:
                polled.add_metric([name], last_poll)
        yield from (up, errors, success, polled)

        outbox = GaugeMetricFamily("feedrelay_outbox_messages", "Messages in the outbox by state: pending (to "
                                   "send), failed (rejected by Slack), sent (kept for dedupe).",
                                   labels=["channel", "state"])
        oldest = GaugeMetricFamily("feedrelay_outbox_oldest_pending_age_seconds",
                                   "Age of the oldest message waiting in each channel (0 when none waits).",
                                   labels=["channel"])
        failing_channel = GaugeMetricFamily("feedrelay_channel_failing",
                                            f"1 while Slack refuses the channel (see {RUNBOOKS}#{CHANNEL_FAILING}).",
                                            labels=["channel"])
        for c in names:
            s = stats.get(c, {})
            for state in ("pending", "failed", "sent"):
                outbox.add_metric([c, state], s.get(state, 0))
            o = s.get("oldest_pending")
            oldest.add_metric([c], max(0.0, now - o) if o else 0)
            failing_channel.add_metric([c], 1 if s.get("failing") else 0)
        yield from (outbox, oldest, failing_channel)


class Metrics:
    """What the relay counts, on a registry of its own. Cheap on the hot path (a locked add per poll or post)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Info("feedrelay", "feedrelay's version.", registry=r).info({"version": __version__})
        self.started = Gauge("feedrelay_start_time_seconds", "When the daemon started (Unix time).", registry=r)
        self.started.set(time.time())
        self.polls = Counter("feedrelay_polls", "Feed polls by result: changed (parsed), unchanged (304 or same "
                             "bytes), failed, deferred (the server's Retry-After had not passed).", ["result"],
                             registry=r)
        self.items_new = Counter("feedrelay_items_new", "Entries seen for the first time (remembered for dedupe).",
                                 registry=r)
        self.queued = Counter("feedrelay_messages_queued", "Messages written to the outbox, per channel.",
                              ["channel"], registry=r)
        self.send_attempts = Counter("feedrelay_send_attempts", "Attempts to post, per channel and outcome: sent, "
                                     "rate_limited (Slack said when to retry), retry (an outage or timeout), refused "
                                     "(the channel is failing), rejected (the message was refused even as plain "
                                     "text).", ["channel", "outcome"], registry=r)
        self.poll_duration = Histogram("feedrelay_poll_duration_seconds", "How long a poll took, fetch to commit, "
                                       "by result (deferred polls are not timed).", ["result"],
                                       buckets=POLL_BUCKETS, registry=r)
        self.delivery_latency = Histogram("feedrelay_delivery_latency_seconds", "From a message's queueing to "
                                          "Slack accepting it, per channel.", ["channel"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        for result in POLL_RESULTS:  # known series exist from the start, at 0, so rate() works at once
            self.polls.labels(result)
            if result != "deferred":
                self.poll_duration.labels(result)
        self._channels: set[str] = set()
        # The relay process's memory, CPU, open files (parse workers not included), as every exporter has them.
        ProcessCollector(registry=r)

    def watch(self, db_path: str, names: Names) -> None:
        """Export the database's per-feed and per-channel gauges at each scrape."""
        self.registry.register(DatabaseCollector(db_path, names))

    def channels(self, names: Iterable[str]) -> None:
        """Channels whose series should exist (at 0) before anything happens to them."""
        for channel in set(names) - self._channels:
            self._channels.add(channel)
            self.queued.labels(channel)
            self.delivery_latency.labels(channel)
            for outcome in SEND_OUTCOMES:
                self.send_attempts.labels(channel, outcome)

    # --- the hot path ---------------------------------------------------------------------------

    def poll(self, result: str, seconds: float, new: int = 0) -> None:
        self.polls.labels(result).inc()
        if result != "deferred":
            self.poll_duration.labels(result).observe(seconds)
        if new:
            self.items_new.inc(new)

    def messages_queued(self, channel: str, n: int = 1) -> None:
        if n:
            self.queued.labels(channel).inc(n)

    def send_attempt(self, channel: str, outcome: str) -> None:
        self.send_attempts.labels(channel, outcome).inc()

    def delivered(self, channel: str, latency: float) -> None:
        self.delivery_latency.labels(channel).observe(max(0.0, latency))

    # --- exposition -------------------------------------------------------------------------------

    def exposition(self, accept: str = "", accept_encoding: str = "") -> tuple[str, bytes, dict[str, str]]:
        """(status, body, headers) of a scrape, in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept)
        try:
            body = encoder(self.registry)
        except DB_ERRORS as exc:
            log.error("metrics: cannot read the database: %s", exc)
            return "503 Service Unavailable", b"the database cannot be read; see the log\n", {}
        headers = {"Content-Type": content_type}
        if "gzip" in accept_encoding:
            body = gzip.compress(body, compresslevel=1)  # (10,000 feeds are ~3 MB of text)
            headers["Content-Encoding"] = "gzip"
        return "200 OK", body, headers


class _Handler(WSGIRequestHandler):
    timeout = READ_TIMEOUT  # a client that sends nothing is dropped after this

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every scrape would be a log line


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a client mid-request never holds up the relay's exit
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a silent, slow or oversized client gets nothing and costs nothing more (no traceback)


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass
class Endpoint:
    """The running HTTP server of /metrics and /healthz."""

    server: WSGIServer
    thread: threading.Thread

    def close(self) -> None:
        self.server.shutdown()  # (returns within the server's 0.5 s poll interval)
        self.server.server_close()


def app(metrics: Metrics) -> Callable[..., Iterable[bytes]]:
    """The WSGI application: /metrics, /healthz, and nothing else."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        headers: dict[str, str] = {}
        if method not in ("GET", "HEAD"):
            status, body = "405 Method Not Allowed", b"only GET\n"
        elif path == "/metrics":
            status, body, headers = metrics.exposition(environ.get("HTTP_ACCEPT", ""),
                                                       environ.get("HTTP_ACCEPT_ENCODING", ""))
        elif path == "/healthz":
            status, body = "200 OK", b"ok\n"
        else:
            status, body = "404 Not Found", b"try /metrics or /healthz\n"
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        headers["Content-Length"] = str(len(body))
        start_response(status, list(headers.items()))
        return [b"" if method == "HEAD" else body]

    return application


def serve(host: str, port: int, metrics: Metrics) -> Endpoint:
    """Start the HTTP endpoint in a thread; raises OSError if the address cannot be bound."""
    server = make_server(host, port, app(metrics), server_class=_Server6 if ":" in host else _Server,
                         handler_class=_Handler)
    thread = threading.Thread(target=server.serve_forever, name="feedrelay-metrics", daemon=True)
    thread.start()
    return Endpoint(server, thread)
