"""Hosts and URLs in canonical form, what a list entry is, and matching a
host and its parents against entries.  The first thing a request meets.
Imports nothing of the product."""
