"""The lifecycle of a story (a CVE, or an RSS entry whose route has `updates` on): judged again each time a
source returns it, posted where it first passes, and every material change after that sent into its thread.

Pure: the pipeline hands in what the store holds (each channel's story state, the holds, when each item was first
seen) and gets back intents (post, reply, update) and what to store. A CVE's story is its ID in every feed, so an
NVD record and a KEV addition of the same CVE in one channel are one story: whichever came first is the parent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from feedrelay.config import Feed, Route
from feedrelay.decide import epss
from feedrelay.decide.decider import Plan, Verdict, oldest_first, unique
from feedrelay.decide.filters import evaluate
from feedrelay.model import SECURITY_KINDS, Intent, Item, comparable_title
from feedrelay.registry import is_security

SOURCES = {"": "NVD", "Primary": "NVD", "Secondary": "CNA", "CNA": "CNA", "CISA-ADP": "CISA-ADP"}
SCORE_KEYS = ("score", "severity", "source", "cvss_version", "vector", "rank")
SSVC_KEYS = ("ssvc_exploitation", "automatable", "technical_impact")


def score_rank(state: Mapping[str, Any]) -> int:
    """Whose score a story keeps when its sources disagree: NVD's own (Primary) 3, the CVE List's (the CNA's or CISA's,
    first hand) 2, NVD's copy of a CNA or CISA score 1. States kept before ranks were stored: NVD's is 3."""
    rank = state.get("rank")
    return int(rank) if isinstance(rank, int) else 3 if state.get("source") == "NVD" else 1


MAX_PACKAGE_LINES = 20  # packages a story remembers (an advisory keeps this many vulnerable ranges)


def package_line(entry: list[str]) -> str:
    """One vulnerable package as a change line says it: "pip django >= 2.0.0, < 2.0.2 (patched in 2.0.2)"."""
    eco, name, versions, patched = ([*list(entry), "", "", "", ""])[:4]
    line = " ".join(p for p in (eco, name, versions) if p)
    return f"{line} (patched in {patched})" if patched else f"{line} (no patched version yet)"


@dataclass(frozen=True)
class Story:
    """What the store holds for a story in one channel."""

    state: dict[str, Any] | None  # None: posted before feedrelay kept states (an upgrade); nothing to compare with
    first_posted: float


@dataclass(frozen=True)
class Hold:
    """An unscored item a route waits on for a score (include_unscored = "after 72h")."""

    channel: str
    key: str
    since: float
    item: Item


@dataclass(frozen=True)
class StoryWrite:
    channel: str
    story: str
    state: dict[str, Any]
    new: bool  # the story's first message in this channel (posted now)


@dataclass
class Outcome:
    """What one poll's lifecycle decided, beside the plan's new items."""

    intents: list[Intent] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    stories: list[StoryWrite] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)  # holds to start or refresh
    released: list[tuple[str, str]] = field(default_factory=list)  # (channel, key) holds that ended


def tracked(feed: Feed) -> bool:
    """Whether the feed's items live on after their first post: CVEs always; RSS entries where a route asks."""
    return is_security(feed.kind) or any(r.updates != "off" for r in feed.routes)


def story_key(feed: str, item: Item) -> str:
    if item.kind in SECURITY_KINDS:
        return str(item.extra.get("cve") or item.key)
    return f"{feed}\t{item.key}"


def compact(item: Item, route: Route) -> dict[str, Any]:
    """Only what the decision and the badge need: score, severity and whose score; the KEV listing with its due date
    and ransomware flag; Rejected; the route's products it now matches. For RSS, the title and a digest of the text."""
    x = item.extra
    if item.kind not in SECURITY_KINDS:
        text = " ".join((item.summary or item.content).split()).casefold()
        return {"title": item.title[:300], "text": hashlib.sha256(text.encode()).hexdigest()[:16]}
    state: dict[str, Any] = {}
    if item.kind == "cve":
        source = SOURCES.get(str(x.get("score_source") or ""), "NVD") if x.get("severity") else None
        state.update(score=x.get("score"), severity=x.get("severity"), source=source,
                     rejected=bool(x.get("rejected")))
        if source:
            cvelist = x.get("origin") == "cvelist"
            state.update(cvss_version=x.get("cvss_version"), vector=x.get("vector") or "",
                         rank=2 if cvelist else 3 if source == "NVD" else 1)
        state.update({k: x[k] for k in SSVC_KEYS if x.get(k) is not None})
    if isinstance(x.get("epss"), int | float):  # (for the crossing of an EPSS bar: see decide/epss.py)
        state.update(epss=x["epss"], epss_percentile=x.get("epss_percentile"))
    if item.kind == "ghsa":
        # GitHub's own keys: its severity sits beside NVD's, not over it (the two disagree often, and a story that
        # flipped between them at every update of either would be noise).
        state.update(ghsa=x.get("ghsa"), gh_severity=x.get("severity"), gh_score=x.get("score"),
                     packages=[package_line(a) for a in x.get("affected") or []][:MAX_PACKAGE_LINES],
                     withdrawn=bool(x.get("withdrawn")))
    if x.get("kev"):  # (an NVD record without its KEV fields says nothing about KEV: NVD lags CISA)
        state.update(kev=True, kev_due=x.get("kev_due"), kev_added=x.get("kev_added"))
        if item.kind == "kev":
            state["ransomware"] = x.get("ransomware") or "Unknown"
    flt = route.filter
    if flt.vendors or flt.products:
        have = {str(v).lower() for v in x.get("vendors", ())} | {str(p).lower() for p in x.get("products", ())}
        state["matches"] = sorted(set(flt.vendors + flt.products) & have)
    return state


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The story as it is now. Each source tells its part: KEV has no score, NVD's record may lack KEV's fields,
    so a value one source does not give is kept from the other."""
    merged = dict(old or {})
    if old and old.get("severity") and new.get("severity") and score_rank(new) < score_rank(old):
        # NVD's own score outranks the CVE List's, which outranks NVD's copy of it: two sources of one CVE polled in
        # turn must not flip the story's score back and forth (a reply each time).
        new = {k: v for k, v in new.items() if k not in SCORE_KEYS}
    merged.update({k: v for k, v in new.items() if v is not None or k not in merged})
    if old and old.get("rejected"):
        merged["rejected"] = True  # a rejection is final; NVD's copy lags the CVE List's by hours
    if old and "matches" in old:
        merged["matches"] = sorted(set(old["matches"]) | set(new.get("matches", ())))
    return merged


def score_text(state: Mapping[str, Any]) -> str:
    if not state.get("severity"):
        return "unscored"
    score = state.get("score")
    number = f"{score:.1f} " if isinstance(score, int | float) else ""
    return f"{number}{str(state['severity']).capitalize()} ({state.get('source') or 'NVD'})"


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed materially, one line each; [] for a cosmetic change (a reference added, a typo fixed)."""
    out: list[str] = []
    if "title" in new or "text" in new:  # an RSS entry
        if comparable_title(str(old.get("title", ""))) != comparable_title(str(new.get("title", ""))):
            out.append(f"Title: {old.get('title') or '(untitled)'} → {new.get('title') or '(untitled)'}")
        if old.get("text") != new.get("text"):
            out.append("The text was revised")
        return out
    if "severity" in new and any(old.get(k) != new.get(k) for k in ("severity", "score", "source")):
        out.append(f"Score: {score_text(old)} → {score_text(new)}")
    if new.get("kev") and not old.get("kev"):
        line = "Added to CISA KEV"
        if new.get("kev_due"):
            line += f", due {new['kev_due']}"
        if new.get("ransomware"):
            line += f", ransomware: {new['ransomware']}"
        out.append(line)
    elif new.get("kev"):
        if new.get("kev_due") != old.get("kev_due") and old.get("kev_due"):
            out.append(f"KEV due date: {old['kev_due']} → {new['kev_due']}")
        if new.get("ransomware") != old.get("ransomware") and old.get("ransomware"):
            out.append(f"Known ransomware use: {old['ransomware']} → {new['ransomware']}")
    out += ssvc_changes(old, new)
    if new.get("rejected") and not old.get("rejected"):
        out.append("Rejected: this CVE ID was withdrawn; nothing needs doing")
    out += _github_changes(old, new)
    if added := [m for m in new.get("matches", ()) if m not in old.get("matches", ())]:
        out.append(f"Now affects {', '.join(added)} (product data added)")
    return out


def ssvc_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """CISA's SSVC moving: exploitation none → poc → active (or back), automatable changing. A first assessment is
    news only when it finds exploitation (poc or active): "none" is what most CVEs get."""
    out = []
    was, now = old.get("ssvc_exploitation"), new.get("ssvc_exploitation")
    if now and was != now and (was or now != "none"):
        out.append(f"CISA SSVC: exploitation {was} → {now}" if was else f"CISA SSVC: exploitation {now}")
    if old.get("automatable") is not None and new.get("automatable") is not None \
            and old["automatable"] != new["automatable"]:
        out.append(f"CISA SSVC: automatable {'yes' if old['automatable'] else 'no'} → "
                   f"{'yes' if new['automatable'] else 'no'}")
    return out


_SCORE_SOURCE = {"NVD": "Primary", "CNA": "Secondary", "CISA-ADP": "CISA-ADP"}


def _github_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a GitHub advisory adds to a story: its packages (the first time, or versions newly affected or
    patched), GitHub re-rating it, withdrawing it. A range it narrows or a package it drops is not news."""
    if "packages" not in new:
        return []
    out: list[str] = []
    if "packages" not in old:
        if new["packages"]:
            out.append(f"GitHub advisory {new.get('ghsa') or ''}: " + "; ".join(new["packages"][:5]) +
                       (f" and {len(new['packages']) - 5} more" if len(new["packages"]) > 5 else ""))
    elif added := [p for p in new["packages"] if p not in old["packages"]]:
        out.append("GitHub: " + "; ".join(added[:5]) + (f" and {len(added) - 5} more" if len(added) > 5 else ""))
    if "gh_severity" in old and old.get("gh_severity") and new.get("gh_severity") and \
            (old.get("gh_severity"), old.get("gh_score")) != (new.get("gh_severity"), new.get("gh_score")):
        before = score_text({"severity": old["gh_severity"], "score": old.get("gh_score"), "source": "GitHub"})
        after = score_text({"severity": new["gh_severity"], "score": new.get("gh_score"), "source": "GitHub"})
        out.append(f"GitHub severity: {before} → {after}")
    if new.get("withdrawn") and not old.get("withdrawn"):
        out.append(f"GitHub withdrew advisory {new.get('ghsa') or ''}: it no longer stands")
    return out


def badge_item(item: Item, state: Mapping[str, Any]) -> Item:
    """The item as the first message should now show it: its own data, and what the other sources told (KEV, CISA's
    SSVC, a score that outranks its own)."""
    if item.kind == "ghsa":  # GitHub's severity stands beside NVD's (see compact): only KEV's listing is copied
        if not state.get("kev") or item.extra.get("kev"):
            return item
        return replace(item, extra={**item.extra, "kev": True, "kev_due": state.get("kev_due"),
                                    "kev_added": state.get("kev_added")})
    if item.kind != "cve":
        return item
    extra = dict(item.extra)
    if state.get("kev") and not extra.get("kev"):
        extra.update(kev=True, kev_due=state.get("kev_due"), kev_added=state.get("kev_added"))
    extra.update({k: state[k] for k in SSVC_KEYS if state.get(k) is not None and extra.get(k) is None})
    own = compact(item, Route(""))
    if state.get("severity") and (not own.get("severity") or score_rank(state) > score_rank(own)):
        extra.update(score=state.get("score"), severity=state.get("severity"), cvss_version=state.get("cvss_version"),
                     vector=state.get("vector") or "", score_source=_SCORE_SOURCE.get(str(state.get("source")), ""))
    return item if extra == item.extra else replace(item, extra=extra)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _follow_up(feed: Feed, route: Route, item: Item, story: str, found: Story, state: dict[str, Any],
               out: Outcome) -> None:
    """A story already posted to the route's channel came back: tell what changed, as the route's `updates` says."""
    merged = merge(found.state, state)
    if found.state is None:
        out.stories.append(StoryWrite(route.channel, story, merged, new=False))  # from now on it can be compared
        return
    lines = changes(found.state, merged) + epss.crossed(route.filter, found.state, merged)
    # A KEV addition cannot redraw an NVD message (it lacks the record): that badge is redrawn at NVD's next
    # modification of the CVE, which comes within about a day (NIST enriches KEV entries first).
    # (an NVD record redraws a KEV message, but not a GitHub one: that would lose its packages)
    redraw = (item.kind == "cve" and merged.get("root") != "ghsa") or merged.get("root") == item.kind
    # (the NVD or KEV message does not show GitHub's packages: nothing to redraw there)
    if lines and not redraw and item.kind != "ghsa":
        merged["redraw"] = True
    redraw_due = redraw and bool(merged.pop("redraw", False))
    # (written even when unchanged: a story lasts `retention` from the last time a source returned it)
    out.stories.append(StoryWrite(route.channel, story, merged, new=False))
    if route.updates == "off" or not (lines or redraw_due):
        return
    if route.updates == "post":
        if lines:
            lines.append(f"First posted in this channel on {_when(found.first_posted)}.")
            out.intents.append(Intent(route.channel, feed.name, item, "post", story, tuple(lines)))
        return
    if lines:
        out.intents.append(Intent(route.channel, feed.name, item, "reply", story, tuple(lines),
                                  broadcast=route.updates == "broadcast"))
    if redraw:
        out.intents.append(Intent(route.channel, feed.name, badge_item(item, merged), "update", story))


def _post(feed: Feed, route: Route, item: Item, story: str, out: Outcome) -> None:
    state = compact(item, route) | {"root": item.kind}
    out.intents.append(Intent(route.channel, feed.name, badge_item(item, state), "post", story,
                              template=route.template, mention=route.mention))
    out.stories.append(StoryWrite(route.channel, story, state, new=True))


def judge(feed: Feed, items: Iterable[Item], plan: Plan, stories: Mapping[tuple[str, str], Story],
          holds: Mapping[tuple[str, str], Hold], first_seen: Mapping[str, float], *, now: float,
          since: float, changed: bool = True) -> Outcome:
    """Everything a poll decides about stories. ``plan`` is the decider's plan for new items (its intents are the
    new posts); ``stories`` what each channel was told, by (channel, story); ``holds`` the held items by (channel,
    key); ``first_seen`` when the feed first saw each item it had seen before; ``since`` when feedrelay began
    keeping stories (items first seen before then were judged once, the old way, and are not posted now).
    ``changed``: the source returns what changed (NVD's windows), so an item seen before is judged again for the
    routes it has not reached; a listing (the KEV catalog) returns everything every time, and only its stories'
    follow-ups are judged."""
    out = Outcome()
    fresh = {i.key for i in plan.remember}
    chosen = {(i.channel, i.item.key): i for i in plan.intents}  # the decider's new posts
    held = {(v.channel, v.item.key) for v in plan.verdicts if v.decision.held}
    posted: set[tuple[str, str]] = set()  # (channel, story) pairs this poll has spoken of
    security = is_security(feed.kind)
    judged: set[tuple[str, str]] = set()  # (channel, key) pairs judged again here: their holds are settled
    for item in oldest_first(unique(list(items))):
        story = story_key(feed.name, item)
        for route in feed.routes:
            if (route.channel, story) in posted:
                continue
            found = stories.get((route.channel, story))
            if found is not None:
                # Posted to this channel before (by this feed, or the other source of the same CVE): what changed.
                # (A feed's first poll only remembers: a KEV catalog read afresh is not news of every CVE in it.)
                if not (plan.first_poll and item.key in fresh):
                    posted.add((route.channel, story))
                    _follow_up(feed, route, item, story, found, compact(item, route), out)
                continue
            if item.key in fresh:
                if (intent := chosen.get((route.channel, item.key))) is not None:
                    posted.add((route.channel, story))
                    if security or route.updates != "off":
                        _post(feed, route, item, story, out)
                    else:
                        out.intents.append(intent)  # an RSS route without updates: a plain post, as ever
                elif (route.channel, item.key) in held:
                    out.holds.append(Hold(route.channel, item.key, now, item))
                continue
            # Seen before and returned again (NVD's modified CVEs, a KEV entry): judged as it is now.
            if not security or not changed or first_seen.get(item.key, 0.0) < since:
                continue
            hold = holds.get((route.channel, item.key))
            judged.add((route.channel, item.key))
            decision = evaluate(route.filter, item)
            out.verdicts.append(Verdict(item, route.channel, decision))
            start = hold.since if hold else first_seen.get(item.key, now)
            if decision.passed or (decision.held and now >= start + route.filter.unscored_hold):
                posted.add((route.channel, story))
                _post(feed, route, item, story, out)
                if hold:
                    out.released.append((route.channel, item.key))
            elif decision.held:
                out.holds.append(Hold(route.channel, item.key, start, item))
            elif hold:
                out.released.append((route.channel, item.key))  # scored below the bar (or filtered out now)
    # Holds not settled above (NVD did not return the CVE; a KEV listing is not judged again): a hold runs out at
    # a poll of the feed, not at the source's pleasure.
    routes = {r.channel: r for r in feed.routes}
    for (channel, key), hold in holds.items():
        if (channel, key) in judged or any(h.channel == channel and h.key == key for h in out.holds):
            continue
        held_route = routes.get(channel)
        story = story_key(feed.name, hold.item)
        if held_route is None or (channel, story) in posted or (channel, story) in stories:
            out.released.append((channel, key))
            continue
        decision = evaluate(held_route.filter, hold.item)
        if decision.passed or (decision.held and now >= hold.since + held_route.filter.unscored_hold):
            posted.add((channel, story))
            _post(feed, held_route, hold.item, story, out)
            out.released.append((channel, key))
            out.verdicts.append(Verdict(hold.item, channel, decision))
        elif not decision.held:
            out.released.append((channel, key))
    return out
