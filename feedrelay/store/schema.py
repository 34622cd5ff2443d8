"""The database's tables, as SQL: what a new database is created with and what an upgrade reaches."""

from __future__ import annotations

SCHEMA_VERSION = 3  # 2: items.last_seen, last_gen, published; feeds.url_changed, keys_version, listing_gen
# 3: outbox.action, outbox.story; stories and holds (the CVE lifecycle: see feedrelay/store/stories.py)
STORIES = """
CREATE TABLE IF NOT EXISTS stories (
    channel TEXT NOT NULL,
    story TEXT NOT NULL,                      -- CVE ID (NVD and KEV share it), or "feed<TAB>key" for RSS
    feed TEXT NOT NULL,                       -- the feed that posted it first
    ts TEXT,                                  -- the first message's Slack ts, once it is sent
    channel_id TEXT,                          -- the channel ID chat.postMessage answered (chat.update needs it)
    state TEXT,                               -- compact JSON state; NULL: posted before schema 3, unknown
    first_posted REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (channel, story)
) WITHOUT ROWID;
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'rss',
    active INTEGER NOT NULL DEFAULT 1,
    initialized INTEGER NOT NULL DEFAULT 0,   -- 0 until the first successful poll remembered its items
    state TEXT NOT NULL DEFAULT '{}',         -- source state: validators, body hash, NVD watermark
    last_poll REAL, last_success REAL,
    last_error TEXT, error_since REAL, errors INTEGER NOT NULL DEFAULT 0,
    warning TEXT,
    listed INTEGER NOT NULL DEFAULT 0,        -- entries in the last full listing
    not_before REAL,                          -- honour Retry-After: do not poll before this time
    url_changed INTEGER NOT NULL DEFAULT 0,   -- the URL changed: its first poll posts what is new if it overlaps
    keys_version INTEGER NOT NULL DEFAULT 2,  -- 1: items remembered before schema 2, under their old keys
    listing_gen INTEGER NOT NULL DEFAULT 0    -- counts the feed's listings: items of the latest have this number
);
CREATE TABLE IF NOT EXISTS items (
    feed TEXT NOT NULL,
    key TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    last_seen REAL,                           -- when a listing last had it (pruning: retention)
    last_gen INTEGER NOT NULL DEFAULT 0,      -- which listing last had it: the latest's are never pruned
    published REAL,                           -- the entry's date: tells a re-issued id from a new lookalike
    PRIMARY KEY (feed, key)
) WITHOUT ROWID;
-- (items_by_age, on (feed, first_seen), served the pruning of schema 1: 27% of the file at 1M items)
DROP INDEX IF EXISTS items_by_age;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    feed TEXT NOT NULL,
    item_key TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    message TEXT NOT NULL,                    -- rendered Block Kit JSON: delivery needs nothing else
    created REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    ts TEXT,
    action TEXT NOT NULL DEFAULT 'post',      -- post | reply (in the story's thread) | update (of its first post)
    story TEXT                                -- the story this row belongs to (stories.story), if any
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (channel, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_guard ON outbox (channel, dedupe_key, created);
-- Counts per channel and state (status, /metrics) from the index alone: 200,000 rows 0.8 s -> 0.13 s of CPU.
CREATE INDEX IF NOT EXISTS outbox_states ON outbox (channel, status, created);
-- What each channel was told about a story (a CVE, or an RSS entry with updates on): its first message, and the
-- compact state it was last judged in. Kept for `retention` after its last change.
""" + STORIES + """
-- Unscored CVEs a route holds (include_unscored = "after 72h") until a score arrives or the hold runs out.
CREATE TABLE IF NOT EXISTS holds (
    feed TEXT NOT NULL,
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    since REAL NOT NULL,                      -- when the hold began (the CVE first seen unscored by this route)
    item TEXT NOT NULL,                       -- the item as last seen, to post when the hold runs out
    PRIMARY KEY (feed, channel, key)
) WITHOUT ROWID;
-- FIRST's EPSS scores as of the last good daily file (feedrelay/store/epss.py): replaced whole, in one transaction.
CREATE TABLE IF NOT EXISTS epss (
    cve TEXT PRIMARY KEY,
    epss REAL NOT NULL,                       -- probability of exploitation in the next 30 days, 0-1
    percentile REAL NOT NULL                  -- 0-1
) WITHOUT ROWID;
-- One row: the file's validators, its score date, the last check and the last error (for `status` and alerts).
CREATE TABLE IF NOT EXISTS epss_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- CVEs a route would post but for its EPSS bar: judged again after each new EPSS file, until they expire.
CREATE TABLE IF NOT EXISTS epss_candidates (
    channel TEXT NOT NULL,
    story TEXT NOT NULL,                      -- the CVE ID
    feed TEXT NOT NULL,                       -- the feed whose route it failed
    since REAL NOT NULL,
    item TEXT NOT NULL,                       -- the item as last seen (JSON), to post when it passes
    PRIMARY KEY (channel, story, feed)
) WITHOUT ROWID;
-- What feedrelay knows of each CVE, for the badges and security rules of RSS entries that mention it
-- (feedrelay/store/cve_facts.py). A new table, created where missing: no schema version of its own.
CREATE TABLE IF NOT EXISTS cve_facts (
    cve TEXT PRIMARY KEY,
    record TEXT,                              -- JSON facts of its CVE record (an NVD feed or lookup); NULL: none
    kev TEXT,                                 -- JSON of its KEV listing (due date, vendor, product); NULL: not listed
    looked_up REAL,                           -- when NVD was last asked for it by id; NULL: a feed keeps it current
    found INTEGER,                            -- that lookup's answer: 1 found, 0 NVD does not know the id (yet)
    updated REAL NOT NULL                     -- when any of it last changed (pruning: retention)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,
    failing TEXT,                             -- a permanent Slack error, shown in `status`
    failing_since REAL
);
"""
