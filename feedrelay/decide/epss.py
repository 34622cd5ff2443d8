"""EPSS in decisions: a route's bar (min_epss, min_epss_percentile), and what a new EPSS file changes — a CVE a
route held back for its EPSS alone that now passes is posted; a CVE already posted in a channel whose EPSS now
crosses a route's bar gets a thread update. Only crossing a bar is news, not the daily drift. Pure: the relay
hands in the candidates, the stories and the new scores, and stores and queues what comes back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from feedrelay.config import Config, Filter
from feedrelay.model import SECURITY_KINDS, Decision, Intent, Item, Score
from feedrelay.registry import is_security

if TYPE_CHECKING:
    from feedrelay.decide.lifecycle import Story

CANDIDATE_DAYS = 30  # a CVE that has not reached a route's EPSS bar in this long is forgotten for that route


def percent(value: float) -> str:
    """12.3% — two decimals under 1% (most CVEs are below it, and 0.04% is not 0.0%)."""
    return f"{value * 100:.1f}%" if value >= 0.01 else f"{value * 100:.2f}%"


def ordinal(percentile: float) -> str:
    n = int(percentile * 100 + 1e-9)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} percentile"


def label(score: Score) -> str:
    """EPSS 12.3% (96th percentile)."""
    return f"EPSS {percent(score.epss)} ({ordinal(score.percentile)})"


def score_of(extra: Mapping[str, Any]) -> Score | None:
    epss, pct = extra.get("epss"), extra.get("epss_percentile")
    if isinstance(epss, int | float) and isinstance(pct, int | float):
        return Score(float(epss), float(pct))
    return None


def with_score(item: Item, score: Score | None, date: str = "") -> Item:
    """The item as the filters and messages should see it: its CVE's current EPSS (or none)."""
    if score is None:
        if "epss" not in item.extra:
            return item
        extra = {k: v for k, v in item.extra.items() if k not in ("epss", "epss_percentile", "epss_date")}
    else:
        extra = {**item.extra, "epss": score.epss, "epss_percentile": score.percentile, "epss_date": date}
    return replace(item, extra=extra)


def bar(flt: Filter) -> str:
    parts = []
    if flt.min_epss is not None:
        parts.append(percent(flt.min_epss))
    if flt.min_epss_percentile is not None:
        parts.append(ordinal(flt.min_epss_percentile))
    return " and ".join(parts)


def passes(flt: Filter, score: Score | None) -> bool:
    if not flt.epss_bar:
        return True
    if score is None:
        return False
    return (flt.min_epss is None or score.epss >= flt.min_epss) and \
        (flt.min_epss_percentile is None or score.percentile >= flt.min_epss_percentile)


def check(flt: Filter, item: Item) -> Decision | None:
    """The EPSS rule: None when the item passes it (or the route has none)."""
    if not flt.epss_bar or item.kind not in SECURITY_KINDS:
        return None
    score = score_of(item.extra)
    if passes(flt, score):
        return None
    have = label(score) if score else "no EPSS score yet"
    return Decision(False, f"excluded: {have}, below this route's EPSS bar {bar(flt)}", epss=True)


def crossed(flt: Filter, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """The line for a story whose EPSS went over the route's bar between two states; [] otherwise."""
    now = score_of(new)
    if not flt.epss_bar or now is None or not passes(flt, now):
        return []
    if old is not None and passes(flt, score_of(old)):
        return []
    return [f"EPSS rose to {percent(now.epss)} ({ordinal(now.percentile)}), above this route's bar {bar(flt)}"]


@dataclass(frozen=True)
class Candidate:
    """A CVE a route would have posted but for its EPSS bar."""

    channel: str
    story: str
    feed: str
    since: float
    item: Item


@dataclass
class Rescore:
    """What a new EPSS file decided: messages, stories to write, candidates to forget."""

    intents: list[Intent] = field(default_factory=list)
    verdicts: list[Any] = field(default_factory=list)
    stories: list[Any] = field(default_factory=list)  # lifecycle.StoryWrite
    dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, story, feed) to forget


def _cve_item(cve: str) -> Item:
    return Item(key=cve, title=cve, link=f"https://nvd.nist.gov/vuln/detail/{cve}", kind="cve", extra={"cve": cve})


def rescore(config: Config, candidates: Iterable[Candidate], stories: Mapping[tuple[str, str], Story],
            scores: Mapping[str, Score], *, date: str, now: float, baseline: bool) -> Rescore:
    """What a new EPSS file decides. ``stories`` holds, by (channel, CVE), what each channel was told of the
    candidates' CVEs and of every scored CVE posted to a channel with an EPSS bar; ``baseline``: the first file
    ever loaded, which records each story's EPSS without calling a score it already had news."""
    from feedrelay.decide.filters import evaluate
    from feedrelay.decide.lifecycle import Outcome, StoryWrite, _post, merge

    out = Rescore()
    feeds = {f.name: f for f in config.feeds}
    posted: set[tuple[str, str]] = set()
    for c in sorted(candidates, key=lambda c: c.since):
        feed = feeds.get(c.feed)
        routes = [r for r in feed.routes if r.channel == c.channel and r.filter.epss_bar] if feed else []
        if not routes or (c.channel, c.story) in stories or (c.channel, c.story) in posted \
                or now > c.since + CANDIDATE_DAYS * 86400:
            out.dropped.append((c.channel, c.story, c.feed))
            continue
        assert feed is not None
        item = with_score(c.item, scores.get(c.story), date)
        for route in routes:
            decision = evaluate(route.filter, item)
            out.verdicts.append(_verdict(item, route.channel, decision))
            if decision.passed:
                life = Outcome()
                _post(feed, route, item, c.story, life)
                out.intents += life.intents
                out.stories += life.stories
                posted.add((c.channel, c.story))
                out.dropped.append((c.channel, c.story, c.feed))
                break
        else:
            if not any(v.decision.epss or v.decision.undecided for v in out.verdicts[-len(routes):]):
                out.dropped.append((c.channel, c.story, c.feed))  # another rule now rejects it
    by_channel: dict[str, list[tuple[str, Any]]] = {}
    for feed in config.feeds:
        if is_security(feed.kind):
            for route in feed.routes:
                if route.filter.epss_bar:
                    by_channel.setdefault(route.channel, []).append((feed.name, route))
    for (channel, story), found in sorted(stories.items()):
        score = scores.get(story)
        if (channel, story) in posted or score is None or channel not in by_channel or found.state is None:
            continue
        new = merge(found.state, {"epss": score.epss, "epss_percentile": score.percentile})
        for feed_name, route in by_channel[channel]:
            lines = crossed(route.filter, None if baseline else found.state, new)
            if not lines:
                continue
            out.stories.append(StoryWrite(channel, story, new, new=False))
            if not baseline and route.updates != "off":
                item = _cve_item(story)
                if route.updates == "post":
                    out.intents.append(Intent(channel, feed_name, item, "post", story, tuple(lines)))
                else:
                    out.intents.append(Intent(channel, feed_name, item, "reply", story, tuple(lines),
                                              broadcast=route.updates == "broadcast"))
            break
    return out


def _verdict(item: Item, channel: str, decision: Decision) -> Any:
    from feedrelay.decide.decider import Verdict

    return Verdict(item, channel, decision)
