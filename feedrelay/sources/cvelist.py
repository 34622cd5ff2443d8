"""The CVE Program's CVE List v5 (github.com/CVEProject/cvelistV5): every published CVE, with the CNA's data and
CISA's Vulnrichment (the CISA-ADP container: SSVC, and CVSS/CWE/CPE for higher-risk CVEs), independent of NVD.

Read incrementally: ``cves/deltaLog.json`` lists the records changed in the last ~30 days in batches, newest
first; each changed record is then read from the configured base URL. The watermark (the last change read, as
(batch time, CVE id)) is saved with the items in one transaction, so a crash or a failed record fetch repeats
changes and never skips one.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher, FetchError
from feedrelay.ingest.text import clean
from feedrelay.model import Item
from feedrelay.sources import PollResult, SourceError
from feedrelay.sources.nvd import CISA_ADP, DESCRIPTION_MAX, _cpe_name, score_fields, severity_for

DEFAULT_URL = "https://raw.githubusercontent.com/CVEProject/cvelistV5/main/"
DELTA_LOG = "cves/deltaLog.json"
# Records read in one poll at most (~10 KB each, read and parsed one at a time per host slot): a day's changes
# (~2,000) take a few polls in a row (`more`), each kept before the next is read.
MAX_RECORDS = 500
MAX_RECORD_BYTES = 2_000_000  # the largest real records (Linux kernel CVEs with long version lists) are ~300 KB
MAX_AFFECTED = 2000  # `affected` entries looked at per container: a record cannot make us loop without end
CVE_ID = re.compile(r"CVE-\d{4}-\d{4,19}")
# Metric keys of CVE JSON 5, in NVD's order of precedence (see nvd.pick_metric).
METRIC_KEYS = (("cvssV4_0", "4.0"), ("cvssV3_1", "3.1"), ("cvssV3_0", "3.0"), ("cvssV2_0", "2.0"))
EXPLOITATION = ("none", "poc", "active")
# Vendor names a CNA writes that name no vendor (MITRE's records say "n/a").
NO_NAME = {"", "n/a", "na", "unknown", "unspecified", "-", "*", "none"}
# Company words dropped to find the name a CPE uses: "Apache Software Foundation" is `apache`, "Microsoft
# Corporation" `microsoft`, "Fortinet, Inc." `fortinet`, "Cisco Systems" `cisco`.
COMPANY_WORDS = {"inc", "incorporated", "corp", "corporation", "co", "company", "ltd", "limited", "llc", "gmbh",
                 "ag", "sa", "se", "bv", "nv", "plc", "oy", "ab", "srl", "pvt", "private", "foundation", "software",
                 "technologies", "technology", "systems", "group", "international", "holdings"}


def record_path(cve_id: str) -> str:
    """Where the repository keeps a record: cves/2024/27xxx/CVE-2024-27348.json (thousands, then the id)."""
    _, year, number = cve_id.split("-")
    return f"cves/{year}/{int(number) // 1000}xxx/{cve_id}.json"


def _utc(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _stamp(dt: datetime) -> str:
    """One fixed format (isoformat drops a zero fraction), so that stamps compare as strings in time order."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _words(name: str) -> str:
    return " ".join(name.replace("_", " ").casefold().split())[:200]


def short_names(vendor: str) -> list[str]:
    """A CNA's vendor name and the forms a CPE would give it: "Red Hat" → red hat, redhat; "Apache Software
    Foundation" → apache software foundation, apache; "Schneider Electric" → …, schneider-electric."""
    full = _words(vendor)
    words = [w for w in re.sub(r"[,.()]", " ", full).split() if w]
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    while len(words) > 1 and words[-1] in COMPANY_WORDS:
        words.pop()
    short = " ".join(words)
    return list(dict.fromkeys(n for n in (full, short, short.replace(" ", ""), short.replace(" ", "-")) if n))


def _cpe_parts(cpe: str) -> tuple[str, str] | None:
    """(vendor, product) of a CPE 2.3 string (cpe:2.3:a:apache:tomcat:…) or a CPE 2.2 URI (cpe:/o:redhat:…): Red
    Hat's CNA writes the older form."""
    if cpe.startswith("cpe:/"):
        parts = cpe[5:].split(":")
        return (_cpe_name(parts[1]), _cpe_name(parts[2])) if len(parts) > 2 and parts[1] and parts[2] else None
    fields = re.findall(r"((?:\\.|[^:\\])*)(?::|$)", cpe)
    if len(fields) > 4 and fields[0] == "cpe" and fields[3] and fields[4]:
        return _cpe_name(fields[3]), _cpe_name(fields[4])
    return None


def _score(entry: dict[str, Any], key: str, version: str) -> dict[str, Any] | None:
    data = entry.get(key)
    if not isinstance(data, dict):
        return None
    score = data.get("baseScore")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 10:
        return None
    severity = str(data.get("baseSeverity") or "").lower()  # v2 has none
    if severity not in ("none", "low", "medium", "high", "critical"):
        severity = severity_for(float(score))
    return {"severity": severity, "score": float(score), "version": version,
            "vector": str(data.get("vectorString", ""))[:200]}


def pick_metric(cna: dict[str, Any], adp: dict[str, Any] | None) -> dict[str, Any] | None:
    """CVSS v4.0 → v3.1 → v3.0 → v2, as NVD's pick_metric; within a version the CNA's score, else CISA-ADP's (CISA
    adds one only where the CNA gave none). {severity, score, version, vector, source_type} or None."""
    for key, version in METRIC_KEYS:
        for container, source in ((cna, "CNA"), (adp or {}, "CISA-ADP")):
            for entry in _list(container.get("metrics")):
                if (found := _score(entry, key, version)) is not None:
                    return found | {"source_type": source}
    return None


def _list(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def cisa_adp(containers: dict[str, Any]) -> dict[str, Any] | None:
    """CISA's ADP container (Vulnrichment), by its provider's org id or name; not the "CVE Program Container"."""
    for adp in _list(containers.get("adp")):
        meta = _dict(adp.get("providerMetadata"))
        if meta.get("orgId") == CISA_ADP or meta.get("shortName") == "CISA-ADP":
            return adp
    return None


def ssvc(adp: dict[str, Any] | None) -> dict[str, Any]:
    """CISA's SSVC decision points: exploitation none|poc|active, automatable yes|no, technical impact
    partial|total. {} when CISA has not assessed the CVE (yet)."""
    out: dict[str, Any] = {}
    for metric in _list((adp or {}).get("metrics")):
        other = metric.get("other")
        if not isinstance(other, dict) or str(other.get("type", "")).lower() != "ssvc":
            continue
        content = _dict(other.get("content"))
        for option in _list(content.get("options")):
            for name, value in option.items():
                name, value = str(name).casefold(), str(value).casefold()
                if name == "exploitation" and value in EXPLOITATION:
                    out["ssvc_exploitation"] = value
                elif name == "automatable" and value in ("yes", "no"):
                    out["automatable"] = value == "yes"
                elif name == "technical impact" and value in ("partial", "total"):
                    out["technical_impact"] = value
    return out


def _kev(adp: dict[str, Any] | None) -> str | None:
    """The KEV listing date CISA's ADP container records (metrics[].other type "kev"), if any."""
    for metric in _list((adp or {}).get("metrics")):
        other = metric.get("other")
        if isinstance(other, dict) and other.get("type") == "kev":
            content = _dict(other.get("content"))
            added = str(content.get("dateAdded") or "")[:10]
            return added if re.fullmatch(r"\d{4}-\d\d-\d\d", added) else ""
    return None


def _cwes(*containers: dict[str, Any] | None) -> list[str]:
    found: dict[str, None] = {}
    for container in containers:
        for problem in _list((container or {}).get("problemTypes")):
            for d in _list(problem.get("descriptions")):
                cwe = str(d.get("cweId") or "")
                if not cwe and str(d.get("description", "")).startswith("CWE-"):
                    cwe = str(d["description"]).split()[0]
                if re.fullmatch(r"CWE-\d{1,6}", cwe):
                    found[cwe] = None
    return sorted(found)


def _names(cna: dict[str, Any], adp: dict[str, Any] | None) -> dict[str, Any]:
    """Vendors and products for the filters (CPE names as NVD gives them, the CNA's names and their CPE-like short
    forms), the CNA's own names for whole-word matching, and (vendor, product) pairs for the message."""
    vendors: dict[str, None] = {}
    products: dict[str, None] = {}
    cna_vendors: dict[str, None] = {}
    cna_products: dict[str, None] = {}
    pairs: list[list[str]] = []
    seen: set[tuple[str, str]] = set()
    cpe_pairs: list[list[str]] = []
    for container, own in ((cna, True), (adp or {}, False)):
        for entry in _list(container.get("affected"))[:MAX_AFFECTED]:
            cpes = entry.get("cpes")
            for cpe in cpes if isinstance(cpes, list) else []:
                if isinstance(cpe, str) and (parts := _cpe_parts(cpe[:500])):
                    vendors[parts[0]] = None
                    products[parts[1]] = None
                    if list(parts) not in cpe_pairs:
                        cpe_pairs.append(list(parts))
            vendor = clean(str(entry.get("vendor") or ""))[:100]
            product = clean(str(entry.get("product") or entry.get("packageName") or ""))[:150]
            vendor = "" if vendor.casefold() in NO_NAME else vendor
            product = "" if product.casefold() in NO_NAME else product
            if not own:
                continue  # CISA's ADP names are CPE-style already: its CPEs say it
            shorts = short_names(vendor) if vendor else []
            for name in shorts:
                vendors[name] = None
            if vendor:
                cna_vendors[_words(vendor)] = None
            if product:
                words = _words(product)
                products[words] = None
                cna_products[words] = None
                # "Apache Tomcat" of vendor Apache is the CPE product `tomcat`.
                for name in shorts:
                    if words.startswith(name + " "):
                        products[words[len(name) + 1:]] = None
                        break
            if (vendor or product) and (vendor, product) not in seen:
                seen.add((vendor, product))
                pairs.append([vendor, product])
    shown = pairs or cpe_pairs
    return {"vendors": list(vendors), "products": list(products), "cna_vendors": list(cna_vendors)[:200],
            "cna_products": list(cna_products)[:500], "affected": shown[:20], "affected_total": len(shown)}


def _description(container: dict[str, Any], key: str = "descriptions") -> str:
    entries = _list(container.get(key))
    english = next((d for d in entries if str(d.get("lang", "")).lower().startswith("en")), None)
    chosen = english or (entries[0] if entries else {})
    return clean(str(chosen.get("value", "")))[:DESCRIPTION_MAX]


def record_item(record: object, expected: str | None = None) -> Item:
    """An Item for one CVE JSON 5 record; ValueError (saying why) for anything that is not one, or a record of
    another CVE than the change named."""
    if not isinstance(record, dict) or record.get("dataType") != "CVE_RECORD":
        raise ValueError('not a CVE JSON 5 record (no "dataType": "CVE_RECORD")')
    meta = record.get("cveMetadata")
    containers = record.get("containers")
    if not isinstance(meta, dict) or not isinstance(containers, dict) or not isinstance(containers.get("cna"), dict):
        raise ValueError("not a CVE JSON 5 record (no cveMetadata or CNA container)")
    cve_id = str(meta.get("cveId", ""))
    if not CVE_ID.fullmatch(cve_id):
        raise ValueError(f"its cveId {cve_id[:40]!r} is not a CVE id")
    if expected and cve_id != expected:
        raise ValueError(f"it is the record of {cve_id}, not of {expected}")
    cna: dict[str, Any] = containers["cna"]
    state = str(meta.get("state", ""))
    rejected = state == "REJECTED"
    adp = cisa_adp(containers)
    metric = pick_metric(cna, adp)
    cwes = _cwes(cna, adp)
    kev_added = _kev(adp)
    summary = _description(cna, "rejectedReasons" if rejected else "descriptions")
    extra: dict[str, Any] = {
        "cve": cve_id,
        "status": state.capitalize(),
        **score_fields(metric),
        **_names(cna, adp),
        "cwes": cwes,
        "references": [str(r.get("url", ""))[:500] for r in _list(cna.get("references"))[:5]],
        "kev": kev_added is not None,
        "rejected": rejected,
        "name": clean(str(cna.get("title") or ""))[:300],
        "assigner": clean(str(meta.get("assignerShortName") or ""))[:100],
        "origin": "cvelist",  # whose data: the lifecycle ranks CVE List scores above NVD's copies of them
        **ssvc(adp),
    }
    if kev_added is not None:
        extra["kev_added"] = kev_added or None
    return Item(
        key=cve_id,
        title=cve_id,
        link=f"https://www.cve.org/CVERecord?id={cve_id}",
        summary=summary,
        categories=tuple(cwes),
        published=_utc(meta.get("datePublished")) or _utc(meta.get("dateRejected")),
        kind="cve",
        extra=extra,
    )


def parse_record(body: bytes, expected: str) -> Item:
    if len(body) > MAX_RECORD_BYTES:
        raise ValueError(f"{len(body):,} bytes, over the {MAX_RECORD_BYTES:,}-byte limit for one record")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({str(exc)[:100]})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to be a CVE record") from None
    return record_item(data, expected)


Key = tuple[str, str]  # (batch fetchTime as UTC ISO, CVE id): the order changes are read in


def parse_delta_log(body: bytes, since: str = "") -> tuple[dict[str, Key], list[str], str | None]:
    """Each changed CVE with the key of its latest change, the problems found (entries skipped or links ignored),
    and the oldest batch time (how far back the log reaches). Batches older than ``since`` (a stamp) are not
    looked into: their changes were read (a 4.5 MB log of 14,400 changes takes ~200 ms to go through whole)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"the CVE List delta log is not valid JSON ({str(exc)[:100]}); check the url") from None
    except RecursionError:
        raise SourceError("the CVE List delta log is not valid JSON (nested too deeply)") from None
    if isinstance(data, dict) and "fetchTime" in data:
        data = [data]  # cves/delta.json: the latest batch alone
    if not isinstance(data, list):
        raise SourceError("the CVE List delta log is not a list of batches (cves/deltaLog.json); check the url")
    changes: dict[str, Key] = {}
    problems: list[str] = []
    oldest: str | None = None
    for batch in data:
        when = _utc(batch.get("fetchTime")) if isinstance(batch, dict) else None
        if when is None:
            problems.append("a batch without a valid fetchTime was skipped")
            continue
        stamp = _stamp(when)
        oldest = min(oldest or stamp, stamp)
        if stamp < since:
            continue
        for entry in _list(batch.get("new")) + _list(batch.get("updated")):
            cve_id = entry.get("cveId")
            if not isinstance(cve_id, str) or not CVE_ID.fullmatch(cve_id):
                problems.append(f"an entry whose cveId {str(cve_id)[:40]!r} is not a CVE id was skipped")
                continue
            link = entry.get("githubLink")
            # The record is always read from the configured base URL at the path its id gives, never from a link in
            # the data: a link to anywhere else is only reported.
            if isinstance(link, str) and link and not urlsplit(link).path.endswith("/" + record_path(cve_id)):
                problems.append(f"{cve_id}'s githubLink points to {link[:120]!r}, not to its record; ignored, the "
                                "record is read from the feed's url")
            key = (stamp, cve_id)
            if cve_id not in changes or key > changes[cve_id]:
                changes[cve_id] = key
    return changes, problems, oldest


class CVEListSource:
    def __init__(self, feed: Feed, fetcher: Fetcher) -> None:
        self.feed = feed
        self.fetcher = fetcher
        url = feed.url if feed.url.endswith("/") else feed.url + "/"
        # `url` is the repository's base (a mirror's, too), or its delta log itself.
        self.base = url[: -len(DELTA_LOG) - 1] if url.endswith(DELTA_LOG + "/") else url
        self.base = self.base[: -len("cves/delta.json/")] if self.base.endswith("cves/delta.json/") else self.base

    @property
    def log_url(self) -> str:
        return self.feed.url if self.feed.url.rstrip("/").endswith((DELTA_LOG, "cves/delta.json")) \
            else self.base + DELTA_LOG

    async def poll(self, state: dict[str, Any]) -> PollResult:
        mark = state.get("watermark")
        watermark: Key | None = (str(mark[0]), str(mark[1])) if isinstance(mark, list) and len(mark) == 2 else None
        # (a catch-up in parts re-reads the log: no validators, or a 304 would stop it halfway)
        validators = {} if state.get("more") else state
        try:
            resp = await self.fetcher.get(self.log_url, etag=validators.get("etag"),
                                          last_modified=validators.get("last_modified"), accept="application/json",
                                          options=self.feed.http)
        except FetchError as exc:
            raise SourceError(f"CVE List delta log: {exc}", retry_after=exc.retry_after,
                              config_problem=exc.config_problem) from None
        if resp.status == 304 and watermark is not None:
            return PollResult([], state, unchanged=True)
        changes, problems, oldest = await asyncio.to_thread(parse_delta_log, resp.body,
                                                            watermark[0] if watermark else "")
        kept = {"etag": resp.etag, "last_modified": resp.last_modified}
        newest = max(changes.values(), default=None)
        if watermark is None:
            mark_now = [newest[0], "~"] if newest else [_stamp(datetime.now(UTC)), "~"]
            # First poll: remember where the log is; with `backlog`, the newest N records are read to be posted.
            wanted = sorted(changes.values(), reverse=True)[: self.feed.backlog] if self.feed.backlog else []
            items = await self._records([k for k in sorted(wanted)], problems)
            return PollResult(items, {**kept, "watermark": mark_now}, listing=False, warning=self._warning(problems))
        if oldest is not None and oldest > watermark[0]:
            problems.insert(0, f"the delta log reaches back to {oldest} only, and the last change read was at "
                               f"{watermark[0]}: changes between were missed (the log keeps about 30 days)")
        pending = sorted(k for k in changes.values() if k > watermark)
        part, more = pending[:MAX_RECORDS], len(pending) > MAX_RECORDS
        items = await self._records(part, problems)
        new_mark = list(part[-1]) if part else list(watermark)
        new_state: dict[str, Any] = {**kept, "watermark": new_mark}
        if more:
            new_state["more"] = True
        return PollResult(items, new_state, listing=False, more=more, warning=self._warning(problems))

    async def _records(self, keys: list[Key], problems: list[str]) -> list[Item]:
        """The records of these changes, read concurrently (the Fetcher keeps to its per-host limit). A record that
        cannot be fetched fails the poll (its changes are read again next time); one that is not a CVE record is
        skipped and reported, unless none is one (then the url is wrong, and the poll fails)."""
        oversized: list[str] = []

        async def one(cve_id: str) -> Item | str:
            url = self.base + record_path(cve_id)
            try:
                resp = await self.fetcher.get(url, accept="application/json", options=self.feed.http)
            except FetchError as exc:
                if exc.status is None and "-byte limit" in str(exc):
                    # Too big to read is not cured by reading again: reported and skipped, like a broken record.
                    oversized.append(f"{cve_id} at {url} was skipped: {exc}")
                    return ""
                raise SourceError(f"CVE List record {cve_id} ({url}): {exc}; its changes will be read again",
                                  retry_after=exc.retry_after, config_problem=exc.config_problem) from None
            try:
                return parse_record(resp.body, cve_id)
            except ValueError as exc:
                if "-byte limit" in str(exc):
                    oversized.append(f"{cve_id} at {url} was skipped: {exc}")
                    return ""
                return f"{cve_id} at {url} was skipped: {exc}"

        results = await asyncio.gather(*(one(cve_id) for _, cve_id in keys), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        items = [r for r in results if isinstance(r, Item)]
        bad = [r for r in results if isinstance(r, str) and r]
        problems.extend(oversized)
        if bad and not items:
            raise SourceError(f"CVE List: {bad[0]}" + (f" (and {len(bad) - 1} more like it)" if len(bad) > 1 else "")
                              + "; check the feed's url (the base of a CVE List v5 copy, such as "
                              f"{DEFAULT_URL})")
        problems.extend(bad)
        return items

    @staticmethod
    def _warning(problems: list[str]) -> str | None:
        if not problems:
            return None
        shown = "; ".join(problems[:3])
        return f"CVE List: {shown}" + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
