"""What is new, what passes each route, and what gets queued: pure decisions over data.

The pipeline hands in what a source returned and which keys the store already knows; this module
returns the plan, with no I/O, so every rule here is testable without sockets or files. A plan says
*which* item goes to *which* channel (intents); what the message looks like is the render stage's.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from feedrelay.config import Feed
from feedrelay.decide.age import too_old
from feedrelay.decide.filters import evaluate
from feedrelay.model import Decision, Intent, Item, Lookalike


@dataclass(frozen=True)
class Verdict:
    item: Item
    channel: str
    decision: Decision


@dataclass
class Plan:
    remember: list[Item] = field(default_factory=list)  # items not seen before
    intents: list[Intent] = field(default_factory=list)  # what goes to which channel, oldest first
    verdicts: list[Verdict] = field(default_factory=list)  # every route decision, for preview and debug logs
    first_poll: bool = False  # remembered silently, as a new feed's first listing is
    moved: bool = False  # a new URL that lists what the feed had: the same feed, moved
    reissued: int = 0  # new ids of entries the feed had: remembered, not posted


def unique(items: list[Item]) -> list[Item]:
    """First occurrence of each key: some feeds list an entry twice."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            out.append(item)
    return out


def oldest_first(items: list[Item]) -> list[Item]:
    """Publication order. Feeds list newest first; use dates when every item has one."""
    if items and all(i.published for i in items):
        return sorted(items, key=lambda i: i.published)  # type: ignore[arg-type,return-value]
    return list(reversed(items))


def route(feed: Feed, items: list[Item], now: float | None = None,
          first_seen: Mapping[str, float] | None = None) -> tuple[list[Intent], list[Verdict]]:
    """Each item × each route: an intent where the route's age limit and filter pass, and every verdict. Items
    are judged at ``now`` (default: the clock); those not in ``first_seen`` (by key) are first seen then."""
    intents: list[Intent] = []
    verdicts: list[Verdict] = []
    now = time.time() if now is None else now
    for item in items:
        seen = first_seen.get(item.key, now) if first_seen else now
        for r in feed.routes:
            decision = too_old(r.max_age, item, now, seen) or evaluate(r.filter, item)
            verdicts.append(Verdict(item, r.channel, decision))
            if decision.passed:
                intents.append(Intent(r.channel, feed.name, item, template=r.template, mention=r.mention))
    return intents, verdicts


def reissued(items: list[Item], known: Collection[str], lookalikes: Mapping[str, Sequence[Lookalike]],
             upgraded: Collection[str] = ()) -> set[str]:
    """Keys of new items that are entries the feed had before under another id: publishers re-issue ids (a CMS
    migration, a move to https, an edited post bumped). A new titled entry is one of those if a remembered item
    with the same link and title is no longer listed and either has the same date, or, where either date is
    unknown, was in the previous listing. Each remembered item stands for one new entry at most. So an entry
    beside its lookalike (this week's "Mailbag" under last week's), or dated after it (next week's, once last
    week's has left a listing of fixed length), is news. ``upgraded`` are keys of items the store remembered
    under their old key before schema 2: known, not new."""
    listed = {i.key for i in items}
    used: set[str] = set()
    found: set[str] = set()
    for item in items:
        if item.key in known:
            continue
        if item.key in upgraded:
            found.add(item.key)
            continue
        if item.kind != "post" or not item.title:
            continue  # an untitled entry has nothing to be recognised by
        date = item.published.timestamp() if item.published else None
        for old in lookalikes.get(item.dedupe_key, ()):
            if old.key in listed or old.key in used:
                continue
            if (date == old.published) if date is not None and old.published is not None else old.previous:
                used.add(old.key)
                found.add(item.key)
                break
    return found


def moved_news(items: list[Item], known: Collection[str], lookalikes: Mapping[str, Sequence[Lookalike]]) -> set[str]:
    """A feed's first listing at a new URL that overlaps what it had (the same feed, moved): the keys of the
    entries listed above the first one it had, newest first as feeds list them. Those are what it published
    meanwhile; what is below is an archive the old URL did not list."""
    news: set[str] = set()
    for item in items:
        if item.key in known or item.dedupe_key in lookalikes:
            break
        news.add(item.key)
    return news


def decide(feed: Feed, items: list[Item], known: set[str], *, first_poll: bool,
           reissues: Collection[str] = (), now: float | None = None) -> Plan:
    """New items are those whose key the store does not know. On a feed's first poll every item is
    remembered and only the newest ``feed.backlog`` are posted (none by default). New keys in ``reissues``
    (entries the feed listed before under another id: see :func:`reissued`) are remembered, not posted."""
    items = unique(items)
    new = [i for i in items if i.key not in known]
    if first_poll:
        newest = {i.key for i in list(reversed(oldest_first(items)))[: feed.backlog]}
        candidates = [i for i in oldest_first(new) if i.key in newest]
    else:
        candidates = [i for i in oldest_first(new) if i.key not in reissues]
    intents, verdicts = route(feed, candidates, now)
    return Plan(remember=new, intents=intents, verdicts=verdicts)


def decide_poll(feed: Feed, items: list[Item], known: set[str], *, first_poll: bool, url_changed: bool = False,
                lookalikes: Mapping[str, Sequence[Lookalike]] | None = None, upgraded: Collection[str] = (),
                now: float | None = None) -> Plan:
    """Everything one parsed poll decides, from what the store knows: ``known`` keys, the ``lookalikes`` of the
    new items, the keys ``upgraded`` from schema 1. A feed's first poll at a new URL (``url_changed``) whose
    listing overlaps what it had is the same feed, moved: what is listed above that is news, the rest archive."""
    lookalikes = lookalikes or {}
    fresh = {i.key for i in items} - set(known)
    silent: set[str] = set()
    moved = first_poll and url_changed and bool(known or lookalikes)
    if moved:
        first_poll = False
        silent = fresh - moved_news(items, known, lookalikes)
    reissues = reissued(items, known, lookalikes, upgraded) if fresh and not first_poll else set()
    plan = decide(feed, items, known, first_poll=first_poll, reissues=silent | reissues, now=now)
    plan.first_poll, plan.moved, plan.reissued = first_poll, moved, len(reissues)
    return plan
