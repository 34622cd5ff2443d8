"""Fetching and parsing: HTTP for feeds, bytes to items, HTML to plain text, item identity."""
