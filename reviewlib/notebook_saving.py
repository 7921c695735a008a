"""JupyterLab saves the project's tracked notebooks without outputs, so git stays clean.

Opening ``notebooks/02-screen.ipynb`` in JupyterLab and running it fills it with outputs, widget
state and the kernel's version; JupyterLab then saves all of that into the file (autosave does so
every two minutes), and ``git status`` shows the notebook modified though nobody edited it.

:func:`strip_tracked_outputs` is a Jupyter server *pre-save hook*: before a notebook that git
tracks is written, it drops what running it added (outputs, execution counts, widget state, the
kernel's ``language_info`` beyond its name, and the kernel's own ``kernelspec`` and
``language_info`` when the file names the same kernel), so the saved file is the tracked one unless its cells
were edited.  The browser keeps showing the outputs.  A notebook git does not track (a copy, a
notebook of your own) is saved as it is, outputs included.

It is switched on by ``notebooks/jupyter-config/jupyter_server_config.json``, which ``make run``
(and ``make lab``) copies into the virtual environment's Jupyter config; elsewhere start JupyterLab
with ``JUPYTER_CONFIG_PATH=notebooks/jupyter-config jupyter lab``.
"""
from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any, Mapping, MutableMapping

logger = logging.getLogger(__name__)

__all__ = ["strip_tracked_outputs", "strip_outputs", "is_tracked"]

#: Cell metadata that running or viewing a notebook adds (not what an author sets).
RUNTIME_CELL_METADATA = ("execution", "scrolled", "collapsed", "ExecuteTime")
#: Notebook metadata that running a notebook adds.
RUNTIME_NOTEBOOK_METADATA = ("widgets", "papermill")


def is_tracked(path: str | Path) -> bool:
    """True when ``path`` is a file git tracks (False outside a git checkout or without git).

    Parameters
    ----------
    path : str or path-like
        A file on disk.
    """
    path = Path(path)
    try:
        done = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path.name], cwd=path.parent,
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def strip_outputs(notebook: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Remove, in place, what running ``notebook`` added: outputs, execution counts, widget state.

    Parameters
    ----------
    notebook : dict
        A notebook (nbformat 4) as a dict or ``NotebookNode``.

    Returns
    -------
    dict
        The same notebook.
    """
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        meta = cell.get("metadata")
        if isinstance(meta, MutableMapping):
            for key in RUNTIME_CELL_METADATA:
                meta.pop(key, None)
    meta = notebook.get("metadata")
    if isinstance(meta, MutableMapping):
        for key in RUNTIME_NOTEBOOK_METADATA:
            meta.pop(key, None)
        info = meta.get("language_info")
        if isinstance(info, Mapping) and "name" in info:
            meta["language_info"] = {"name": info["name"]}
    return notebook


def strip_tracked_outputs(model: MutableMapping[str, Any], path: str, contents_manager: Any = None,
                          **kwargs: Any) -> None:
    """Jupyter server pre-save hook: save a git-tracked notebook without its outputs.

    Parameters
    ----------
    model : dict
        The contents model being saved (``type``, ``content``).
    path : str
        Its API path (relative to the server's root).
    contents_manager : jupyter_server FileContentsManager, optional
        Gives the file's path on disk; without one, ``path`` is taken as a path on disk.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), MutableMapping):
        return
    os_path = contents_manager._get_os_path(path) if hasattr(contents_manager, "_get_os_path") else path
    if not is_tracked(os_path):
        return
    strip_outputs(model["content"])
    _keep_saved_kernel_metadata(model["content"], Path(os_path))
    logger.info("saved %s without outputs (git tracks it)", path)


def _keep_saved_kernel_metadata(notebook: MutableMapping[str, Any], os_path: Path) -> None:
    """Keep the file's ``kernelspec`` and ``language_info`` when the kernel is the same one.

    JupyterLab rewrites them from the running kernel (``display_name`` 'Python 3' becomes
    'Python 3 (ipykernel)', say): a change nobody made.
    """
    try:
        saved = json.loads(os_path.read_text(encoding="utf-8")).get("metadata") or {}
    except (OSError, ValueError, AttributeError):
        return
    meta = notebook.get("metadata")
    if not isinstance(meta, MutableMapping):
        return
    for key in ("kernelspec", "language_info"):
        old, new = saved.get(key), meta.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping) and old.get("name") == new.get("name"):
            meta[key] = dict(old)
