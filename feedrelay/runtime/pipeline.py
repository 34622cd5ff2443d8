"""One poll of one feed, stage by stage: source → store (what is new) → decider (filters, routing) → render
→ outbox, in one transaction. Every stage's I/O happens here; every decision is in `decide`, every message in
`render`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from feedrelay import render
from feedrelay.config import Alerts, Feed
from feedrelay.decide import caps, daily, filters
from feedrelay.decide.decider import Plan, decide_poll
from feedrelay.decide.lifecycle import Outcome, StoryWrite, judge, story_key, tracked
from feedrelay.decide.mentions import attach, mentioned
from feedrelay.delivery.outbox import Outbox
from feedrelay.model import CveFacts, Delivery, Intent, Item, Lookalike
from feedrelay.registry import is_security
from feedrelay.runtime.alerts import feed_failing, feed_incident, feed_recovered
from feedrelay.sources import PollResult, Source, SourceError
from feedrelay.sources.cve_lookup import CveLookup
from feedrelay.store import DB_ERRORS, FeedRow, Store, StoreError, damaged, describe
from feedrelay.store.cve_facts import CacheRules, CveFactsTable
from feedrelay.store.epss import EPSS
from feedrelay.store.stories import Stories

log = logging.getLogger(__name__)

# A server's Retry-After is honoured up to this: a misconfigured "come back in a week" must not silence a feed.
MAX_RETRY_AFTER = 24 * 3600.0
# Feeds with regex rules are filtered in these threads, not on the event loop: a pattern that backtracks for a
# poll's whole filter budget must not hold up other feeds' polls or deliveries (`regex` releases the GIL while
# it searches). Two, so that one feed's bad pattern does not queue every other feed's filtering behind it.
_FILTER_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feedrelay-filter")
VALIDATORS = ("etag", "last_modified", "body_hash")


@dataclass
class FeedReport:
    feed: str
    new: int = 0
    queued: int = 0
    channels: frozenset[str] = frozenset()
    queued_to: Counter[str] = field(default_factory=Counter)  # messages queued per channel, alerts included
    unchanged: bool = False
    skipped: bool = False
    stale: bool = False  # the feed's URL or type changed while it was polled: nothing of the poll was kept
    first_poll: bool = False
    error: str | None = None
    warning: str | None = None
    more: bool = False  # the source has more to give at once (an NVD catch-up read in parts)
    held: int = 0  # new entries the filters could not judge in time: kept for a later poll


async def poll_feed(feed: Feed, source: Source, store: Store, outbox: Outbox, *, dedupe_window: float,
                    alerts: Alerts | None = None, now: float | None = None, epss: bool = False,
                    cves: CveLookup | None = None) -> FeedReport:
    """Poll once and queue what is new. Never raises for a feed's own problems: they are recorded. ``epss``:
    security items get their CVE's EPSS score from the store before the filters run. ``cves``: NVD lookups of the
    CVEs an RSS entry mentions that no feed told of (None: lookups off)."""
    now = time.time() if now is None else now
    try:
        row = store.feed(feed.name) or store.ensure_feed(feed.name, feed.url, feed.kind)
    except DB_ERRORS as exc:
        if damaged(exc):
            raise StoreError(describe(exc, store.path)) from None
        log.error("feed %r: %s", feed.name, describe(exc, store.path))
        return FeedReport(feed.name, error=describe(exc, store.path))
    if row.not_before and now < row.not_before:
        log.info("feed %r: not polled until %s, as the server asked (Retry-After)", feed.name,
                 time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row.not_before)))
        return FeedReport(feed.name, skipped=True)
    try:
        result = await source.poll(row.state)
    except SourceError as exc:
        if _moved_on(store, feed):
            return FeedReport(feed.name, stale=True)
        return _failed(store, outbox, feed, row, str(exc), exc.retry_after, alerts, dedupe_window, now)
    except Exception as exc:  # a bug or a parser crash on hostile input must not stop other feeds
        log.exception("feed %r: unexpected error while polling", feed.name)
        return _failed(store, outbox, feed, row, f"internal error: {type(exc).__name__}: {str(exc)[:300]}", None,
                       alerts, dedupe_window, now)
    if _moved_on(store, feed):
        # A live edit gave the feed a new URL or type during the fetch: this listing belongs to the old one, and
        # keeping it would mark the new URL as polled, so its first real poll would post its whole archive.
        log.info("feed %r: its URL or type changed while it was polled; that poll is dropped", feed.name)
        return FeedReport(feed.name, stale=True)

    try:
        if result.unchanged:
            # (a hold runs out at a poll of the feed, even one that brings nothing new)
            life = _lifecycle(feed, store, [], Plan(), set(), now, False) if tracked(feed) else None
            with store.transaction():
                warning = row.warning if result.warning is None else result.warning or None
                store.record_success(feed.name, result.state, warning=warning, listed=None, now=now)
                released = _keep(store, outbox, feed, life, dedupe_window, now)
                recovered = _recovery(outbox, feed, row, alerts, dedupe_window, now)
            return FeedReport(feed.name, unchanged=True, channels=frozenset(d.channel for d in recovered + released),
                              queued_to=Counter(d.channel for d in recovered + released))
        if epss and is_security(feed.kind):
            result.items = EPSS(store).enrich(result.items)  # one batch lookup per poll
        known, lookalikes, upgraded = _inputs(feed, row, result.items, store)
        if not is_security(feed.kind):
            result = replace(result, items=await _enrich(feed, row, result.items, known, store, cves, now))
    except DB_ERRORS as exc:
        if damaged(exc):
            raise StoreError(describe(exc, store.path)) from None
        log.error("feed %r: %s", feed.name, describe(exc, store.path))
        return FeedReport(feed.name, error=describe(exc, store.path))
    plan, spent = await _decide(feed, row, result.items, known, lookalikes, upgraded, now)
    if _threaded(feed) and _moved_on(store, feed):  # (a live edit while the filters ran in their thread)
        return FeedReport(feed.name, stale=True)
    held = _hold(plan)
    state, warning = result.state, result.warning
    if held:
        why = _held_warning(feed, spent, held) if spent.exhausted or spent.culprit() else _lookup_warning(held)
        warning = "; ".join(w for w in (warning, why) if w)
        state = _replay_state(row.state, result)
    try:
        first = plan.first_poll
        gen = row.listing_gen + 1
        judged = [i for i in result.items if i.key not in held] if held else result.items
        life = _lifecycle(feed, store, judged, plan, known, now, not result.listing) if tracked(feed) else None
        with store.transaction():
            store.remember(feed.name, plan.remember, now, gen)
            if is_security(feed.kind):
                # (every CVE a security source returns: badges and rules of RSS entries that mention it)
                CveFactsTable(store).remember(result.items, now)
            if known:
                # (NVD returns what changed, not a listing: a CVE it keeps modifying is seen again, too)
                store.still_listed(feed.name, known, now, gen)
            if life is None:
                intents, parents = _place(store, feed, plan.intents, now)
                queued = outbox.enqueue(render.deliveries(intents), window=dedupe_window, now=now,
                                        except_feed=feed.name)
                _start(store, feed, parents, queued, now)
            else:
                queued = _keep(store, outbox, feed, life, dedupe_window, now)
            if epss:
                _epss_candidates(store, feed, plan, life)
            store.record_success(feed.name, state, warning=warning,
                                 listed=len(result.items) if result.listing else None, listing_gen=gen, now=now)
            recovered = _recovery(outbox, feed, row, alerts, dedupe_window, now)
    except DB_ERRORS as exc:
        if damaged(exc):
            raise StoreError(describe(exc, store.path)) from None
        # Nothing of this poll was kept; the next poll repeats it.
        log.error("feed %r: %s", feed.name, describe(exc, store.path))
        return FeedReport(feed.name, error=describe(exc, store.path))

    for v in plan.verdicts + (life.verdicts if life else []):
        log.debug("feed %r item %r → %s: %s", feed.name, v.item.title[:80], v.channel, v.decision.reason)
    if plan.moved:
        log.info("feed %r: the new URL lists what the feed did; polled as the same feed, moved", feed.name)
    if plan.reissued:
        log.info("feed %r: %d entry(ies) came back under a new id; remembered, not posted again", feed.name,
                 plan.reissued)
    if warning:
        log.warning("feed %r: %s", feed.name, warning)
    if first:
        log.info("feed %r: first poll, remembered %d item(s), queued %d (backlog = %d)",
                 feed.name, len(plan.remember), len(queued), feed.backlog)
    elif queued or plan.remember:
        log.info("feed %r: %d new item(s), %d message(s) queued", feed.name, len(plan.remember), len(queued))
    if life and (follow := sum(1 for d in queued if d.action == "reply" or (d.action == "post" and d.message.get(
            "changes")))):
        log.info("feed %r: %d change(s) to stories already posted, sent to their threads", feed.name, follow)
    return FeedReport(feed.name, new=len(plan.remember), queued=len(queued),
                      channels=frozenset(d.channel for d in queued + recovered), first_poll=first,
                      warning=warning, queued_to=Counter(d.channel for d in queued + recovered),
                      more=result.more and not held, held=len(held))


async def _decide(feed: Feed, row: FeedRow, items: list[Item], known: set[str],
                  lookalikes: Mapping[str, Sequence[Lookalike]], upgraded: Collection[str], now: float
                  ) -> tuple[Plan, filters.Budget]:
    """The poll's decision; in a filter thread when the feed has regex rules (see _FILTER_THREADS)."""
    if _threaded(feed):
        return await asyncio.get_running_loop().run_in_executor(
            _FILTER_THREADS, _decide_now, feed, row, items, known, lookalikes, upgraded, now)
    return _decide_now(feed, row, items, known, lookalikes, upgraded, now)


def _threaded(feed: Feed) -> bool:
    # Keywords are escaped words (linear time): only user patterns can backtrack, and the thread hop is not free.
    return any(r.filter.include_regex or r.filter.exclude_regex for r in feed.routes)


def _hold(plan: Plan) -> set[str]:
    """Keys of entries a route could not judge in time, taken out of the plan whole (every route of the entry):
    not remembered, so the next poll judges them again, and not posted anywhere yet."""
    held = {v.item.key for v in plan.verdicts if v.decision.undecided}
    if held:
        plan.remember = [i for i in plan.remember if i.key not in held]
        plan.intents = [i for i in plan.intents if i.item.key not in held]
    return held


def _replay_state(old: dict[str, Any], result: PollResult) -> dict[str, Any]:
    """The source state that makes the next poll see the held entries again: a listing is fetched in full (no
    validators, so no 304 and no "same bytes" skip); a window of changes (NVD) is read again from where it was."""
    base = result.state if result.listing else old
    return {k: v for k, v in base.items() if k not in VALIDATORS}


async def _enrich(feed: Feed, row: FeedRow, items: list[Item], known: set[str], store: Store,
                  cves: CveLookup | None, now: float) -> list[Item]:
    """New entries with the facts of the CVEs they mention (``extra["mentions"]``: decide/mentions.py), looking up
    from NVD, within the poll's allowance, the ids nothing told of. Ids left over are pending: a route whose
    security rules they could decide holds the entry for a later poll."""
    if not row.initialized and not feed.backlog:
        return items  # a first poll only remembers
    ids = {i.key: found for i in items if i.key not in known and (found := mentioned(i))}
    if not ids:
        return items
    table = CveFactsTable(store)
    rules = CacheRules(cves.settings.refresh, cves.settings.retry_unknown) if cves else CacheRules()
    facts, stale = table.known({c for found in ids.values() for c in found}, rules, now)
    pending: set[str] = set()
    if stale and cves is not None:
        order = list(dict.fromkeys(c for found in ids.values() for c in found if c in stale))
        looked = await cves.lookup(order)
        with store.transaction():  # (kept even if the poll fails later: NVD's answers are facts of their own)
            table.looked_up(looked.found, now)
        facts.update(table.known(looked.found, rules, now)[0])
        pending = looked.deferred - facts.keys()
    facts = _with_epss(store, facts)
    return [replace(i, extra=attach(i, ids[i.key], facts, pending)) if i.key in ids else i for i in items]


def _with_epss(store: Store, facts: dict[str, CveFacts]) -> dict[str, CveFacts]:
    """The known CVEs with their EPSS scores from the last EPSS file (for the badges and min_epss of mentions)."""
    scores = EPSS(store).lookup(facts) if facts else {}
    return {cve: replace(f, epss=scores[cve].epss, epss_percentile=scores[cve].percentile) if cve in scores else f
            for cve, f in facts.items()}


def _lookup_warning(held: Collection[str]) -> str:
    return (f"{len(held)} new entry(ies) held: they mention CVEs not looked up from NVD yet (this poll's lookups, "
            "or NVD's rate limit, were spent, or NVD failed); they are judged again at the next poll")


def _held_warning(feed: Feed, spent: filters.Budget, held: Collection[str]) -> str:
    culprit = spent.culprit()
    rule = ""
    if culprit:
        flt, label = culprit
        channels = ", ".join(dict.fromkeys(r.channel for r in feed.routes if r.filter == flt))
        rule = f" by {label} of the route → {channels}"
    why = (f"this poll's filtering reached its {spent.seconds:g} s budget" if spent.exhausted else
           f"a search took over {filters.REGEX_TIMEOUT * 1000:.0f} ms")
    return (f"{len(held)} new entry(ies) held{rule}: {why}; they are neither posted nor skipped, and are judged "
            "again at the next poll. Simplify the pattern (docs/configuration.md#regular-expressions)")


def _inputs(feed: Feed, row: FeedRow, items: list[Item], store: Store
            ) -> tuple[set[str], Mapping[str, Sequence[Lookalike]], Collection[str]]:
    """What the store knows that the decision needs: known keys, lookalikes of new entries, upgraded keys."""
    first = not row.initialized
    known = store.known_keys(feed.name, [i.key for i in items])
    fresh = [i for i in items if i.key not in known]
    posts = [i for i in fresh if i.kind == "post"]  # (a CVE's identity is its id: no lookalikes to find)
    lookalikes = store.lookalikes(feed.name, posts, row.listing_gen) if posts and (row.url_changed or not first) \
        else {}
    # The first parsed poll after an upgrade from schema 1: entries remembered under their old keys are known.
    upgraded = store.remembered_before_upgrade(feed.name, fresh) if fresh and row.keys_version < 2 else set()
    return known, lookalikes, upgraded


def _decide_now(feed: Feed, row: FeedRow, items: list[Item], known: set[str],
                lookalikes: Mapping[str, Sequence[Lookalike]], upgraded: Collection[str], now: float | None = None
                ) -> tuple[Plan, filters.Budget]:
    """decide_poll under one filter budget (pure: no store, so it may run in a filter thread)."""
    with filters.budget() as spent:
        return decide_poll(feed, items, known, first_poll=not row.initialized, url_changed=bool(row.url_changed),
                           lookalikes=lookalikes, upgraded=upgraded, now=now), spent


def plan_poll(feed: Feed, row: FeedRow, items: list[Item], store: Store | None, now: float | None = None
              ) -> tuple[Plan, set[str]]:
    """What a poll of these items decides, from what the store knows of the feed (``store`` None: nothing yet),
    and the keys it already knew. A real poll and `preview` both decide here, so they cannot disagree."""
    known, lookalikes, upgraded = _inputs(feed, row, items, store) if store is not None else (set(), {}, set())
    if store is not None and not is_security(feed.kind):
        items = _known_mentions(feed, row, items, known, store, time.time() if now is None else now)
    plan, _ = _decide_now(feed, row, items, known, lookalikes, upgraded, now)
    return plan, known


def _known_mentions(feed: Feed, row: FeedRow, items: list[Item], known: set[str], store: Store, now: float
                    ) -> list[Item]:
    """:func:`_enrich` without lookups, for `preview` (a read-only store): ids nothing told of yet are pending, as
    a poll would find them before its lookups."""
    if not row.initialized and not feed.backlog:
        return items
    ids = {i.key: found for i in items if i.key not in known and (found := mentioned(i))}
    if not ids:
        return items
    facts, _ = CveFactsTable(store).known({c for found in ids.values() for c in found}, CacheRules(), now)
    pending = {c for found in ids.values() for c in found} - facts.keys()
    facts = _with_epss(store, facts)
    return [replace(i, extra=attach(i, ids[i.key], facts, pending)) if i.key in ids else i for i in items]


def as_synced(row: FeedRow | None, feed: Feed) -> FeedRow:
    """The feed's row as Store.sync_feeds leaves it when the Relay starts with this feed configured (keep the two
    in step): `preview` reads a database it must not write, perhaps before the daemon has seen a config edit."""
    if row is None:
        return FeedRow(name=feed.name, url=feed.url, kind=feed.kind, active=True, initialized=False, state={},
                       last_poll=None, last_success=None, last_error=None, error_since=None, errors=0, warning=None,
                       listed=0, not_before=None)
    fresh_start = not row.active or row.kind != feed.kind or row.url != feed.url
    return replace(
        row, url=feed.url, kind=feed.kind, active=True,
        initialized=False if fresh_start else row.initialized, state={} if fresh_start else row.state,
        url_changed=0 if (not row.active or row.kind != feed.kind) else 1 if row.url != feed.url else row.url_changed,
        not_before=None if (row.url != feed.url or row.kind != feed.kind) else row.not_before)


def _lifecycle(feed: Feed, store: Store, items: list[Item], plan: Plan, known: set[str], now: float,
               changed: bool) -> Outcome:
    """What the poll decides about stories (posts of items seen before, replies, updates, holds), from the store."""
    stories = Stories(store)
    found = stories.get([r.channel for r in feed.routes], [story_key(feed.name, i) for i in items])
    first_seen = store.first_seen(feed.name, sorted(known)) if known and changed else {}
    return judge(feed, items, plan, found, stories.holds(feed.name), first_seen, now=now,
                 since=store.lifecycle_since(), changed=changed)


def _keep(store: Store, outbox: Outbox, feed: Feed, life: Outcome | None, window: float,
          now: float) -> list[Delivery]:
    """Inside the poll's transaction: queue the lifecycle's messages and store the stories they start or change."""
    if life is None:
        return []
    intents, parents = _place(store, feed, life.intents, now)
    queued = outbox.enqueue(render.deliveries(intents), window=window, now=now, except_feed=feed.name)
    _start(store, feed, life.stories + parents, queued, now)
    Stories(store).hold(feed.name, life.holds, life.released)
    return queued


def _place(store: Store, feed: Feed, intents: list[Intent], now: float) -> tuple[list[Intent], list[StoryWrite]]:
    """The intents capped (max_per_poll) and placed in their daily threads, and the day parents to start."""
    intents = caps.cap(feed, intents, now=now)
    if not any(r.thread == "daily" for r in feed.routes):
        return intents, []
    today = daily.days(feed, now)
    found = Stories(store).get([c for c, _ in today], [s for _, s in today])
    return daily.thread_daily(feed, intents, set(found), now)


def _start(store: Store, feed: Feed, writes: list[StoryWrite], queued: list[Delivery], now: float) -> None:
    """Store the stories these queued rows start or change. A first post the outbox dropped (the same article from
    another feed, just posted) starts no story here."""
    started = {(d.channel, d.story) for d in queued if d.action == "post"}
    if writes:
        Stories(store).write(feed.name, [w for w in writes if not w.new or (w.channel, w.story) in started], now)
def _epss_candidates(store: Store, feed: Feed, plan: Plan, life: Outcome | None) -> None:
    """Inside the poll's transaction: CVEs a route turned down for their EPSS alone wait for the next EPSS file."""
    if not any(r.filter.epss_bar for r in feed.routes):
        return
    held = [(v.channel, story_key(feed.name, v.item), v.item) for v in plan.verdicts + (life.verdicts if life else [])
            if v.decision.epss]
    if held:
        EPSS(store).remember(feed.name, held)


def _moved_on(store: Store, feed: Feed) -> bool:
    """Whether the feed's row no longer describes what this poll fetched (a live edit changed it meanwhile)."""
    try:
        row = store.feed(feed.name)
    except DB_ERRORS:
        return False  # the poll's own writes will meet the same error and report it
    return row is None or not row.active or row.url != feed.url or row.kind != feed.kind


def _recovery(outbox: Outbox, feed: Feed, row: FeedRow, alerts: Alerts | None, window: float,
              now: float) -> list[Delivery]:
    """Inside the poll's transaction: "works again", if this feed's failure was alerted."""
    if not (alerts and row.errors and row.error_since):
        return []
    if not outbox.queued_before(alerts.channel, feed_incident(feed.name, row.error_since)):
        return []
    log.info("feed %r: works again after %d failed poll(s)", feed.name, row.errors)
    return outbox.enqueue([feed_recovered(alerts, feed.name, since=row.error_since, now=now)], window=window, now=now)


def _failed(store: Store, outbox: Outbox, feed: Feed, row: FeedRow, error: str, retry_after: float | None,
            alerts: Alerts | None, window: float, now: float) -> FeedReport:
    log.warning("feed %r: %s", feed.name, error)
    if retry_after and retry_after > MAX_RETRY_AFTER:
        log.info("feed %r: the server asked for a %.0f h pause; waiting %.0f h", feed.name, retry_after / 3600,
                 MAX_RETRY_AFTER / 3600)
        retry_after = MAX_RETRY_AFTER
    queued: list[Delivery] = []
    try:
        store.record_error(feed.name, error, retry_after=retry_after, now=now)
        alert = alerts and feed_failing(alerts, feed.name, error, since=row.error_since or now,
                                        attempts=row.errors + 1, now=now)
        if alert:
            with store.transaction():
                queued = outbox.enqueue([alert], window=window, now=now)
            if queued:
                log.error("feed %r: failing since %s; alert queued for channel %s", feed.name,
                          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row.error_since or now)), alert.channel)
    except DB_ERRORS as exc:
        log.error("feed %r: cannot record the error: %s", feed.name, describe(exc, store.path))
    return FeedReport(feed.name, error=error, channels=frozenset(d.channel for d in queued),
                      queued_to=Counter(d.channel for d in queued))
