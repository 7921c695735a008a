"""One exception family for reviewlib.

Every error a user can cause or meet derives from :class:`ReviewlibError`.  Its
message is one line that says what was wrong, with which input, and what to do
next; the CLI prints exactly that line (and a traceback only with ``--debug``).
Errors carry data, as papermill's do, so callers can act on them.
"""
from __future__ import annotations


class ReviewlibError(Exception):
    """Base class of every error raised on purpose by reviewlib."""

    exit_code = 1


class ConfigError(ReviewlibError):
    """A setting (environment variable, option) is missing or malformed."""

    exit_code = 2


class InputError(ReviewlibError):
    """A file or value given by the user cannot be used.

    Parameters
    ----------
    message : str
        One line: what was wrong, with which input, what to do.
    source : str, optional
        The file or value that was wrong.
    """

    exit_code = 2

    def __init__(self, message: str, source: str | None = None):
        super().__init__(message)
        self.source = source


class ProtocolError(InputError):
    """A review protocol (YAML) is missing, malformed or inconsistent."""


class EutilsError(ReviewlibError):
    """NCBI's E-utilities failed in a way that retries did not cure.

    Parameters
    ----------
    message : str
        One line for the user.
    url : str, optional
        The endpoint that failed (never with the API key in it).
    status : int, optional
        The HTTP status of the last attempt, if any.
    body : str, optional
        The start of the last response body, for diagnosis.
    """

    def __init__(self, message: str, url: str | None = None,
                 status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


class CtgovError(ReviewlibError):
    """ClinicalTrials.gov refused a request, or kept failing in a way retries did not cure.

    Parameters
    ----------
    message : str
        One line for the user: the API's own message (400/404) and what to do.
    url : str, optional
        The request that failed.
    status : int, optional
        The HTTP status of the last attempt, if any.
    body : str, optional
        The start of the last response body (the API's plain-text message for 400/404).
    retry_at : str, optional
        When the server said to come back (a ``Retry-After`` above the cap), e.g. ``"14:05 UTC"``.
    """

    def __init__(self, message: str, url: str | None = None, status: int | None = None,
                 body: str | None = None, retry_at: str | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body
        self.retry_at = retry_at


class HistoryExpiredError(EutilsError):
    """The WebEnv on NCBI's history server expired ("Cannot retrieve history data")."""


class StoreError(ReviewlibError):
    """The review store (SQLite) cannot be opened or is inconsistent."""


class PipelineError(ReviewlibError):
    """A notebook of a review run failed.

    Parameters
    ----------
    message : str
        One line for the user.
    notebook : str, optional
        The notebook that failed.
    cell : int, optional
        The index of the failing cell.
    ename, evalue : str, optional
        The exception name and value raised in the notebook.
    """

    def __init__(self, message: str, notebook: str | None = None, cell: int | None = None,
                 ename: str | None = None, evalue: str | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
