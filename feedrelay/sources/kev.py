"""CISA Known Exploited Vulnerabilities catalog: the JSON catalog, diffed by cveID."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher, FetchError
from feedrelay.ingest.identity import normalize_link
from feedrelay.ingest.text import clean
from feedrelay.model import Item
from feedrelay.sources import PollResult, SourceError


def _date(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def kev_item(v: dict[str, Any]) -> Item | None:
    cve_id = str(v.get("cveID", "")).strip()
    if not cve_id.startswith("CVE-") or len(cve_id) > 40:
        return None
    notes = str(v.get("notes") or "")
    # `notes` is a " ; "-separated list of URLs (sometimes with prose).
    links = [link for part in notes.split(";") if (link := normalize_link(part.strip()))][:3]
    vendor = clean(str(v.get("vendorProject", "")))[:100]
    product = clean(str(v.get("product", "")))[:100]
    name = clean(str(v.get("vulnerabilityName", "")))[:300]
    cwes = [str(c) for c in v.get("cwes") or [] if str(c).startswith("CWE-")][:10]
    return Item(
        key=cve_id,
        title=f"{cve_id}: {name}" if name else cve_id,
        link=f"https://nvd.nist.gov/vuln/detail/{cve_id}",
        summary=clean(str(v.get("shortDescription", "")))[:3000],
        categories=tuple(cwes),
        published=_date(v.get("dateAdded")),
        kind="kev",
        extra={
            "cve": cve_id, "vendors": [vendor] if vendor else [], "products": [product] if product else [],
            "name": name, "kev": True, "kev_added": v.get("dateAdded"), "kev_due": v.get("dueDate"),
            "kev_action": clean(str(v.get("requiredAction", "")))[:500],
            "ransomware": clean(str(v.get("knownRansomwareCampaignUse", "")))[:50],
            "cwes": cwes, "references": links,
            # KEV entries have no CVSS score here: severity filters see them as unscored.
            "severity": None, "score": None,
        },
    )


def parse_catalog(body: bytes) -> list[Item]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"the KEV catalog is not valid JSON ({exc})") from None
    except RecursionError:  # nested deeper than Python's stack: no catalog is
        raise SourceError("the KEV catalog is not valid JSON (nested too deeply)") from None
    vulns = data.get("vulnerabilities") if isinstance(data, dict) else None
    if not isinstance(vulns, list):
        raise SourceError("the KEV catalog has no `vulnerabilities` list; check the url")
    return [item for v in vulns if isinstance(v, dict) and (item := kev_item(v))]


class KEVSource:
    def __init__(self, feed: Feed, fetcher: Fetcher) -> None:
        self.feed = feed
        self.fetcher = fetcher
        self.url = feed.url  # config fills in the public endpoint

    async def poll(self, state: dict[str, Any]) -> PollResult:
        try:
            resp = await self.fetcher.get(self.url, etag=state.get("etag"), last_modified=state.get("last_modified"),
                                          accept="application/json", options=self.feed.http)
        except FetchError as exc:
            raise SourceError(str(exc), retry_after=exc.retry_after, config_problem=exc.config_problem) from None
        if resp.status == 304:
            return PollResult([], state, unchanged=True)
        digest = hashlib.sha256(resp.body).hexdigest()
        new_state = {"etag": resp.etag, "last_modified": resp.last_modified, "body_hash": digest}
        if state.get("body_hash") == digest:
            return PollResult([], new_state, unchanged=True)
        items = await asyncio.to_thread(parse_catalog, resp.body)
        return PollResult(items, new_state)
