"""Refreshing EPSS scores: a conditional GET of FIRST's daily file at most once per `refresh`, the file loaded
whole in one transaction with what it changes (candidates that now pass are posted, stories whose EPSS crossed a
route's bar get their update), and failures treated as a failing feed's are (status, alerts, Retry-After)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from feedrelay import render
from feedrelay.config import Config
from feedrelay.decide.epss import CANDIDATE_DAYS, rescore
from feedrelay.decide.lifecycle import Story
from feedrelay.delivery.outbox import Outbox
from feedrelay.ingest.epss import EpssFile, EpssFileError, parse
from feedrelay.ingest.fetch import Fetcher, FetchError, public_url
from feedrelay.model import Delivery, Score
from feedrelay.runtime.alerts import feed_failing, feed_incident, feed_recovered
from feedrelay.store import DB_ERRORS, Store, describe
from feedrelay.store.epss import EPSS
from feedrelay.store.stories import Stories

log = logging.getLogger(__name__)

NAME = "EPSS"  # how status, logs and alerts name it
RETRY = 3600.0  # after a failed check, the next one comes this soon (or at `refresh`, if that is sooner)
TICK = 300.0  # how often the daemon asks whether a check is due
MAX_COMPRESSED = 64_000_000  # the real file is ~2.5 MB gzipped
TIMEOUT = 120.0


@dataclass
class EpssReport:
    checked: bool = False  # a request was made
    unchanged: bool = False  # 304, or the same file again
    loaded: int = 0  # rows loaded
    score_date: str = ""
    error: str | None = None
    queued: list[Delivery] = field(default_factory=list)  # posts, updates and alerts


def due(config: Config, store: Store, now: float) -> bool:
    settings = config.epss
    if settings is None:
        return False
    info = EPSS(store).info()
    if info.not_before and now < info.not_before:
        return False
    if info.error and info.attempted:  # (first: a new url that fails is not tried at every tick)
        return now >= info.attempted + min(RETRY, settings.refresh)
    if info.url and info.url != settings.url:
        return True  # a new url: its file now
    return info.checked is None or now >= info.checked + settings.refresh


def make_fetcher(config: Config, environ: dict[str, str] | None = None) -> Fetcher:
    d = config.defaults
    return Fetcher(timeout=max(d.timeout, TIMEOUT), max_body=MAX_COMPRESSED, max_redirects=d.max_redirects,
                   per_host=1, environ=environ or {})


async def refresh(config: Config, store: Store, outbox: Outbox, fetcher: Fetcher, *, now: float | None = None,
                  force: bool = False) -> EpssReport | None:
    """Check for a new EPSS file if one is due (``force``: now); None when none was due or EPSS is not used."""
    now = time.time() if now is None else now
    settings = config.epss
    if settings is None or not (force or due(config, store, now)):
        return None
    epss = EPSS(store)
    info = epss.info()
    same_url = info.url == settings.url
    where = public_url(settings.url)
    report = EpssReport(checked=True)
    try:
        resp = await fetcher.get(settings.url, etag=info.etag if same_url else None,
                                 last_modified=info.last_modified if same_url else None,
                                 accept="application/gzip, text/csv;q=0.9, */*;q=0.1")
    except FetchError as exc:
        return _failed(config, store, outbox, info, f"{NAME} scores from {where}: {exc}", exc.retry_after, now,
                       report)
    if resp.status == 304:
        with store.transaction():
            epss.note(checked=now, attempted=now, error="", errors=0, error_since=None, not_before=None)
            report.queued = _recovery(config, outbox, info, now)
        report.unchanged = True
        report.score_date = info.score_date
        log.info("%s: %s unchanged (scores of %s kept)", NAME, where, info.score_date or "?")
        return report
    digest = hashlib.sha256(resp.body).hexdigest()
    validators = {"etag": resp.etag or "", "last_modified": resp.last_modified or "", "url": settings.url}
    if same_url and digest == info.body_hash and info.rows:
        with store.transaction():
            epss.note(checked=now, attempted=now, error="", errors=0, error_since=None, not_before=None,
                      **validators)
            report.queued = _recovery(config, outbox, info, now)
        report.unchanged, report.score_date = True, info.score_date
        return report
    meta = EpssFile()
    started = time.monotonic()
    try:
        with store.transaction():
            epss.replace_scores(_rows(resp.body, meta))
            # (the rescoring reads the new scores inside the same transaction: all of it is kept, or none)
            report.queued = _rescore(config, store, outbox, epss, meta.score_date, now, baseline=not info.rows)
            epss.note(checked=now, attempted=now, loaded=now, error="", errors=0, error_since=None, not_before=None,
                      score_date=meta.score_date, model_version=meta.model_version, rows=meta.rows, body_hash=digest,
                      **validators)
            report.queued += _recovery(config, outbox, info, now)
    except EpssFileError as exc:
        kept = f"; the scores of {info.score_date} are kept" if info.rows else ""
        return _failed(config, store, outbox, info, f"{NAME} scores from {where}: {exc}{kept}", None, now, report)
    report.loaded, report.score_date = meta.rows, meta.score_date
    extra = f", {meta.bad_rows} odd row(s) skipped" if meta.bad_rows else ""
    log.info("%s: loaded %d scores of %s from %s in %.1f s%s; %d message(s) queued", NAME, meta.rows,
             meta.score_date or "an undated file", where, time.monotonic() - started, extra, len(report.queued))
    return report


def _rows(body: bytes, meta: EpssFile) -> Iterator[tuple[str, float, float]]:
    yield from parse(body, meta)


def _rescore(config: Config, store: Store, outbox: Outbox, epss: EPSS, date: str, now: float, *,
             baseline: bool) -> list[Delivery]:
    """Inside the load's transaction: post the candidates that now pass, tell the stories that crossed a bar."""
    epss.settle(older_than=now - CANDIDATE_DAYS * 86400)
    routes = [r for f in config.feeds for r in f.routes if r.filter.epss_bar]
    if not routes:
        return []
    # The lowest bar of any route: a CVE below it cannot pass one, and is not read (there may be tens of thousands).
    floor = Score(min(r.filter.min_epss or 0.0 for r in routes), min(r.filter.min_epss_percentile or 0.0
                                                                        for r in routes))
    candidates = epss.candidates(floor)
    stories: dict[tuple[str, str], Story] = {}
    for channel, story, state, first in epss.stories_with_scores({r.channel for r in routes}, floor):
        stories[(channel, story)] = Story(json.loads(state) if state else None, first)
    if candidates:
        stories.update(Stories(store).get([c.channel for c in candidates], [c.story for c in candidates]))
    ids = {s for _, s in stories} | {c.story for c in candidates}
    out = rescore(config, candidates, stories, epss.lookup(ids), date=date, now=now, baseline=baseline)
    queued = outbox.enqueue(render.deliveries(out.intents), window=config.defaults.dedupe_window, now=now)
    started = {(d.channel, d.story) for d in queued if d.action == "post"}
    writes = [w for w in out.stories if not w.new or (w.channel, w.story) in started]
    by_feed: dict[str, list] = {}
    feed_of = {(i.channel, i.story): i.feed for i in out.intents}
    for w in writes:
        by_feed.setdefault(feed_of.get((w.channel, w.story), "(epss)"), []).append(w)
    for feed, ws in by_feed.items():
        Stories(store).write(feed, ws, now)
    epss.forget(out.dropped)
    for v in out.verdicts:
        log.debug("%s: %s → %s: %s", NAME, v.item.key, v.channel, v.decision.reason)
    return queued


def _recovery(config: Config, outbox: Outbox, info: object, now: float) -> list[Delivery]:
    from feedrelay.store.epss import EpssInfo

    assert isinstance(info, EpssInfo)
    alerts = config.alerts
    if not (alerts and info.errors and info.error_since):
        return []
    if not outbox.queued_before(alerts.channel, feed_incident(NAME, info.error_since)):
        return []
    log.info("%s: works again after %d failed check(s)", NAME, info.errors)
    return outbox.enqueue([feed_recovered(alerts, NAME, since=info.error_since, now=now)],
                          window=config.defaults.dedupe_window, now=now)


def _failed(config: Config, store: Store, outbox: Outbox, info: object, error: str, retry_after: float | None,
            now: float, report: EpssReport) -> EpssReport:
    from feedrelay.runtime.pipeline import MAX_RETRY_AFTER
    from feedrelay.store.epss import EpssInfo

    assert isinstance(info, EpssInfo)
    log.warning("%s", error)
    report.error = error
    since = info.error_since or now
    not_before = now + min(retry_after, MAX_RETRY_AFTER) if retry_after else None
    try:
        with store.transaction():
            EPSS(store).note(attempted=now, error=error, errors=info.errors + 1, error_since=since,
                             not_before=not_before)
            alert = config.alerts and feed_failing(config.alerts, NAME, error, since=since, attempts=info.errors + 1,
                                                   now=now, hint="It is checked again within the hour; `feedrelay "
                                                                 "status` shows the scores kept.")
            if alert:
                report.queued = outbox.enqueue([alert], window=config.defaults.dedupe_window, now=now)
    except DB_ERRORS as exc:
        log.error("%s: cannot record the error: %s", NAME, describe(exc, store.path))
    return report
