"""A run's notebook pages rendered while the notebooks after them run (issue 15).

``reviewlib run`` renders each executed notebook to HTML once every notebook is done (1.9 s for a
100,000-record review's five pages, all on the critical path).  Everything a page shows but one is
known as soon as its notebook has run: the notice, the navigation, the title; only the
living-review warning (:meth:`reviewlib.report.living.Changes.warning`) waits for the run's record
sets.  :class:`PagesAhead` renders each page in a thread of the run's process while the kernel runs
the next notebook, without a warning, and keeps the HTML in memory; publishing writes it when the
page would be the same (same notebook file, same arguments, no warning), else renders it anew.
Nothing is written before the run publishes: a failed run has no page that looks complete.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .pages import notebook_page, render_notebook, write_text

logger = logging.getLogger(__name__)


def _stamp(notebook: Path) -> tuple[int, int]:
    stat = notebook.stat()
    return stat.st_mtime_ns, stat.st_size


class PagesAhead:
    """Pages rendered in a background thread as their notebooks finish; :meth:`write` them at publishing."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reviewlib-pages")
        self._ahead: dict[Path, tuple[tuple, dict[str, Any], Future]] = {}

    def submit(self, notebook: str | Path, html_path: str | Path, **options: Any) -> None:
        """Start rendering ``notebook``'s page (``options``: :func:`render_notebook`'s, without ``warning``)."""
        notebook, html_path = Path(notebook), Path(html_path)
        try:
            stamp = _stamp(notebook)
        except OSError:
            return
        future = self._pool.submit(notebook_page, notebook, html_path.name, **options)
        self._ahead[html_path] = (stamp, dict(options), future)

    def write(self, notebook: str | Path, html_path: str | Path, *, warning: str | None = None,
              **options: Any) -> Path:
        """Write the page as :func:`render_notebook` would: the HTML rendered ahead when it is that page,
        else rendered now (an error rendering ahead is the error of rendering now)."""
        notebook, html_path = Path(notebook), Path(html_path)
        ahead = self._ahead.pop(html_path, None)
        if ahead is not None and warning is None and ahead[1] == options:
            stamp, _, future = ahead
            try:
                body = future.result()
                if _stamp(notebook) == stamp:
                    write_text(html_path, body)
                    return html_path
            except Exception as exc:  # rendered again below, where the error is raised for real
                logger.debug("page %s rendered ahead failed: %s", html_path.name, exc)
        return render_notebook(notebook, html_path, warning=warning, **options)

    def close(self) -> None:
        """Stop: pages not yet rendered are dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()


__all__ = ["PagesAhead"]
