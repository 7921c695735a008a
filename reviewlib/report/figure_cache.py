"""Figures kept by content: a figure drawn from the same data by the same code is not drawn again.

Drawing is most of a large review's report time (a hundred-study forest or traffic-light plot is
thousands of text artists), and an unchanged rerun draws the same pixels.  A figure's key is the
SHA-256 of

* the code that draws it: the source of every module of ``reviewlib.report`` and
  ``reviewlib.evidence``, the versions of matplotlib, numpy, pandas, seaborn and Pillow, and matplotlib's current
  ``rcParams`` (a notebook that restyles matplotlib gets new figures);
* what it draws: its kind (``"forest"``, ``"evidence:<name>"``...) and every input, written out
  canonically by :func:`canonical` (DataFrames cell by cell, dataclasses field by field).

The files are kept as ``<cache>/figures/<key>.<format>`` with ``<key>.json`` (the alt text), each
written atomically (:mod:`reviewlib.atomic`), the JSON last: a key whose JSON is missing is not
served.  A key that differs in any input is a different file, so a cached figure is never shown for
other data.  :func:`show_cached` is the one call the report helpers make.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..atomic import atomic_path, files_digest, write_text

logger = logging.getLogger(__name__)

__all__ = ["canonical", "code_version", "figure_key", "cached_files", "keep", "show_cached", "Pending",
           "draw_ahead", "parallel_min_rows"]

#: Sub-folder of the review's cache holding the figures.
FOLDER = "figures"


def _feed(h: Any, obj: Any) -> None:
    """Write ``obj`` into the hash ``h``, tagged by type, so that different values give different bytes."""
    import numpy as np
    import pandas as pd

    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, float):
        h.update(f"f:{'nan' if math.isnan(obj) else repr(obj)};".encode())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, np.ndarray):
        h.update(f"nd:{obj.dtype}:{obj.shape};".encode())
        for value in obj.ravel().tolist():
            _feed(h, value)
    elif isinstance(obj, pd.DataFrame):
        h.update(f"df:{len(obj)}x{obj.shape[1]};".encode())
        _feed(h, [str(c) for c in obj.columns])
        _feed(h, [str(t) for t in obj.dtypes])
        _feed(h, list(obj.index))
        for column in obj.columns:
            _feed(h, obj[column].tolist())
    elif isinstance(obj, pd.Series):
        h.update(f"series:{obj.name!r}:{obj.dtype};".encode())
        _feed(h, list(obj.index))
        _feed(h, obj.tolist())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dc:{type(obj).__qualname__};".encode())
        for f in dataclasses.fields(obj):
            if not f.name.startswith("_"):            # private helpers (a refit closure) are not data
                h.update(f"{f.name}=".encode())
                _feed(h, getattr(obj, f.name))
    elif isinstance(obj, Mapping):
        h.update(f"map:{len(obj)};".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else list(obj)
        h.update(f"seq:{len(items)};".encode())
        for item in items:
            _feed(h, item)
    elif obj is pd.NA or obj is pd.NaT:
        h.update(f"{obj!r};".encode())
    elif isinstance(obj, (pd.Timestamp, Path)):
        h.update(f"{type(obj).__name__}:{obj!s};".encode())
    else:
        raise TypeError(f"figure_cache cannot key a {type(obj).__name__}: pass plain data")


def canonical(*data: Any) -> str:
    """SHA-256 of ``data`` written out canonically (no code version: see :func:`figure_key`)."""
    h = hashlib.sha256()
    for item in data:
        _feed(h, item)
    return h.hexdigest()


@lru_cache(maxsize=1)
def _source_digest() -> str:
    package = Path(__file__).resolve().parent.parent
    return files_digest((p for folder in ("report", "evidence") for p in sorted((package / folder).glob("*.py"))),
                        package)


def code_version() -> str:
    """What a figure's pixels depend on besides its data: reviewlib's drawing code, the libraries, rcParams."""
    import matplotlib
    import numpy
    import pandas

    params = sorted((k, repr(v)) for k, v in matplotlib.rcParams.items())
    return canonical(_source_digest(), matplotlib.__version__, numpy.__version__, pandas.__version__,
                     _versions(), params)


@lru_cache(maxsize=1)
def _versions() -> tuple[str, ...]:
    """seaborn (the synthesis plots' style) and Pillow (PNG and WebP encoding), without importing them."""
    from importlib import metadata

    out = []
    for dist in ("seaborn", "pillow"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist} absent")
    return tuple(out)


def figure_key(kind: str, *data: Any) -> str | None:
    """The cache key of a figure of ``kind`` drawn from ``data`` by the current code.

    None (draw it, keep nothing) when ``data`` holds something that cannot be written out
    canonically: a figure is never served for data its key did not cover.
    """
    try:
        return canonical(code_version(), kind, *data)
    except TypeError as exc:
        logger.info("figure %s is not cached: %s", kind, exc)
        return None


def _folder(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / FOLDER


def cached_files(cache_dir: str | Path | None, key: str, formats: Sequence[str]) -> dict[str, Any] | None:
    """``{"alt": str, fmt: Path, ...}`` of a complete cache entry of ``key``, or None."""
    if cache_dir is None:
        return None
    folder = _folder(cache_dir)
    meta = folder / f"{key}.json"
    files = {fmt: folder / f"{key}.{fmt}" for fmt in formats}
    if not meta.is_file() or not all(p.is_file() for p in files.values()):
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("key") != key or sorted(info.get("formats", [])) != sorted(formats):
        return None
    return {"alt": str(info.get("alt") or ""), **files}


def keep(cache_dir: str | Path | None, key: str, files: Mapping[str, Path], alt: str) -> None:
    """Copy a figure's files into the cache under ``key`` (the JSON last); a failure is only logged."""
    if cache_dir is None:
        return
    folder = _folder(cache_dir)
    try:
        for fmt, path in files.items():
            with atomic_path(folder / f"{key}.{fmt}", suffix=f".{fmt}.part") as tmp:
                shutil.copyfile(path, tmp)
        write_text(folder / f"{key}.json", json.dumps({"key": key, "formats": sorted(files), "alt": alt}))
    except OSError as exc:
        logger.warning("figure cache %s not written (%s); the figure is drawn again next run", folder, exc)


def _copy_out(files: Mapping[str, Any], folder: Path, name: str, formats: Iterable[str]) -> dict[str, Path]:
    out = {}
    for fmt in formats:
        final = folder / f"{name}.{fmt}"
        with atomic_path(final, suffix=f".{fmt}.part") as tmp:
            shutil.copyfile(files[fmt], tmp)
        out[fmt] = final
    return out


def show_cached(draw: Callable[[], Any], folder: str | Path, name: str, *, key: str | None,
                cache_dir: str | Path | None, save: Callable[[Any, Path, str], Mapping[str, Path]],
                formats: Sequence[str] = ("png", "svg"), alt: str | None = None) -> dict[str, Path]:
    """Write figure ``name``'s files into ``folder`` and show its PNG: from the cache when ``key`` is
    there, else ``draw()`` it, ``save(fig, folder, name)`` it and keep a copy under ``key``.

    Parameters
    ----------
    draw : callable
        Returns the matplotlib figure (called only on a cache miss).
    folder : path-like
        The run's figures folder.
    name : str
        The file stem.
    key : str or None
        :func:`figure_key` of the figure; None draws without the cache.
    cache_dir : path-like or None
        The review's cache folder (figures go in its ``figures/``); None draws without the cache.
    save : callable
        Writes the figure's ``formats`` into ``folder`` and returns ``{fmt: path}``.
    alt : str, optional
        Alt text; default the figure's title.

    Returns
    -------
    dict
        ``{fmt: path}`` of the files in ``folder``.
    """
    from .notebook import _close, _figure_alt

    folder = Path(folder)
    hit = cached_files(cache_dir, key, formats) if key is not None else None
    if hit is not None:
        logger.info("figure %s: unchanged data and code, cached copy %s", name, key[:12])
        folder.mkdir(parents=True, exist_ok=True)
        paths = _copy_out(hit, folder, name, formats)
        shown_alt = alt or hit["alt"]
    else:
        fig = draw()
        paths = dict(save(fig, folder, name))
        shown_alt = alt or _figure_alt(fig) or name.replace("_", " ")
        _close(fig)
        if key is not None:
            keep(cache_dir, key, {fmt: paths[fmt] for fmt in formats}, alt or _figure_alt(fig) or "")
    _show_embedded(cache_dir if key is not None else None, key, Path(paths["png"]).read_bytes(),
                   shown_alt or name.replace("_", " "), reuse=hit is not None)
    return paths


def _show_embedded(cache_dir: str | Path | None, key: str | None, png: bytes, alt: str, *, reuse: bool) -> None:
    """Show ``png`` as the page embeds it (lossless WebP, :func:`~reviewlib.report.notebook.embeddable_image`),
    the encoded bytes kept beside the figure's entry (``<key>.embed``: the mime type, a newline, the bytes),
    read back only with the cached PNG (``reuse``), encoded anew whenever the PNG was drawn."""
    import base64

    from IPython.display import HTML, display

    from .notebook import embeddable_image, snippet

    kept = _folder(cache_dir) / f"{key}.embed" if cache_dir is not None and key is not None else None
    mime = payload = None
    if reuse and kept is not None and kept.is_file():
        head, _, body = kept.read_bytes().partition(b"\n")
        if head in (b"image/webp", b"image/png") and body:
            mime, payload = head.decode(), body
    if payload is None:
        mime, payload = embeddable_image(png)
        if kept is not None:
            try:
                from ..atomic import write_bytes
                write_bytes(kept, mime.encode() + b"\n" + payload)
            except OSError as exc:
                logger.warning("figure cache %s not written (%s)", kept, exc)
    display(HTML(snippet("image", base64.b64encode(payload).decode("ascii"), alt, mime)))


# -- drawing ahead in a second process ---------------------------------------------------------
#: ``REVIEWLIB_FIGURE_PARALLEL_ROWS``: a batch of figures to draw is split with a forked second process
#: only when its figures draw at least this many rows in all (studies, trials, bars); smaller batches
#: (a review of a few dozen studies) are drawn in the one process, where a fork would cost more than it
#: saves.  The default protocol's demo is not small: its 152 included studies are the 10k and 100k
#: benchmarks' (forest plots 289 rows, traffic lights 156, evidence figures 4 x 152), drawn in two.
PARALLEL_ROWS_ENV = "REVIEWLIB_FIGURE_PARALLEL_ROWS"
DEFAULT_PARALLEL_ROWS = 150
#: The longest the notebook waits for the second process (s); past it the process is stopped and the
#: figures it had not finished are drawn in the notebook's own process, as without it.
CHILD_TIMEOUT_S = 600.0


def parallel_min_rows() -> int:
    """:data:`PARALLEL_ROWS_ENV` (default :data:`DEFAULT_PARALLEL_ROWS`); 0 or less turns the second process off."""
    raw = os.environ.get(PARALLEL_ROWS_ENV, "").strip()
    try:
        return int(raw) if raw else DEFAULT_PARALLEL_ROWS
    except ValueError:
        logger.warning("%s=%r is not a whole number: using %d", PARALLEL_ROWS_ENV, raw, DEFAULT_PARALLEL_ROWS)
        return DEFAULT_PARALLEL_ROWS


@dataclasses.dataclass
class Pending:
    """One figure :func:`draw_ahead` may draw: what :func:`show_cached` is later called with.

    ``rows``: how much drawing it is (studies, trials, bars), to share the work and decide whether a
    second process pays.
    """
    name: str
    key: str | None
    draw: Callable[[], Any]
    save: Callable[[Any, Path, str], Mapping[str, Path]]
    formats: Sequence[str] = ("png", "svg")
    alt: str | None = None
    rows: int = 1


def _draw_into_cache(job: Pending, cache_dir: str | Path) -> None:
    """Draw ``job``, keep its files under its key and its page embedding beside them (as
    :func:`show_cached` does on a miss), so that :func:`show_cached` then copies them out."""
    from ..atomic import write_bytes
    from .notebook import _close, _figure_alt, embeddable_image

    folder = _folder(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fig = job.draw()
    with tempfile.TemporaryDirectory(prefix=".ahead-", dir=folder) as tmp:
        paths = dict(job.save(fig, Path(tmp), job.name))
        alt = job.alt or _figure_alt(fig) or ""
        _close(fig)
        keep(cache_dir, job.key, {fmt: paths[fmt] for fmt in job.formats}, alt)
        mime, payload = embeddable_image(Path(paths["png"]).read_bytes())
    write_bytes(folder / f"{job.key}.embed", mime.encode() + b"\n" + payload)


def _share(jobs: Sequence[Pending]) -> tuple[list[Pending], list[Pending]]:
    """Two shares of about equal rows (largest first, each to the lighter share), in the jobs' order."""
    shares: tuple[list[int], list[int]] = ([], [])
    weight = [0, 0]
    for i in sorted(range(len(jobs)), key=lambda i: -jobs[i].rows):
        side = 0 if weight[0] <= weight[1] else 1
        shares[side].append(i)
        weight[side] += jobs[i].rows
    return [jobs[i] for i in sorted(shares[0])], [jobs[i] for i in sorted(shares[1])]


def draw_ahead(jobs: Sequence[Pending], cache_dir: str | Path | None) -> int:
    """Draw the cache's missing figures of ``jobs`` into it, half of them in a forked second process.

    The notebook then shows each with :func:`show_cached`, which finds it kept: the same files and
    pixels as drawing them one by one (the child runs the same code on a copy of the same process).
    Nothing is done (each figure is drawn when shown) without a cache, without ``os.fork``, with
    fewer than two figures to draw, or with fewer than :func:`parallel_min_rows` rows in all.  A
    child that fails or outlives :data:`CHILD_TIMEOUT_S` costs nothing but time: what it did not
    keep is drawn when shown.

    Returns
    -------
    int
        How many figures the second process was given (0: none was started).
    """
    if cache_dir is None or not hasattr(os, "fork"):
        return 0
    misses = [j for j in jobs if j.key is not None and cached_files(cache_dir, j.key, j.formats) is None]
    threshold = parallel_min_rows()
    if threshold <= 0 or len(misses) < 2 or sum(j.rows for j in misses) < threshold:
        return 0
    mine, theirs = _share(misses)
    _folder(cache_dir).mkdir(parents=True, exist_ok=True)
    pid = os.fork()
    if pid == 0:                                     # the second process: draw, keep, leave at once
        code = 1
        try:
            import sys
            import warnings
            sys.stdout = sys.stderr = open(os.devnull, "w")   # never the kernel's streams
            logging.disable(logging.CRITICAL)
            warnings.simplefilter("ignore")
            for job in theirs:
                _draw_into_cache(job, cache_dir)
            code = 0
        finally:
            os._exit(code)
    try:
        for job in mine:
            _draw_into_cache(job, cache_dir)
    finally:
        _wait(pid)
    logger.info("figures: %d drawn here, %d in a second process", len(mine), len(theirs))
    return len(theirs)


def _wait(pid: int) -> None:
    """Reap the second process, stopping it after :data:`CHILD_TIMEOUT_S`."""
    import signal

    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if status:
                logger.warning("figures: the second process failed (status %d); its figures are drawn here", status)
            return
        if time.monotonic() > deadline:
            logger.warning("figures: the second process took over %.0f s and was stopped", CHILD_TIMEOUT_S)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.02)
