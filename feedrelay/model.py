"""The data every stage passes on: what a source produced (:class:`Item`), what a decision found
(:class:`Decision`, :class:`Intent`) and what the outbox holds (:class:`Delivery`).

Plain dataclasses and the standard library only: each stage imports this module and nothing upstream of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Item kinds of security news: each is a story keyed by its CVE id (``extra["cve"]``) where it has one, judged by the
# security filter keys, and rendered with severity and KEV badges. A new security source adds its kind here.
SECURITY_KINDS: tuple[str, ...] = ("cve", "kev", "ghsa")


@dataclass(frozen=True, slots=True)
class Item:
    """One entry from a source, already reduced to plain text and bounded in size."""

    key: str  # unique within its feed
    title: str
    link: str  # normalized http(s) URL, or "" when the entry had none we trust
    summary: str = ""
    content: str = ""
    categories: tuple[str, ...] = ()
    author: str = ""
    published: datetime | None = None  # aware, UTC
    kind: str = "post"  # post, or one of SECURITY_KINDS
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific facts (CVE severity, KEV dates…)
    legacy_key: str = ""  # the key feedrelay before schema 2 gave this entry, where it differs (upgrades)

    @property
    def dedupe_key(self) -> str:
        """What makes two items "the same article" despite GUID churn or a second feed: link and title together.
        A link alone would merge entries that share a page: a podcast's episodes, a changelog's #anchored releases.
        The link is compared without its scheme and fragment: a site moving to https, or a feed linking to
        "#comments", still links to the same article."""
        title = comparable_title(self.title)
        if self.kind != "post":
            # A KEV addition and the NVD record of the same CVE share a link but are different news; a CVE's
            # title changes as NVD analyses it, so its link alone names it.
            return f"{self.kind}:{self.link or 'title:' + title}" if self.link or title else ""
        if self.link:
            link = comparable_link(self.link)
            return f"{link}\t{title}" if title else link
        # Nothing to compare an untitled, unlinked entry by: it is only ever itself (its key, within its feed).
        return f"title:{title}" if title else ""

    @property
    def legacy_dedupe_key(self) -> str:
        """The dedupe key before schema 2 (the bare link), for outbox rows written before an upgrade."""
        return self.link.split("#", 1)[0] if self.kind == "post" and self.link else ""


@dataclass(frozen=True)
class Lookalike:
    """A remembered item with the same dedupe key as a new one (see decider.reissued)."""

    key: str
    published: float | None  # the entry's date, where it had one (not kept before schema 2)
    previous: bool  # it was in the feed's previous listing


# Typography a CMS change rewrites ("it's" → "it’s") without making a new article.
_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                             "\u2014": "-", "\u00a0": " "})


def comparable_title(title: str) -> str:
    return " ".join(title.translate(_TYPOGRAPHY).casefold().split())[:200]


def comparable_link(link: str) -> str:
    """``//host/path?query``: a normalized link without its scheme and fragment."""
    rest = link.split(":", 1)[1] if ":" in link else link
    return rest.split("#", 1)[0]


@dataclass(frozen=True)
class Decision:
    """Whether an item passes a route's filter, and the rule that decided (shown by `preview` and debug logs)."""

    passed: bool
    reason: str
    held: bool = False  # unscored, and the route waits a while for a score (include_unscored = "after 72h")
    # Not decided: a search timed out, or the poll's filter budget was spent. The entry is neither posted nor
    # dropped: the pipeline keeps it to be judged again at a later poll (decide/filters.py).
    undecided: bool = False
    # Failed the route's EPSS bar alone (min_epss / min_epss_percentile): remembered as a candidate, posted if a
    # later EPSS file lifts it over the bar (decide/epss.py).
    epss: bool = False


@dataclass(frozen=True)
class Score:
    """A CVE's EPSS score, as of the loaded file's score date: probability of exploitation activity in the next
    30 days, and its percentile among all scored CVEs (both 0–1)."""

    epss: float
    percentile: float


@dataclass(frozen=True)
class Intent:
    """A decision to send ``item`` to ``channel``: what the decider returns. The render stage turns it into the
    message of a :class:`Delivery`."""

    channel: str
    feed: str
    item: Item
    action: str = "post"  # post (a new message) | reply (in the story's thread) | update (edit its first message)
    story: str = ""  # the story the message belongs to (see feedrelay.decide.lifecycle), "" for none
    changes: tuple[str, ...] = ()  # for a reply, or a post in place of one: what changed, one line each
    broadcast: bool = False  # a reply also shown in the channel (updates = "broadcast")
    template: str = "full"  # the route's: a preset ("full", "compact") or its own template (render/template.py)
    mention: tuple[str, ...] = ()  # the route's mentions, Slack syntax checked at config load; never from feed text
    thread: str = ""  # a post that goes under this story's first message (the day's parent, thread = "daily")


@dataclass(frozen=True)
class Delivery:
    """One message for one channel, as the outbox stores it (written before any network call)."""

    channel: str
    feed: str
    item_key: str
    dedupe_key: str
    message: dict[str, Any]  # {"text": fallback, "blocks": [...], "plain": terminal text}
    legacy_dedupe_key: str = ""  # what rows written before schema 2 hold for the same article (the bare link)
    action: str = "post"  # post | reply | update: see Intent
    story: str = ""


@dataclass(frozen=True)
class CveFacts:
    """What feedrelay knows of one CVE, from its NVD and KEV items or an NVD lookup by id: the badge an entry
    mentioning the CVE shows, and what security rules on RSS routes judge it by (decide/mentions.py).

    ``epss``/``epss_percentile`` stay None until the EPSS table fills them (the pipeline's `_enrich`)."""

    cve: str
    severity: str | None = None  # none | low | medium | high | critical; None: unscored
    score: float | None = None
    score_source: str = ""  # NVD | CNA | CISA-ADP: whose score it is
    kev: bool = False
    kev_due: str | None = None
    epss: float | None = None  # probability 0–1
    epss_percentile: float | None = None  # 0–1
    vendors: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    cwes: tuple[str, ...] = ()
    rejected: bool = False

    def as_extra(self) -> dict[str, Any]:
        """The facts as the ``extra`` of a CVE item, so the security rules judge a mention as they judge NVD's."""
        return {"cve": self.cve, "severity": self.severity, "score": self.score, "score_source": self.score_source,
                "kev": self.kev, "kev_due": self.kev_due, "epss": self.epss, "epss_percentile": self.epss_percentile,
                "vendors": list(self.vendors), "products": list(self.products), "cwes": list(self.cwes),
                "rejected": self.rejected}

    @classmethod
    def from_extra(cls, x: dict[str, Any]) -> CveFacts:
        score = x.get("score")
        return cls(cve=str(x.get("cve", "")), severity=x.get("severity") or None,
                   score=float(score) if isinstance(score, int | float) else None,
                   score_source=str(x.get("score_source") or ""), kev=bool(x.get("kev")),
                   kev_due=str(x["kev_due"]) if x.get("kev_due") else None,
                   epss=x.get("epss"), epss_percentile=x.get("epss_percentile"),
                   vendors=tuple(str(v) for v in x.get("vendors") or ())[:50],
                   products=tuple(str(p) for p in x.get("products") or ())[:50],
                   cwes=tuple(str(c) for c in x.get("cwes") or ())[:20], rejected=bool(x.get("rejected")))
