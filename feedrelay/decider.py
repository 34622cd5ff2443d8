"""What is new, what passes each route, and what gets queued: pure decisions over data.

The pipeline hands in what a source returned and which keys the store already knows; this module
returns the plan, with no I/O, so every rule here is testable without sockets or files.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .config import Feed
from .filters import Decision, evaluate
from .items import Item
from .messages import render
from .outbox import Delivery


@dataclass(frozen=True)
class Verdict:
    item: Item
    channel: str
    decision: Decision


@dataclass
class Plan:
    remember: list[Item] = field(default_factory=list)  # items not seen before
    deliveries: list[Delivery] = field(default_factory=list)  # oldest first
    verdicts: list[Verdict] = field(default_factory=list)  # every route decision, for preview and debug logs


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


def route(feed: Feed, items: list[Item]) -> tuple[list[Delivery], list[Verdict]]:
    """Each item × each route: a delivery where the route's filter passes."""
    deliveries: list[Delivery] = []
    verdicts: list[Verdict] = []
    for item in items:
        message = None
        for r in feed.routes:
            decision = evaluate(r.filter, item)
            verdicts.append(Verdict(item, r.channel, decision))
            if decision.passed:
                message = message or render(item, feed.name).to_json()
                deliveries.append(Delivery(r.channel, feed.name, item.key, item.dedupe_key, message,
                                           item.legacy_dedupe_key))
    return deliveries, verdicts


def reissued(items: list[Item], known: Collection[str], lookalikes: Mapping[str, Collection[str]],
             upgraded: Collection[str] = ()) -> set[str]:
    """Keys of new items that are entries the feed listed before under another id: publishers re-issue ids
    (a CMS migration, a move to https). ``lookalikes`` maps a dedupe key (link and title) to the keys of the
    previous listing's items that have it. An entry whose lookalike is still listed beside it is a different
    entry with the same link and title (a podcast's weekly "Mailbag"), not a re-issue. ``upgraded`` are keys of
    items the store remembered under their old key before schema 2: known, not new."""
    listed = {i.key for i in items}
    return {i.key for i in items if i.key not in known and (
        i.key in upgraded or any(k not in listed for k in lookalikes.get(i.dedupe_key, ())))}


def decide(feed: Feed, items: list[Item], known: set[str], *, first_poll: bool,
           reissues: Collection[str] = ()) -> Plan:
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
    deliveries, verdicts = route(feed, candidates)
    return Plan(remember=new, deliveries=deliveries, verdicts=verdicts)
