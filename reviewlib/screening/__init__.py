"""Screening: from the records found to the records included.

Deduplication, the protocol's eligibility rules, reviewers' append-only decisions and their agreement,
the interactive screener, prioritisation and simulated screening.
"""
