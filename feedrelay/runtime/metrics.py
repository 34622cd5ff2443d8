"""Prometheus metrics for the running daemon, at ``http://LISTEN/metrics`` (``[metrics] listen``).

Gauges are read from the database at scrape time, the same rows ``feedrelay status`` shows, so the two
always agree. Counters (polls by result, items, messages queued and send attempts by outcome) are kept in
memory since the daemon started, for rates; Prometheus expects them to restart from zero with the process.
Nothing secret is exported: no URL (a feed URL may carry a
token in its query), no error text, no Slack target; feeds and channels are named as in feeds.toml.
``/healthz`` answers 200 while the daemon runs. The server is for a scraper on a private network: it has no
authentication, reads at most a small request head, and gives a silent client a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable

from feedrelay import __version__
from feedrelay.delivery.outbox import Outbox
from feedrelay.runtime.alerts import CHANNEL_FAILING, RUNBOOKS
from feedrelay.store import DB_ERRORS, Store

log = logging.getLogger(__name__)

MAX_HEAD = 8192  # bytes of request line and headers read from a client
READ_TIMEOUT = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# name → help text. Labels stay few and bounded: results and outcomes are fixed sets, channels come from
# feeds.toml; per-feed detail is in the gauges, so 10,000 feeds do not become 40,000 counter series.
COUNTERS = {
    "feedrelay_polls_total": "Feed polls by result: changed (parsed), unchanged (304 or same bytes), failed, "
                             "deferred (the server's Retry-After had not passed).",
    "feedrelay_items_new_total": "Entries seen for the first time (remembered for dedupe).",
    "feedrelay_messages_queued_total": "Messages written to the outbox, per channel.",
    "feedrelay_send_attempts_total": "Attempts to post, per channel and outcome: sent, rate_limited (Slack said "
                                     "when to retry), retry (an outage or timeout), refused (the channel is "
                                     "failing), rejected (the message was refused even as plain text).",
}


POLL_RESULTS = ("changed", "unchanged", "failed", "deferred")
SEND_OUTCOMES = ("sent", "rate_limited", "retry", "refused", "rejected")


class Counters:
    """Monotonic totals since start; cheap enough for the hot path (a dict update per poll or post)."""

    def __init__(self) -> None:
        self._values: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def add(self, name: str, amount: int = 1, **labels: str) -> None:
        if amount:
            self._values[(name, tuple(sorted(labels.items())))] += amount

    def samples(self, name: str, known: Iterable[dict[str, str]] = ()) -> list[tuple[dict[str, str], float]]:
        """Every series of ``name``; the ``known`` label sets appear from the start, at 0, so rates work at once."""
        values = dict.fromkeys((tuple(sorted(labels.items())) for labels in known), 0)
        values.update((labels, v) for (n, labels), v in self._values.items() if n == name)
        return [(dict(labels), v) for labels, v in sorted(values.items())]


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"


def _label(value: str) -> str:
    """A label value in the text exposition format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(lines: list[str], name: str, kind: str, help_text: str,
            samples: Iterable[tuple[dict[str, str], float]]) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        number = str(int(value)) if float(value).is_integer() else repr(float(value))  # timestamps keep every digit
        lines.append(f"{name}{{{text}}} {number}" if text else f"{name} {number}")


def _process() -> tuple[float | None, int | None]:
    """(resident memory in bytes, open file descriptors) of this process, where /proc has them."""
    rss = fds = None
    with contextlib.suppress(OSError, ValueError), open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError):
        fds = len(os.listdir("/proc/self/fd"))
    return rss, fds


def render(store: Store, feeds: Iterable[str], channels: Iterable[str], *, started: float,
           now: float | None = None, counters: Counters | None = None) -> str:
    """The exposition text for the configured ``feeds`` and ``channels``."""
    now = time.time() if now is None else now
    configured = set(feeds)
    rows = [f for f in store.feed_health() if f[0] in configured]
    stats = Outbox(store).channel_stats()
    names = sorted(set(channels) | set(stats))
    lines: list[str] = []
    _metric(lines, "feedrelay_info", "gauge", "feedrelay's version.", [({"version": __version__}, 1)])
    _metric(lines, "feedrelay_start_time_seconds", "gauge", "When the daemon started (Unix time).", [({}, started)])
    _metric(lines, "feedrelay_feeds", "gauge", "Feeds in the configuration.", [({}, len(configured))])
    _metric(lines, "feedrelay_feed_up", "gauge", "1 if the feed's last poll succeeded (or it was never polled), "
            "0 if it is failing.", [({"feed": name}, 0 if failing else 1) for name, failing, *_ in rows])
    _metric(lines, "feedrelay_feed_consecutive_errors", "gauge", "Failed polls in a row.",
            [({"feed": name}, errors) for name, _, errors, *_ in rows])
    _metric(lines, "feedrelay_feed_last_success_timestamp_seconds", "gauge",
            "When the feed was last polled successfully (Unix time).",
            [({"feed": name}, success) for name, _, _, success, _ in rows if success])
    _metric(lines, "feedrelay_feed_last_poll_timestamp_seconds", "gauge", "When the feed was last polled.",
            [({"feed": name}, poll) for name, _, _, _, poll in rows if poll])
    _metric(lines, "feedrelay_outbox_messages", "gauge",
            "Messages in the outbox by state: pending (to send), failed (rejected by Slack), sent (kept for dedupe).",
            [({"channel": c, "state": s}, stats.get(c, {}).get(s, 0)) for c in names
             for s in ("pending", "failed", "sent")])
    _metric(lines, "feedrelay_outbox_oldest_pending_age_seconds", "gauge",
            "Age of the oldest message waiting in each channel (0 when none waits).",
            [({"channel": c}, max(0.0, now - o) if (o := stats.get(c, {}).get("oldest_pending")) else 0)
             for c in names])
    _metric(lines, "feedrelay_channel_failing", "gauge",
            f"1 while Slack refuses the channel (see {RUNBOOKS}#{CHANNEL_FAILING}).",
            [({"channel": c}, 1 if stats.get(c, {}).get("failing") else 0) for c in names])
    counters = counters or Counters()
    known: dict[str, list[dict[str, str]]] = {
        "feedrelay_polls_total": [{"result": r} for r in POLL_RESULTS],
        "feedrelay_items_new_total": [{}],
        "feedrelay_messages_queued_total": [{"channel": c} for c in names],
        "feedrelay_send_attempts_total": [{"channel": c, "outcome": o} for c in names for o in SEND_OUTCOMES],
    }
    for name, help_text in COUNTERS.items():
        _metric(lines, name, "counter", help_text, counters.samples(name, known[name]))
    rss, fds = _process()
    if rss is not None:
        _metric(lines, "process_resident_memory_bytes", "gauge", "Resident memory of the relay process "
                "(parse workers not included).", [({}, rss)])
    if fds is not None:
        _metric(lines, "process_open_fds", "gauge", "Open file descriptors of the relay process.", [({}, fds)])
    return "\n".join(lines) + "\n"


async def serve(host: str, port: int, body: Callable[[], str]) -> asyncio.Server:
    """Start the HTTP endpoint; ``body()`` renders /metrics. Close the returned server to stop it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, text = "405 Method Not Allowed", "only GET\n"
            elif path == b"/metrics":
                try:
                    status, text = "200 OK", body()
                except DB_ERRORS as exc:
                    log.error("metrics: cannot read the database: %s", exc)
                    status, text = "503 Service Unavailable", "the database cannot be read; see the log\n"
            elif path == b"/healthz":
                status, text = "200 OK", "ok\n"
            else:
                status, text = "404 Not Found", "try /metrics or /healthz\n"
            data = text.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len(data)}\r\n"
                         "Connection: close\r\n\r\n".encode() + (b"" if method == b"HEAD" else data))
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a silent, slow or oversized client gets nothing and costs nothing more
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_HEAD)
