"""Saved searches and alerts that fire once per story (store.py, check.py)."""
