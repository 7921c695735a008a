"""A local stand-in for the ClinicalTrials.gov API v2 (``/api/v2/studies`` and ``/studies/{nctId}``) for tests.

It serves real study JSON (tests/data/ctgov/, recorded API responses; see
tests/data/README.md) over HTTP on 127.0.0.1 (random port) from a
:class:`http.server.ThreadingHTTPServer` in a thread, and behaves like the API
where reviewlib depends on it (tests/data/ctgov/ and the API notes in
shared/data/registry/ctgov-api-v2/API_NOTES.md):

* ``/studies`` with ``query.term``, ``query.cond``, ``query.intr``,
  ``filter.overallStatus`` (``|`` or ``,`` separated), ``filter.advanced``
  (``AREA[Name]`` checked against a list of real area names), ``countTotal``,
  ``pageSize`` (default 10, 0 means default, silently capped at 1,000) and
  ``pageToken`` / ``nextPageToken`` (opaque; the last page has none);
  ``totalCount`` only on the first page and only with ``countTotal=true``;
* ``/studies/{nctId}``: the recorded body byte for byte when there is one;
* plain-text (``text/plain; charset=UTF-8``) 400/404 bodies with the API's
  messages (tests/data/ctgov/errors/): unknown parameter, a bad status value,
  an unknown AREA name, a malformed NCT id, an NCT id not found;
* faults on demand from a queue (:meth:`CtgovServer.add_fault`): 429 with
  ``Retry-After``, 500/502/503, a body cut short of its Content-Length
  (``truncated``), a 200 of HTML (``non-json``), a dropped connection
  (``disconnect``), or a request held until released (``hold``; never
  released it is a server that never answers);
* a log of every request with its arrival time, so tests check the rate.

Query matching is deliberately simple (not Essie): a study matches when every
word of every ``query.*`` parameter occurs in its JSON text (``ALL`` matches
everything); ``filter.advanced`` is checked for area names only.  A page token
that the stand-in did not issue gets a 400 (the real API's answer to that is
not recorded).  :func:`renumbered` makes a bigger corpus: copies of the real
studies with new NCT ids, e.g. 2,500 of :func:`small_studies` to span three full pages.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from stand_in_http import StandInServer

DATA = Path(__file__).resolve().parent / "data" / "ctgov"
ERRORS = DATA / "errors"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10
STATUSES = {"ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING", "RECRUITING",
            "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
            "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN"}
#: Parameters of /studies in the OpenAPI file v2.0.5.
KNOWN_PARAMS = {"format", "markupFormat", "query.cond", "query.term", "query.locn", "query.titles", "query.intr",
                "query.outc", "query.spons", "query.lead", "query.id", "query.patient", "filter.overallStatus",
                "filter.geo", "filter.ids", "filter.advanced", "filter.synonyms", "postFilter.overallStatus",
                "postFilter.geo", "postFilter.ids", "postFilter.advanced", "postFilter.synonyms", "aggFilters",
                "geoDecay", "fields", "sort", "countTotal", "pageSize", "pageToken"}
#: A few real search areas (clinicaltrials.gov/data-api/about-api/search-areas).
AREAS = {"NCTId", "BriefTitle", "OfficialTitle", "Condition", "InterventionName", "InterventionType", "Phase",
         "StudyType", "OverallStatus", "StartDate", "LastUpdatePostDate", "EnrollmentCount", "MinimumAge",
         "MaximumAge", "LeadSponsorName", "EligibilityCriteria", "HasResults", "ResultsFirstPostDate",
         "LocationCountry", "DesignAllocation", "DesignMasking", "StdAge", "Keyword"}
NCT_PATTERN = re.compile(r"^[Nn][Cc][Tt]0*[1-9]\d{0,7}$")


def error_body(name: str) -> str:
    """The recorded text of an API error body (tests/data/ctgov/errors/<name>.txt)."""
    return (ERRORS / f"{name}.txt").read_text(encoding="utf-8")


def nct_of(study: dict) -> str:
    return study["protocolSection"]["identificationModule"]["nctId"]


def load_studies(folder: Path = DATA) -> tuple[list[dict], dict[str, bytes]]:
    """The real studies of every JSON file in ``folder`` (unique by NCT id) and the recorded
    single-study bodies (``study_*.json``, by NCT id)."""
    seen: dict[str, dict] = {}
    bodies: dict[str, bytes] = {}
    for path in sorted(Path(folder).glob("*.json")):
        raw = path.read_bytes()
        data = json.loads(raw)
        studies = data["studies"] if isinstance(data, dict) and "studies" in data else [data]
        for s in studies:
            seen.setdefault(nct_of(s), s)
        if path.name.startswith("study_") and len(studies) == 1:
            bodies[nct_of(studies[0])] = raw
    return list(seen.values()), bodies


def small_studies(max_chars: int = 20_000) -> list[dict]:
    """The real studies whose JSON is under ``max_chars`` (templates for a big corpus that stays quick to page)."""
    return [s for s in load_studies()[0] if len(json.dumps(s)) < max_chars]


def renumbered(templates: list[dict], n: int, first: int = 90_000_001) -> list[dict]:
    """``n`` copies of the real studies with new NCT ids (NCT90000001, ...) in identificationModule."""
    out = []
    for i in range(n):
        study = copy.deepcopy(templates[i % len(templates)])
        study["protocolSection"]["identificationModule"]["nctId"] = f"NCT{first + i:08d}"
        out.append(study)
    return out


@dataclass
class Fault:
    """One fault: ``kind`` in rate-limit, status, truncated, non-json, disconnect, hold.

    ``when`` (a predicate on the request's params, which include ``_path``)
    chooses which request it hits; the first matching fault is used once.
    """

    kind: str
    status: int = 500
    retry_after: str | None = "1"
    when: Callable[[dict], bool] | None = None
    release: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


class CtgovServer(StandInServer):
    """The stand-in server; use as a context manager or call :meth:`start`/:meth:`stop`.

    Parameters
    ----------
    studies : list of dict, optional
        The corpus (default: the real studies of tests/data/ctgov/).
    """

    url_path = "/api/v2/"

    def __init__(self, studies: list[dict] | None = None):
        super().__init__()
        real, bodies = load_studies()
        self.studies = studies if studies is not None else real
        self.bodies = bodies if studies is None else {}
        self.by_nct = {nct_of(s): s for s in self.studies}
        #: Called with each request's params before it is answered (e.g. to change the corpus mid-search).
        self.on_request: Callable[[dict], None] | None = None

    def add_fault(self, kind: str, **kwargs) -> Fault:
        """Queue a fault (see :class:`Fault`) and return it (``hold`` faults: set ``.release``)."""
        return self._queue(Fault(kind, **kwargs))

    # -- inspection -------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[dict]:
        """Logged requests (optionally only those to ``path``, e.g. 'studies'), oldest first."""
        with self._lock:
            return [r for r in self.log if path is None or r["path"] == path]

    def _take_fault(self, params: dict) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.when is None or f.when(params):
                    self.faults.remove(f)
                    return f
        return None

    # -- behaviour ----------------------------------------------------------------
    @staticmethod
    def token_for(offset: int) -> str:
        return base64.urlsafe_b64encode(f"reviewlib-stand-in:{offset}".encode()).decode().rstrip("=")

    @staticmethod
    def offset_of(token: str) -> int | None:
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        prefix, _, offset = text.partition(":")
        return int(offset) if prefix == "reviewlib-stand-in" and offset.isdigit() else None

    def _matches(self, study: dict, params: dict) -> bool:
        text = None
        for key in ("query.term", "query.cond", "query.intr"):
            value = params.get(key)
            if not value or value.strip() == "ALL":
                continue
            text = text if text is not None else json.dumps(study).lower()
            words = [w for w in re.findall(r"[\w-]+", value.lower()) if w not in ("and", "or", "not")]
            if not all(w in text for w in words):
                return False
        statuses = params.get("filter.overallStatus")
        if statuses:
            wanted = {s for s in re.split(r"[|,]", statuses) if s}
            if study["protocolSection"].get("statusModule", {}).get("overallStatus") not in wanted:
                return False
        return True

    def search(self, params: dict) -> tuple[int, bytes, str]:
        for key in params:
            if key not in KNOWN_PARAMS:
                return 400, f"`{key}` is unknown parameter".encode(), "text/plain; charset=UTF-8"
        statuses = params.get("filter.overallStatus")
        if statuses:
            for s in re.split(r"[|,]", statuses):
                if s and s not in STATUSES:
                    return (400, f"Invalid value in parameter `overallStatus`: `{s}`".encode(),
                            "text/plain; charset=UTF-8")
        for area in re.findall(r"AREA\[([^\]:]*)", params.get("filter.advanced", "")):
            if area not in AREAS:
                return (400, f"Error parsing query in advanced filter: Unknown area name: '{area}'".encode(),
                        "text/plain; charset=UTF-8")
        size = int(params.get("pageSize") or 0) or DEFAULT_PAGE_SIZE
        size = min(size, MAX_PAGE_SIZE)
        token = params.get("pageToken")
        offset = 0
        if token:
            offset = self.offset_of(token)
            if offset is None:
                return 400, b"Parameter `pageToken` has incorrect format", "text/plain; charset=UTF-8"
        found = [s for s in self.studies if self._matches(s, params)]
        page: dict = {"studies": found[offset:offset + size]}
        if not token and params.get("countTotal") == "true":
            page["totalCount"] = len(found)
        if offset + size < len(found):
            page["nextPageToken"] = self.token_for(offset + size)
        return 200, json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode(), "application/json"

    def study(self, nct: str) -> tuple[int, bytes, str]:
        if not NCT_PATTERN.match(nct):
            return 400, error_body("400_studies_malformed_nctId").encode(), "text/plain; charset=UTF-8"
        nct = "NCT" + nct[3:].zfill(8)
        if nct in self.bodies:
            return 200, self.bodies[nct], "application/json"
        if nct in self.by_nct:
            return 200, json.dumps(self.by_nct[nct], separators=(",", ":")).encode(), "application/json"
        return 404, f"NCT number {nct} not found".encode(), "text/plain; charset=UTF-8"


class _Handler(BaseHTTPRequestHandler):
    stand_in: CtgovServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server = self.stand_in
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        path = split.path
        rel = path.split("/api/v2/", 1)[-1] if "/api/v2/" in path else path.lstrip("/")
        kind = "studies" if rel == "studies" else "study" if rel.startswith("studies/") else rel
        entry = {"time": time.monotonic(), "wall": time.time(), "path": kind, "params": params, "rel": rel}
        with server._lock:
            server.log.append(entry)
        if server.on_request is not None:
            server.on_request({**params, "_path": kind})
        fault = server._take_fault({**params, "_path": kind})
        entry["fault"] = fault.kind if fault else None
        if fault and fault.kind == "hold":
            fault.reached.set()
            fault.release.wait(120)
        if fault and fault.kind == "disconnect":
            self.close_connection = True
            return
        if fault and fault.kind == "rate-limit":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._send(429, b"Too Many Requests", "text/plain; charset=UTF-8", headers)
        if fault and fault.kind == "status":
            return self._send(fault.status, f"<html><body><h1>{fault.status}</h1></body></html>".encode(),
                              "text/html")
        if fault and fault.kind == "non-json":
            return self._send(200, b"<html><body>upstream connect error or disconnect/reset</body></html>",
                              "text/html")
        if kind == "studies":
            status, body, ctype = server.search(params)
        elif kind == "study":
            status, body, ctype = server.study(rel.split("/", 1)[1])
        else:
            status, body, ctype = 404, b"Not Found", "text/plain; charset=UTF-8"
        entry["status"] = status
        if fault and fault.kind == "truncated":     # the headers promise the whole body; half of it comes
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, body, ctype)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


CtgovServer.handler = _Handler


def main() -> None:  # pragma: no cover - manual use: python tests/ctgov_server.py
    with CtgovServer() as server:
        print(f"stand-in ClinicalTrials.gov API at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
