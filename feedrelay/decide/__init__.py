"""Decisions, as pure functions of data: what is new in a poll, what passes each route."""
