"""Build the default review's offline registry snapshot: the 315 real trials as ClinicalTrials.gov API v2 JSON.

Input: ``shared/data/registry/car-t-autoimmune-2026-08-22/trials.csv``, the registered
trials of the default question (CAR-T and related engineered cell therapies in
autoimmune disease) as ClinicalTrials.gov listed them on 2026-08-22.  Source:
the daily frozen snapshot ``snapshots/2026-08-22/trials.csv`` of
ptjeong/Rheumatology-CAR-T-Trials-Monitor- (MIT licence); the content is
ClinicalTrials.gov's (US National Library of Medicine, public domain).  One row
per trial, the registry's own fields with API v2 names, lists joined with ``|``.

Output: ``reviewlib/data/car-t-autoimmune-registry-2026-08-22.json.gz``, a JSON
list holding one API v2 ``/studies`` page (``{"studies": [...], "totalCount": 315}``,
what a search with ``pageSize=1000`` would return), so that the offline run
reads it through the same reader as an online one
(:func:`reviewlib.sources.ctgov.read_ctgov`).

Each CSV column goes to its API v2 field; **a field the CSV lacks stays absent**
(never invented):

=================== ==========================================================
NCTId               identificationModule.nctId
BriefTitle          identificationModule.briefTitle
OverallStatus       statusModule.overallStatus
Phase               designModule.phases (``|`` split; "Unknown" -> absent)
Conditions          conditionsModule.conditions
Interventions       armsInterventionsModule.interventions[].name (no type: the CSV has none)
StartDate           statusModule.startDateStruct.date (no actual/estimated type)
LastUpdatePostDate  statusModule.lastUpdatePostDateStruct.date
EnrollmentCount     designModule.enrollmentInfo.count
EnrollmentType      designModule.enrollmentInfo.type
Countries           contactsLocationsModule.locations[].country (one location per
                    country: facilities and cities are not in the CSV)
BriefSummary        descriptionModule.briefSummary
LeadSponsor(Class)  sponsorCollaboratorsModule.leadSponsor.name / .class
MinAge, MaxAge      eligibilityModule.minimumAge / maximumAge
StdAges             eligibilityModule.stdAges
PrimaryEndpoints    outcomesModule.primaryOutcomes[].measure
=================== ==========================================================

Absent for every trial (not in the CSV): official title, study type, allocation,
intervention model, masking, arms, intervention types, secondary outcomes,
detailed description, eligibility criteria, sex, completion dates, first posted
date, collaborators, references, ``hasResults``.

The output is byte-for-byte reproducible (compact JSON, gzip with mtime 0)::

    python -m reviewlib.sources.ctgov_snapshot \\
        --csv ../shared/data/registry/car-t-autoimmune-2026-08-22/trials.csv \\
        --out reviewlib/data/car-t-autoimmune-registry-2026-08-22.json.gz
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_bytes
from ..errors import InputError, ReviewlibError

logger = logging.getLogger(__name__)

#: Where the snapshot ships in the package.
SNAPSHOT = Path(__file__).resolve().parent.parent / "data" / "car-t-autoimmune-registry-2026-08-22.json.gz"
#: The shared data file it is built from (relative to the repository's parent folder).
DEFAULT_CSV = (Path(__file__).resolve().parents[3] / "shared" / "data" / "registry" / "car-t-autoimmune-2026-08-22"
               / "trials.csv")
#: The columns the CSV must have, in order.
CSV_COLUMNS = ["NCTId", "BriefTitle", "OverallStatus", "Phase", "Conditions", "Interventions", "StartDate",
               "LastUpdatePostDate", "EnrollmentCount", "EnrollmentType", "Countries", "BriefSummary",
               "LeadSponsor", "LeadSponsorClass", "MinAge", "MaxAge", "StdAges", "PrimaryEndpoints"]
#: What the snapshot says about itself (used in the store's search description and the pages).
PROVENANCE = ("REAL registry records: the 315 registered trials of the default question as ClinicalTrials.gov "
              "listed them on 2026-08-22 (via ptjeong/Rheumatology-CAR-T-Trials-Monitor-, MIT; ClinicalTrials.gov "
              "content, NLM, public domain); fields the source CSV lacks are absent")
_NCT = re.compile(r"^NCT\d{8}$")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split("|") if v.strip()]


def _put(target: dict, key: str, value: Any) -> None:
    if value not in (None, "", [], {}):
        target[key] = value


def row_to_study(row: dict[str, str], where: str) -> dict:
    """One CSV row as an API v2 study object (only the fields the row has)."""
    nct = row["NCTId"].strip()
    if not _NCT.match(nct):
        raise InputError(f"{where}: NCTId {nct!r} is not 'NCT' and 8 digits: check the file", source=where)
    ident: dict = {"nctId": nct}
    _put(ident, "briefTitle", row["BriefTitle"].strip())
    status: dict = {}
    _put(status, "overallStatus", row["OverallStatus"].strip())
    if row["StartDate"].strip():
        status["startDateStruct"] = {"date": row["StartDate"].strip()}
    if row["LastUpdatePostDate"].strip():
        status["lastUpdatePostDateStruct"] = {"date": row["LastUpdatePostDate"].strip()}
    design: dict = {}
    phases = [p for p in _split(row["Phase"]) if p != "Unknown"]
    _put(design, "phases", phases)
    enrollment: dict = {}
    count = row["EnrollmentCount"].strip()
    if count:
        if not count.isdigit():
            raise InputError(f"{where}: EnrollmentCount {count!r} is not a whole number: check the file",
                             source=where)
        enrollment["count"] = int(count)
    _put(enrollment, "type", row["EnrollmentType"].strip())
    _put(design, "enrollmentInfo", enrollment)
    sponsor: dict = {}
    _put(sponsor, "name", row["LeadSponsor"].strip())
    _put(sponsor, "class", row["LeadSponsorClass"].strip())
    eligibility: dict = {}
    _put(eligibility, "minimumAge", row["MinAge"].strip())
    _put(eligibility, "maximumAge", row["MaxAge"].strip())
    _put(eligibility, "stdAges", _split(row["StdAges"]))
    protocol: dict = {"identificationModule": ident}
    _put(protocol, "statusModule", status)
    _put(protocol, "sponsorCollaboratorsModule", {"leadSponsor": sponsor} if sponsor else {})
    _put(protocol, "descriptionModule", {"briefSummary": row["BriefSummary"].strip()}
         if row["BriefSummary"].strip() else {})
    _put(protocol, "conditionsModule", {"conditions": _split(row["Conditions"])} if row["Conditions"].strip() else {})
    _put(protocol, "designModule", design)
    _put(protocol, "armsInterventionsModule",
         {"interventions": [{"name": n} for n in _split(row["Interventions"])]} if row["Interventions"].strip()
         else {})
    _put(protocol, "outcomesModule",
         {"primaryOutcomes": [{"measure": m} for m in _split(row["PrimaryEndpoints"])]}
         if row["PrimaryEndpoints"].strip() else {})
    _put(protocol, "eligibilityModule", eligibility)
    _put(protocol, "contactsLocationsModule",
         {"locations": [{"country": c} for c in _split(row["Countries"])]} if row["Countries"].strip() else {})
    return {"protocolSection": protocol}


def read_snapshot_csv(path: str | Path) -> pd.DataFrame:
    """The trials CSV, checked for its shape (columns, unique NCT ids).

    Raises
    ------
    InputError
        Missing file, not a CSV, other columns, or repeated NCT ids (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"registry CSV not found: {path}: give shared/data/registry/car-t-autoimmune-2026-08-22/"
                         "trials.csv with --csv", source=str(path))
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read registry CSV {path}: {exc}: give a UTF-8 CSV with a header row",
                         source=str(path)) from None
    if list(frame.columns) != CSV_COLUMNS:
        missing = [c for c in CSV_COLUMNS if c not in frame.columns]
        extra = [c for c in frame.columns if c not in CSV_COLUMNS]
        raise InputError(f"registry CSV {path} has the wrong shape (missing: {', '.join(missing) or 'none'}; "
                         f"unexpected: {', '.join(extra[:5]) or 'none'}): it needs exactly the columns "
                         f"{', '.join(CSV_COLUMNS)}", source=str(path))
    dupes = frame["NCTId"][frame["NCTId"].duplicated()].tolist()
    if dupes:
        raise InputError(f"registry CSV {path} lists {dupes[0]} more than once: one row per trial",
                         source=str(path))
    return frame


def build(csv: str | Path) -> bytes:
    """The snapshot's gzip bytes from the trials CSV (deterministic)."""
    frame = read_snapshot_csv(csv)
    studies = [row_to_study({k: str(v) for k, v in row.items()}, f"{csv} row {i + 2}")
               for i, row in enumerate(frame.to_dict("records"))]
    pages = [{"studies": studies, "totalCount": len(studies)}]
    data = json.dumps(pages, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(data, compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    """``python -m reviewlib.sources.ctgov_snapshot [--csv CSV] [--out OUT]``."""
    parser = argparse.ArgumentParser(prog="python -m reviewlib.sources.ctgov_snapshot", description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help=f"the trials CSV (default {DEFAULT_CSV})")
    parser.add_argument("--out", type=Path, default=SNAPSHOT, help=f"the snapshot to write (default {SNAPSHOT})")
    args = parser.parse_args(argv)
    try:
        data = build(args.csv)
        write_bytes(args.out, data)
    except ReviewlibError as exc:
        print(f"ctgov_snapshot: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    n = len(json.loads(gzip.decompress(data))[0]["studies"])
    print(f"wrote {n} trials to {args.out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
