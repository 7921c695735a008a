"""Report: what a reader of the review sees.

PRISMA counts (:mod:`.prisma`), figures (:mod:`.figures`), the living-review comparison between runs
(:mod:`.living`), the notebook display helpers and HTML pages (:mod:`.notebook`, re-exported here so a
cell reads ``report.show_table(frame)``).
"""
from .notebook import *  # noqa: F401,F403  (the notebook helpers, as listed in notebook.__all__)
from .notebook import __all__  # noqa: F401
