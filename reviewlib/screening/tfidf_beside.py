"""The prioritiser's TF-IDF fitted in a process of its own, beside the notebook that asked for it (issue 15).

In a static run (``reviewlib run``) notebook 02 fits the prioritiser's TF-IDF only to keep it in the
review's cache, where a reviewer's first screener opening reads it instead of fitting (18 s at
100,000 records).  Nothing on the page waits for it, so :func:`start` hands the records' titles and
abstracts to a fresh Python process (``python -m reviewlib.screening.tfidf_beside``, fed through its
standard input) and returns at once; the notebook's next cells (rules, decisions, figures) run on
one core while the fit runs on the other, and the notebook's last cell waits for it
(:meth:`Preparation.wait`), so the cache holds the matrix when the run is complete.

The process writes the cache as :func:`reviewlib.screening.prioritise.prepare_tfidf` does (the same
file, atomically); what it fits is what an in-process fit would give, byte for byte.  It is only
a warmer of a cache: if it fails or takes too long, :meth:`~Preparation.wait` says so in a
warning and the screener fits on its first opening, as without it.

Below :data:`BESIDE_MIN_RECORDS` records (the demo's 418, say) the fit runs in this process: a
second Python costs more than the fit.
"""
from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Sequence

logger = logging.getLogger(__name__)

#: Fewer records than this are fitted in the notebook's own process (a new process costs ~1.5 s).
BESIDE_MIN_RECORDS = 5000
#: Records sent per pickled chunk (bounds the notebook's transient copy while it sends).
CHUNK_RECORDS = 4096
#: The process's niceness: it yields a core to the notebook's own work (the run's critical path) when both want it.
BESIDE_NICE = 10
#: The longest :meth:`Preparation.wait` waits by default before it stops the process (seconds).
WAIT_SECONDS = 900.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]   # the folder holding reviewlib/


class Preparation:
    """A TF-IDF fit under way (or done): :meth:`wait` for it.

    ``beside`` tells whether it runs in a process of its own.
    """

    def __init__(self, process: subprocess.Popen | None = None, errors: IO[bytes] | None = None,
                 done: bool | None = None, path: Path | None = None):
        self._process, self._errors = process, errors
        self._done, self.path = done, path
        self.beside = process is not None

    def wait(self, timeout: float | None = WAIT_SECONDS) -> bool:
        """Wait until the fit is done; returns whether the review's cache now holds the matrix.

        A process still running after ``timeout`` seconds is stopped, with a warning (the screener
        then fits on its first opening).  Waiting again returns the same answer.
        """
        if self._done is not None:
            return self._done
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            logger.warning("prioritiser: the TF-IDF fit beside the notebook took over %.0f s and was stopped; "
                           "the screener fits it on its first opening", timeout)
            self._done = False
        else:
            stdout = self._process.stdout.read().decode("utf-8", "replace") if self._process.stdout else ""
            self._process.stdout and self._process.stdout.close()
            if code == 0 and stdout.strip():
                self.path = Path(stdout.strip().splitlines()[-1])
                self._done = self.path.is_file()   # a cache that could not be written was only logged
            else:
                self._done = False
                logger.warning("prioritiser: the TF-IDF fit beside the notebook failed (exit %s: %s); the screener "
                               "fits it on its first opening", code, self._last_error() or "no message")
        self._errors and self._errors.close()
        return self._done

    def _last_error(self) -> str:
        if self._errors is None:
            return ""
        self._errors.seek(0)
        lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""


def start(titles: Sequence[str], abstracts: Sequence[str], cache_dir: str | os.PathLike,
          features: str = "word", *, min_records: int | None = None,
          python: str | None = None) -> Preparation:
    """Fit the prioritiser's TF-IDF of these records (their titles and abstracts, strings) into
    ``cache_dir``: in a process of its own from ``min_records`` records (default
    :data:`BESIDE_MIN_RECORDS`), else here and now.

    Returns
    -------
    Preparation
        ``wait()`` on it before relying on the cache (the notebook's last cell does).
    """
    from .prioritise import prepare_tfidf_texts
    titles, abstracts = list(titles), list(abstracts)
    if len(titles) < (BESIDE_MIN_RECORDS if min_records is None else min_records):
        path = prepare_tfidf_texts(titles, abstracts, cache_dir, features)
        return Preparation(done=path.is_file(), path=path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    errors = tempfile.TemporaryFile()
    process = subprocess.Popen([python or sys.executable, "-m", __name__, str(cache_dir), features],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env)
    try:
        with process.stdin as pipe:
            for at in range(0, len(titles), CHUNK_RECORDS):
                pickle.dump((titles[at:at + CHUNK_RECORDS], abstracts[at:at + CHUNK_RECORDS]), pipe,
                            protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(None, pipe)
    except (BrokenPipeError, OSError):   # the process died before reading everything: wait() says why
        pass
    logger.info("prioritiser: TF-IDF of %d records fitting beside the notebook (process %d)", len(titles),
                process.pid)
    return Preparation(process, errors)


def _read_texts(stream: IO[bytes]) -> tuple[list[str], list[str]]:
    titles: list[str] = []
    abstracts: list[str] = []
    while (chunk := pickle.load(stream)) is not None:
        titles.extend(chunk[0])
        abstracts.extend(chunk[1])
    return titles, abstracts


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reviewlib.screening.tfidf_beside CACHE_DIR [FEATURES]``: the texts come on standard
    input (from :func:`start`); the cache file's path goes to standard output."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or len(argv) > 2:
        print("usage: python -m reviewlib.screening.tfidf_beside CACHE_DIR [FEATURES] < pickled texts",
              file=sys.stderr)
        return 2
    try:
        os.nice(BESIDE_NICE)
    except OSError:   # pragma: no cover - not allowed here: it runs at the notebook's priority
        pass
    try:
        titles, abstracts = _read_texts(sys.stdin.buffer)
    except (EOFError, pickle.UnpicklingError, TypeError, IndexError) as exc:
        print(f"tfidf_beside: the texts on standard input were cut short or not {__name__}'s ({exc}): "
              "start the process with reviewlib.screening.tfidf_beside.start", file=sys.stderr)
        return 1
    from ..errors import ReviewlibError
    from .prioritise import prepare_tfidf_texts
    try:
        path = prepare_tfidf_texts(titles, abstracts, argv[0], argv[1] if len(argv) > 1 else "word")
    except (ReviewlibError, ValueError, OSError) as exc:
        print(f"tfidf_beside: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


__all__ = ["BESIDE_MIN_RECORDS", "Preparation", "start"]

if __name__ == "__main__":
    sys.exit(main())
