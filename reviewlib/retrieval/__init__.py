"""Retrieval: ask the bibliographic databases and registers for a review's records.

E-utilities client, the politeness rate limiter shared by a user's processes, and the resumable fetch
that caches every batch atomically before it is parsed; the ClinicalTrials.gov API v2 client
(:mod:`.ctgov`) and its resumable registry fetch (:mod:`.registry`); the retry plumbing both clients
share (:mod:`.http`).
"""
