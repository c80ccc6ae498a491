"""Exports generated from the field list and the catalogue."""
