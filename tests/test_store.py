"""SQLite state on a real file: remembered items, the outbox, pruning, damaged files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedrelay.delivery.outbox import Outbox
from feedrelay.model import Delivery, Item, Lookalike
from feedrelay.store import Store, StoreError

DAY = 86400.0
T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state" / "feedrelay.db")
    yield s
    s.close()


def items(*keys: str) -> list[Item]:
    return [Item(key=k, title=f"Title {k}", link=f"https://example.com/{k}") for k in keys]


def delivery(channel: str = "readings", key: str = "k1", dedupe: str | None = None, feed: str = "Blog") -> Delivery:
    return Delivery(channel, feed, key, dedupe or f"https://example.com/{key}", {"text": key, "blocks": []})


def test_creates_missing_directory_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "db.sqlite"
    s = Store(path)
    s.ensure_feed("Blog", "https://example.com/feed", "rss")
    with s.transaction():
        s.remember("Blog", items("x", "y"))
    s.close()
    again = Store(path)
    assert again.known_keys("Blog", ["x", "y", "z"]) == {"x", "y"}
    again.close()


def test_remember_and_known_keys(store: Store) -> None:
    with store.transaction():
        assert store.remember("Blog", items("a", "b")) == 2
        assert store.remember("Blog", items("b", "c")) == 1
    assert store.known_keys("Blog", ["a", "b", "c", "d"]) == {"a", "b", "c"}
    assert store.known_keys("Other", ["a"]) == set()  # keys are per feed
    assert store.known_keys("Blog", []) == set()


def test_known_keys_beyond_sqlite_parameter_limit(store: Store) -> None:
    keys = [f"k{i}" for i in range(2500)]
    with store.transaction():
        store.remember("Blog", items(*keys[::2]))
    assert store.known_keys("Blog", keys) == set(keys[::2])


def test_failed_transaction_keeps_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.remember("Blog", items("a"))
        raise RuntimeError("poll crashed")
    assert store.known_keys("Blog", ["a"]) == set()


# --- outbox ---------------------------------------------------------------------------------------


def test_enqueue_then_next_returns_oldest_pending(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue([delivery(key="k1"), delivery(key="k2")], window=DAY, now=T0)
        outbox.enqueue([delivery(key="k3")], window=DAY, now=T0 + 1)
    first = outbox.next("readings")
    assert first is not None and first.message["text"] == "k1" and first.attempts == 0
    assert outbox.next("elsewhere") is None


def test_enqueue_guard_same_link_same_channel_within_window(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        assert outbox.enqueue([delivery(key="guid-1", dedupe="https://example.com/a")], window=DAY, now=T0)
        # GUID churned, same article: skipped in the same channel...
        again = outbox.enqueue([delivery(key="guid-2", dedupe="https://example.com/a")], window=DAY, now=T0 + 60)
        assert again == []
        # ...but another channel still gets it.
        other = outbox.enqueue([delivery(channel="security", key="guid-2", dedupe="https://example.com/a")],
                               window=DAY, now=T0 + 60)
        assert len(other) == 1
        # After the window, the same link may be posted again.
        later = outbox.enqueue([delivery(key="guid-3", dedupe="https://example.com/a")], window=DAY,
                               now=T0 + DAY + 1)
        assert len(later) == 1
    assert outbox.channel_stats()["readings"]["pending"] == 2


def test_within_one_batch_an_item_goes_once_and_lookalike_items_each_go(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        queued = outbox.enqueue([delivery(key="a", dedupe="same"), delivery(key="a", dedupe="same"),
                                 delivery(key="b", dedupe="same")], window=DAY, now=T0)
    # Whether two entries alike are one is the decider's call (two "Mailbag" episodes are two).
    assert [d.item_key for d in queued] == ["a", "b"]


def test_mark_sent_moves_to_next(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue([delivery(key="k1"), delivery(key="k2")], window=DAY, now=T0)
    first = outbox.next("readings")
    assert first is not None
    outbox.mark_sent(first.id, "1700000000.000100", now=T0 + 5)
    second = outbox.next("readings")
    assert second is not None and second.message["text"] == "k2"
    stats = outbox.channel_stats()["readings"]
    assert (stats["sent"], stats["pending"]) == (1, 1)


def test_mark_retry_keeps_order_and_counts_attempts(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue([delivery(key="k1"), delivery(key="k2")], window=DAY, now=T0)
    first = outbox.next("readings")
    assert first is not None
    outbox.mark_retry(first.id, "ratelimited", next_attempt=T0 + 30)
    again = outbox.next("readings")
    # A rate-limited message is not overtaken by the next one: order within a channel holds.
    assert again is not None and again.id == first.id
    assert again.attempts == 1 and again.next_attempt == T0 + 30
    stats = outbox.channel_stats()["readings"]
    assert stats["last_error"] == "ratelimited" and stats["pending"] == 2


def test_mark_failed_stays_visible_and_can_be_retried(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue([delivery(key="k1"), delivery(key="k2")], window=DAY, now=T0)
    first = outbox.next("readings")
    assert first is not None
    outbox.mark_failed(first.id, "invalid_blocks")
    second = outbox.next("readings")
    assert second is not None and second.id != first.id
    stats = outbox.channel_stats()["readings"]
    assert stats["failed"] == 1 and stats["last_error"] == "invalid_blocks"
    assert outbox.feed_stats()["Blog"] == {"pending": 1, "failed": 1}
    assert outbox.retry_failed("readings") == 1
    assert outbox.next("readings").id == first.id  # type: ignore[union-attr]


def test_outbox_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    s = Store(path)
    with s.transaction():
        Outbox(s).enqueue([delivery(key="k1")], window=DAY, now=T0)
    s.close()
    s = Store(path)
    pending = Outbox(s).next("readings")
    assert pending is not None and pending.message == {"text": "k1", "blocks": []}
    s.close()


def test_outbox_prune_never_drops_pending(store: Store) -> None:
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue([delivery(key="sent"), delivery(key="pending"), delivery(key="failed")], window=DAY, now=T0)
    sent = outbox.next("readings")
    assert sent is not None
    outbox.mark_sent(sent.id, "1.1")
    pending = outbox.next("readings")
    assert pending is not None and pending.message["text"] == "pending"
    outbox.mark_failed(pending.id + 1, "invalid_blocks")  # the third row, "failed"
    assert outbox.prune(keep=DAY, now=T0 + 100 * DAY) == 1
    left = outbox.next("readings")
    assert left is not None and left.message["text"] == "pending"
    assert outbox.channel_stats()["readings"]["failed"] == 1


# --- pruning remembered items ---------------------------------------------------------------------


def remember_aged(store: Store, feed: str, n: int, start: float) -> None:
    with store.transaction():
        for i in range(n):
            store.remember(feed, items(f"{feed}-{i}"), now=start + i)


def test_prune_keeps_at_least_100_newest(store: Store) -> None:
    store.ensure_feed("Small", "https://example.com/s", "rss")
    remember_aged(store, "Small", 150, T0)
    store.record_success("Small", {}, warning=None, listed=10, listing_gen=1, now=T0)  # a listing with none of them
    store.prune(retention=DAY, now=T0 + 200 * DAY)
    kept = store.known_keys("Small", [f"Small-{i}" for i in range(150)])
    assert kept == {f"Small-{i}" for i in range(50, 150)}  # the newest 100


def test_prune_never_forgets_what_the_latest_listing_has_however_old(store: Store) -> None:
    store.ensure_feed("Big", "https://example.com/b", "rss")
    remember_aged(store, "Big", 400, T0)
    listed = ["Big-0", "Big-1", "Big-2"]  # the oldest entries, still in the feed 100 days on
    with store.transaction():
        store.still_listed("Big", listed, now=T0 + 100 * DAY, listing_gen=5)
        store.record_success("Big", {}, warning=None, listed=3, listing_gen=5, now=T0 + 100 * DAY)
    store.prune(retention=90 * DAY, now=T0 + 365 * DAY)
    assert store.known_keys("Big", listed) == set(listed)
    assert store.count_items()["Big"] == 100  # with the newest of the rest, up to the floor


def test_one_short_listing_does_not_make_a_catalog_look_new(store: Store) -> None:
    # A catalog of 500 entries first seen long ago, listed daily; one day the publisher serves 3 entries.
    store.ensure_feed("KEV", "https://example.com/kev.json", "kev")
    keys = [f"KEV-{i}" for i in range(500)]
    with store.transaction():
        store.remember("KEV", [Item(key=k, title=k, link="") for k in keys], now=T0, listing_gen=1)
        store.still_listed("KEV", keys, now=T0 + 200 * DAY, listing_gen=2)
        store.still_listed("KEV", keys[:3], now=T0 + 201 * DAY, listing_gen=3)
        store.record_success("KEV", {}, warning=None, listed=3, listing_gen=3, now=T0 + 201 * DAY)
    store.prune(retention=90 * DAY, now=T0 + 201 * DAY)
    assert store.known_keys("KEV", keys) == set(keys)  # the full catalog coming back is nothing new


def test_the_latest_listing_is_known_by_its_number_not_its_time(store: Store) -> None:
    # The clock steps back an hour (a VM restored, NTP) between two listings; then the feed is quiet for months.
    store.ensure_feed("Blog", "https://example.com/f", "rss")
    keys = [f"post-{i}" for i in range(300)]
    with store.transaction():
        store.remember("Blog", [Item(key=k, title=k, link="") for k in [*keys, "dropped"]], now=T0, listing_gen=1)
        store.still_listed("Blog", keys, now=T0 - 3600, listing_gen=2)
        store.record_success("Blog", {}, warning=None, listed=300, listing_gen=2, now=T0 - 3600)
    store.prune(retention=90 * DAY, now=T0 + 190 * DAY)
    assert store.known_keys("Blog", keys) == set(keys)  # all 300 still listed: none forgotten


def test_a_database_from_schema_1_is_upgraded_without_forgetting_or_pruning(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    old = sqlite3.connect(path)
    old.executescript((Path(__file__).parent / "fixtures" / "schema-v1.sql").read_text())
    old.execute("INSERT INTO feeds (name, url, initialized, listed) VALUES ('Blog', 'https://example.com/f', 1, 20)")
    old.execute("INSERT INTO items VALUES ('Blog', 'guid-1', 'https://example.com/a', 'Hello world', 1000.0)")
    old.executemany("INSERT INTO items VALUES ('Blog', ?, ?, 'x', ?)",
                    [(f"old-{i}", f"https://example.com/{i}", 1000.0 + i) for i in range(200)])
    old.commit()
    old.close()
    store = Store(path)
    store.ensure_feed("Added", "https://example.com/new", "rss")
    assert store.prune(retention=DAY) == 0  # 201 old rows: when each was last listed is unknown, taken as now
    assert store.count_items() == {"Blog": 201}
    feeds = {f.name: f for f in store.feeds()}
    assert (feeds["Blog"].keys_version, feeds["Blog"].listing_gen) == (1, 1)
    assert feeds["Added"].keys_version == 2  # a feed added after the upgrade has nothing old to match
    # Schema 1 kept the last listing's size (20): its newest 20 items stand for that listing.
    previous = {r[0] for r in store.db.execute("SELECT key FROM items WHERE last_gen = 1")}
    assert previous == {f"old-{i}" for i in range(180, 200)}
    # A schema-1 row (bare link) still catches the same entry coming back under a new id.
    churned = Item(key="https-guid-1", title="Hello  World", link="https://example.com/a")
    assert store.lookalikes("Blog", [churned], 1) == {churned.dedupe_key: [Lookalike("guid-1", None, False)]}
    assert store.lookalikes("Blog", [Item(key="g2", title="Episode 2", link="https://example.com/a")], 1) == {}
    store.close()


def test_prune_keeps_recent_items_whatever_the_count(store: Store) -> None:
    store.ensure_feed("Blog", "https://example.com/f", "rss")
    remember_aged(store, "Blog", 300, T0)
    assert store.prune(retention=DAY, now=T0 + 3600) == 0
    assert store.count_items()["Blog"] == 300


def test_prune_forgets_feeds_removed_long_ago(store: Store) -> None:
    store.sync_feeds([("Old", "https://example.com/o", "rss"), ("Kept", "https://example.com/k", "rss")])
    store.record_success("Old", {}, warning=None, listed=5, now=T0)
    store.record_success("Kept", {}, warning=None, listed=5, now=T0 + 200 * DAY)
    remember_aged(store, "Old", 5, T0)
    remember_aged(store, "Kept", 5, T0)
    store.sync_feeds([("Kept", "https://example.com/k", "rss")])
    store.prune(retention=DAY, now=T0 + 200 * DAY)
    assert store.count_items() == {"Kept": 5}


def test_prune_never_touches_pending_outbox(store: Store) -> None:
    store.ensure_feed("Blog", "https://example.com/f", "rss")
    remember_aged(store, "Blog", 150, T0)
    outbox = Outbox(store)
    with store.transaction():
        outbox.enqueue([delivery(key="Blog-0")], window=DAY, now=T0)
    store.prune(retention=DAY, now=T0 + 365 * DAY)
    outbox.prune(keep=DAY, now=T0 + 365 * DAY)
    pending = outbox.next("readings")
    assert pending is not None and pending.message["text"] == "Blog-0"


# --- feeds ----------------------------------------------------------------------------------------


def test_sync_feeds_marks_removed_inactive_and_readded_uninitialized(store: Store) -> None:
    store.sync_feeds([("A", "https://a.example/f", "rss"), ("B", "https://b.example/f", "rss")])
    store.record_success("A", {"etag": '"x"'}, warning=None, listed=3, now=T0)
    store.record_success("B", {}, warning=None, listed=3, now=T0)
    assert store.feed("A").initialized  # type: ignore[union-attr]

    store.sync_feeds([("B", "https://b.example/f", "rss")])
    a = store.feed("A")
    assert a is not None and not a.active
    assert store.feed("B").active and store.feed("B").initialized  # type: ignore[union-attr]

    store.sync_feeds([("A", "https://a.example/f", "rss"), ("B", "https://b.example/f", "rss")])
    a = store.feed("A")
    assert a is not None and a.active and not a.initialized  # starts afresh: posts nothing old
    assert store.feed("B").initialized  # type: ignore[union-attr]


def test_sync_feeds_with_no_feeds_deactivates_all(store: Store) -> None:
    store.sync_feeds([("A", "https://a.example/f", "rss")])
    store.sync_feeds([])
    assert not store.feed("A").active  # type: ignore[union-attr]


def test_record_error_and_recovery(store: Store) -> None:
    store.ensure_feed("A", "https://a.example/f", "rss")
    store.record_error("A", "HTTP 503", retry_after=120, now=T0)
    store.record_error("A", "HTTP 503", now=T0 + 300)
    row = store.feed("A")
    assert row is not None and row.errors == 2 and row.error_since == T0 and row.last_error == "HTTP 503"
    store.record_success("A", {"etag": "e"}, warning="malformed", listed=7, now=T0 + 600)
    row = store.feed("A")
    assert row is not None
    assert (row.errors, row.last_error, row.error_since, row.warning, row.listed) == (0, None, None, "malformed", 7)
    assert row.state == {"etag": "e"}


# --- damaged or foreign files ---------------------------------------------------------------------


def test_garbage_file_raises_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "feedrelay.db"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(StoreError) as info:
        Store(path)
    message = str(info.value)
    assert str(path) in message
    assert "damaged" in message
    assert not isinstance(info.value, sqlite3.Error)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_text_file_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("[defaults]\ninterval = '15m'\n" * 50)
    with pytest.raises(StoreError, match="damaged"):
        Store(path)
    assert path.read_text().startswith("[defaults]")  # not overwritten


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    s = Store(path)
    s.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    s.db.conn.commit()
    s.close()
    with pytest.raises(StoreError, match="newer feedrelay"):
        Store(path)


def test_readonly_store_reads_while_writer_has_it_open(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    writer = Store(path)
    with writer.transaction():
        writer.remember("Blog", items("a"))
    reader = Store(path, readonly=True)
    assert reader.known_keys("Blog", ["a"]) == {"a"}
    reader.close()
    writer.close()


def test_a_deliverer_is_made_even_when_slacks_pauses_cannot_be_read(tmp_path: Path) -> None:
    """A reload that changes channels stops the old deliverer before making the new one: reading the rate-limit
    pauses it restores must not fail it, or the channels would stay stopped."""
    from feedrelay.delivery.deliverer import Deliverer

    store = Store(str(tmp_path / "f.db"))
    outbox = Outbox(store)
    store.db.execute("ALTER TABLE outbox RENAME TO gone")  # any read of the outbox now fails
    deliverer = Deliverer(outbox, {}, {})
    assert deliverer.outbox is outbox
