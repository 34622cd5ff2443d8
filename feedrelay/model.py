"""The item every source produces, and the pure rules for its identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Tracking parameters that make the same article look like a new link.
_TRACKING_PARAMS = {"fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "ref_src"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_KEY = 512


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
    kind: str = "post"  # post | cve | kev
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


def normalize_link(url: str | None, base: str | None = None) -> str:
    """Canonical form of an http(s) link; "" for anything else (javascript:, data:, mailto:, junk)."""
    if not url:
        return ""
    url = url.strip()
    # urljoin() leaves an absolute URL without dot segments as it is; most links are that, and skipping it is cheap.
    if base and not (url.startswith(("https://", "http://")) and "/." not in url):
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return ""
    # Rebuilt from hostname: userinfo ("https://bank.com@evil.example/") is dropped, as it only disguises hosts.
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not k.lower().startswith("utm_") and k.lower() not in _TRACKING_PARAMS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    # The fragment stays: it is where a changelog's release or a one-page site's entry is (dedupe ignores it).
    return urlunsplit((scheme, host, parts.path or "/", query, parts.fragment))


def untracked(link: str) -> str:
    """A normalized ``link`` without Medium's ``source=rss…``: each Medium feed tags its links with its own (a
    publication's, an author's, a tag's), so one story from two feeds had two links. Item keys are made from the
    link as it was (``keys``), so entries remembered before this keep their identity."""
    if "source=rss" not in link:
        return link
    parts = urlsplit(link)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not (k == "source" and v.startswith("rss"))]
    return urlunsplit(parts._replace(query=urlencode(kept))) if len(kept) != len(pairs) else link


def keys(guid: str | None, link: str, title: str, date: str | None, text: str = "") -> tuple[str, str]:
    """(key, legacy key): the identity, and the one feedrelay gave the entry before schema 2 where that differs
    (links kept no fragment then, and untitled, undated entries all had one key)."""
    key = make_key(guid, link, title, date, text)
    if guid and guid.strip():
        return key, ""
    old_link = link.split("#", 1)[0]
    # (schema 1's formula, exactly: make_key has changed since for untitled, undated entries)
    legacy = old_link or "sha256:" + hashlib.sha256(f"{title}\x00{date or ''}".encode()).hexdigest()
    if len(legacy) > MAX_KEY:
        legacy = "sha256:" + hashlib.sha256(legacy.encode()).hexdigest()
    return key, "" if legacy == key else legacy


def make_key(guid: str | None, link: str, title: str, date: str | None, text: str = "") -> str:
    """Item identity: the guid/id; else the normalized link; else a hash of title and date (and, when both are
    empty, of the entry's ``text``: untitled, undated notes would otherwise all be one item)."""
    if guid and guid.strip():
        key = guid.strip()
    elif link:
        key = link
    else:
        # (text joins the hash only when title and date are empty, so existing keys stay what they were)
        seed = f"{title}\x00{date or ''}" if title or date else f"\x00\x00{text}"
        key = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
    if len(key) > MAX_KEY:  # hostile feeds send megabyte-long ids
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key
