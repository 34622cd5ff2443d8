"""CVE ids that an RSS/Atom entry names (a CISA advisory, a vendor PSIRT post, a Project Zero write-up), and what
feedrelay knows of each: the facts its security items gave (NVD, KEV) or an NVD lookup found. Pure functions.

The pipeline attaches the mentions to the entry as ``extra["mentions"]`` (a list, in order of mention, each the
facts of one CVE as :meth:`CveFacts.as_extra` gives them, or ``{"cve": id, "pending": True}`` while it has not been
looked up, or ``{"cve": id, "unknown": True}`` when nothing is known); the filters and the badges read only that.
"""

from __future__ import annotations

from typing import Any

from feedrelay.ingest.text import cve_ids
from feedrelay.model import CveFacts, Item

SOURCES = {"": "NVD", "Primary": "NVD", "Secondary": "CNA", "CISA-ADP": "CISA-ADP"}


def mentioned(item: Item) -> list[str]:
    """The CVE ids an entry names in its title, summary or content."""
    return cve_ids("\n".join(t for t in (item.title, item.summary, item.content) if t))


def record_facts(item: Item) -> CveFacts | None:
    """What a CVE record (an NVD item, or another source's item of kind "cve") tells of its CVE."""
    x = item.extra
    if item.kind != "cve" or not str(x.get("cve", "")).startswith("CVE-"):
        return None
    facts = CveFacts.from_extra(x)
    source = SOURCES.get(facts.score_source, facts.score_source) if facts.severity else ""
    return CveFacts(**{**_fields(facts), "score_source": source})


def kev_facts(item: Item) -> dict[str, Any] | None:
    """What a KEV catalog entry tells: listed, its due date, and the vendor and product CISA names."""
    x = item.extra
    if item.kind != "kev" or not str(x.get("cve", "")).startswith("CVE-"):
        return None
    return {"kev_due": x.get("kev_due"), "vendors": list(x.get("vendors") or ())[:5],
            "products": list(x.get("products") or ())[:5], "cwes": list(x.get("cwes") or ())[:10]}


def combine(cve: str, record: dict[str, Any] | None, kev: dict[str, Any] | None) -> CveFacts:
    """One CVE's facts from its record and its KEV listing: the record's score, KEV's listing (NVD lags CISA)."""
    facts = CveFacts.from_extra({**(record or {}), "cve": cve})
    if kev is None:
        return facts
    return CveFacts(**{**_fields(facts), "kev": True, "kev_due": kev.get("kev_due") or facts.kev_due,
                       "vendors": facts.vendors or tuple(kev.get("vendors") or ()),
                       "products": facts.products or tuple(kev.get("products") or ()),
                       "cwes": facts.cwes or tuple(kev.get("cwes") or ())})


def _fields(facts: CveFacts) -> dict[str, Any]:
    return {name: getattr(facts, name) for name in CveFacts.__dataclass_fields__}


def attach(item: Item, ids: list[str], known: dict[str, CveFacts], pending: set[str]) -> dict[str, Any]:
    """The entry's ``extra`` with its mentions: each id's facts, pending (not looked up yet) or unknown."""
    mentions: list[dict[str, Any]] = []
    for cve in ids:
        if cve in known:
            mentions.append(known[cve].as_extra())
        elif cve in pending:
            mentions.append({"cve": cve, "pending": True})
        else:
            mentions.append({"cve": cve, "unknown": True})
    return {**item.extra, "mentions": mentions}
