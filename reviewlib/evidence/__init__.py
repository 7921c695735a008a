"""Evidence: what the included studies report, extracted and tabulated.

Extraction against the protocol's schema (:mod:`.extraction`) and the study and summary tables
(:mod:`.tables`, re-exported here so a notebook cell reads ``evidence.study_table(records)``).
"""
from .tables import *  # noqa: F401,F403  (the tables' public API, as listed in tables.__all__)
from .tables import __all__  # noqa: F401
