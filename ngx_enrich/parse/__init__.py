"""Parsers: one text line or record in, a dict of named fields out (or None)."""
