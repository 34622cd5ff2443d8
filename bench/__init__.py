"""Reproducible performance figures for feedrelay: ``uv run python -m bench`` (see bench/README.md)."""
