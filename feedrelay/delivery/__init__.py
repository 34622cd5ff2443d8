"""Delivery: the outbox (SQLite), the deliverer that drains it per channel, and the sinks that post."""
