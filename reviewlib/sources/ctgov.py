"""Read ClinicalTrials.gov API v2 study JSON into one registry table (one row per NCT id).

:func:`read_ctgov` takes a single study (``/studies/{nctId}``), a page
(``{"studies": [...], "nextPageToken"?, "totalCount"?}``), a list of pages or
studies, or JSON Lines of either, from a path (``.gz`` allowed), bytes, text or
parsed JSON, and returns a DataFrame with exactly :data:`TRIAL_COLUMNS`.  A
field the study lacks is None (an empty list for list columns): never guessed.
:func:`registry_records` maps that table onto the records table
(:data:`reviewlib.records.COLUMNS`) so that screening and extraction run on
trials as on articles.

Columns (API v2 field in brackets; lists are Python lists, joined with "; " in CSV):

=========================== ===========================================================================
nct_id                      identificationModule.nctId
title                       identificationModule.briefTitle
official_title              identificationModule.officialTitle
acronym                     identificationModule.acronym
secondary_ids               orgStudyIdInfo.id and secondaryIdInfos[].id (list; for deduplication)
nct_aliases                 identificationModule.nctIdAliases (list)
status                      statusModule.overallStatus (RECRUITING, COMPLETED, ...)
why_stopped                 statusModule.whyStopped
study_type                  designModule.studyType (INTERVENTIONAL, OBSERVATIONAL, EXPANDED_ACCESS)
phases                      designModule.phases (list: EARLY_PHASE1, PHASE1, ..., NA)
allocation                  designInfo.allocation (RANDOMIZED, NON_RANDOMIZED, NA)
intervention_model          designInfo.interventionModel (SINGLE_GROUP, PARALLEL, CROSSOVER, ...)
masking                     designInfo.maskingInfo.masking (NONE, SINGLE, DOUBLE, TRIPLE, QUADRUPLE)
primary_purpose             designInfo.primaryPurpose
enrollment                  enrollmentInfo.count (integer)
enrollment_type             enrollmentInfo.type (ACTUAL or ESTIMATED)
conditions                  conditionsModule.conditions (list)
keywords                    conditionsModule.keywords (list)
interventions               armsInterventionsModule.interventions[].name (list)
intervention_types          .interventions[].type, aligned with ``interventions`` (None where absent)
arms                        armGroups[] as "label (TYPE)" (list)
arm_types                   armGroups[].type (list: EXPERIMENTAL, PLACEBO_COMPARATOR, ...)
primary_outcomes            outcomesModule.primaryOutcomes[].measure (list)
secondary_outcomes          outcomesModule.secondaryOutcomes[].measure (list)
brief_summary               descriptionModule.briefSummary
detailed_description        descriptionModule.detailedDescription
eligibility_criteria        eligibilityModule.eligibilityCriteria
minimum_age, maximum_age    eligibilityModule.minimumAge / maximumAge (text, e.g. "18 Years")
std_ages                    eligibilityModule.stdAges (list: CHILD, ADULT, OLDER_ADULT)
sex                         eligibilityModule.sex (ALL, FEMALE, MALE)
healthy_volunteers          eligibilityModule.healthyVolunteers (True/False/None)
lead_sponsor                sponsorCollaboratorsModule.leadSponsor.name
lead_sponsor_class          leadSponsor.class (INDUSTRY, OTHER, NIH, ...)
collaborators               collaborators[].name (list)
countries                   contactsLocationsModule.locations[].country, unique, in order (list)
start_date, start_date_type statusModule.startDateStruct date and type (ACTUAL/ESTIMATED)
primary_completion_date(_type), completion_date(_type), first_posted(_type), last_update_posted(_type)
                            the matching ...DateStruct (first posted: studyFirstPostDateStruct)
has_results                 hasResults (True/False/None)
reference_pmids             referencesModule.references[].pmid (list)
reference_types             .references[].type aligned with reference_pmids (BACKGROUND, RESULT, DERIVED)
source                      'ctgov'
=========================== ===========================================================================

:func:`registry_duplicates` finds registrations of one study (an NCT alias, or a
shared EudraCT/CTIS/ChiCTR/ISRCTN/... number).

Bad input (not JSON, a study without protocolSection or nctId, a CSV of the
wrong shape) raises :class:`~reviewlib.errors.InputError` naming the file and page.
"""
from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError
from ..records import LIST_SEPARATOR, conform

#: Columns of the registry table, in order.
TRIAL_COLUMNS: list[str] = [
    "nct_id", "title", "official_title", "acronym", "secondary_ids", "nct_aliases", "status", "why_stopped",
    "study_type", "phases", "allocation", "intervention_model", "masking", "primary_purpose", "enrollment",
    "enrollment_type", "conditions", "keywords", "interventions", "intervention_types", "arms", "arm_types",
    "primary_outcomes", "secondary_outcomes", "brief_summary", "detailed_description", "eligibility_criteria",
    "minimum_age", "maximum_age", "std_ages", "sex", "healthy_volunteers", "lead_sponsor", "lead_sponsor_class",
    "collaborators", "countries", "start_date", "start_date_type", "primary_completion_date",
    "primary_completion_date_type", "completion_date", "completion_date_type", "first_posted",
    "first_posted_type", "last_update_posted", "last_update_posted_type", "has_results", "reference_pmids",
    "reference_types", "source",
]
#: Columns holding lists.
TRIAL_LIST_COLUMNS: list[str] = [
    "secondary_ids", "nct_aliases", "phases", "conditions", "keywords", "interventions", "intervention_types",
    "arms", "arm_types", "primary_outcomes", "secondary_outcomes", "std_ages", "collaborators", "countries",
    "reference_pmids", "reference_types",
]
_BOOL_COLUMNS = ["healthy_volunteers", "has_results"]
_DATES = {"start_date": "startDateStruct", "primary_completion_date": "primaryCompletionDateStruct",
          "completion_date": "completionDateStruct", "first_posted": "studyFirstPostDateStruct",
          "last_update_posted": "lastUpdatePostDateStruct"}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _list(value: Any) -> list:
    return [v for v in value if v is not None] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def study_row(study: dict, where: str = "the study") -> dict[str, Any]:
    """One registry row from one API v2 study object (see the module docstring for the columns).

    Raises
    ------
    InputError
        If the study has no ``protocolSection`` or no ``nctId``.
    """
    if not isinstance(study, dict):
        raise InputError(f"{where} is not a study object (a JSON object with protocolSection): "
                         "give API v2 study JSON", source=where)
    ps = study.get("protocolSection")
    if not isinstance(ps, dict):
        raise InputError(f"{where} has no protocolSection: give ClinicalTrials.gov API v2 study JSON "
                         "(not the legacy API or a CSV export)", source=where)
    ident = ps.get("identificationModule") or {}
    nct = _text(ident.get("nctId"))
    if not nct:
        raise InputError(f"{where} has no identificationModule.nctId: give complete API v2 study JSON "
                         "(with fields=, include NCTId)", source=where)
    status = ps.get("statusModule") or {}
    design = ps.get("designModule") or {}
    info = design.get("designInfo") or {}
    arms_mod = ps.get("armsInterventionsModule") or {}
    interventions = _list(arms_mod.get("interventions"))
    arms = _list(arms_mod.get("armGroups"))
    outcomes = ps.get("outcomesModule") or {}
    elig = ps.get("eligibilityModule") or {}
    sponsors = ps.get("sponsorCollaboratorsModule") or {}
    refs = [r for r in _list(_get(ps, "referencesModule", "references")) if isinstance(r, dict) and r.get("pmid")]
    countries: list[str] = []
    for loc in _list(_get(ps, "contactsLocationsModule", "locations")):
        c = _text(loc.get("country")) if isinstance(loc, dict) else None
        if c and c not in countries:
            countries.append(c)
    secondary = [_text(_get(ident, "orgStudyIdInfo", "id"))]
    secondary += [_text(s.get("id")) for s in _list(ident.get("secondaryIdInfos")) if isinstance(s, dict)]
    row: dict[str, Any] = {
        "nct_id": nct,
        "title": _text(ident.get("briefTitle")),
        "official_title": _text(ident.get("officialTitle")),
        "acronym": _text(ident.get("acronym")),
        "secondary_ids": [s for s in secondary if s],
        "nct_aliases": [str(a) for a in _list(ident.get("nctIdAliases"))],
        "status": _text(status.get("overallStatus")),
        "why_stopped": _text(status.get("whyStopped")),
        "study_type": _text(design.get("studyType")),
        "phases": [str(p) for p in _list(design.get("phases"))],
        "allocation": _text(info.get("allocation")),
        "intervention_model": _text(info.get("interventionModel")),
        "masking": _text(_get(info, "maskingInfo", "masking")),
        "primary_purpose": _text(info.get("primaryPurpose")),
        "enrollment": _get(design, "enrollmentInfo", "count"),
        "enrollment_type": _text(_get(design, "enrollmentInfo", "type")),
        "conditions": [str(c) for c in _list(_get(ps, "conditionsModule", "conditions"))],
        "keywords": [str(k) for k in _list(_get(ps, "conditionsModule", "keywords"))],
        "interventions": [_text(i.get("name")) or "" for i in interventions if isinstance(i, dict)],
        "intervention_types": [_text(i.get("type")) for i in interventions if isinstance(i, dict)],
        "arms": [f"{a.get('label', '')} ({a['type']})" if a.get("type") else str(a.get("label", ""))
                 for a in arms if isinstance(a, dict)],
        "arm_types": [str(a["type"]) for a in arms if isinstance(a, dict) and a.get("type")],
        "primary_outcomes": [_text(o.get("measure")) or "" for o in _list(outcomes.get("primaryOutcomes"))
                             if isinstance(o, dict)],
        "secondary_outcomes": [_text(o.get("measure")) or "" for o in _list(outcomes.get("secondaryOutcomes"))
                               if isinstance(o, dict)],
        "brief_summary": _text(_get(ps, "descriptionModule", "briefSummary")),
        "detailed_description": _text(_get(ps, "descriptionModule", "detailedDescription")),
        "eligibility_criteria": _text(elig.get("eligibilityCriteria")),
        "minimum_age": _text(elig.get("minimumAge")),
        "maximum_age": _text(elig.get("maximumAge")),
        "std_ages": [str(a) for a in _list(elig.get("stdAges"))],
        "sex": _text(elig.get("sex")),
        "healthy_volunteers": elig.get("healthyVolunteers") if isinstance(elig.get("healthyVolunteers"), bool)
        else None,
        "lead_sponsor": _text(_get(sponsors, "leadSponsor", "name")),
        "lead_sponsor_class": _text(_get(sponsors, "leadSponsor", "class")),
        "collaborators": [_text(c.get("name")) or "" for c in _list(sponsors.get("collaborators"))
                          if isinstance(c, dict)],
        "countries": countries,
        "has_results": study.get("hasResults") if isinstance(study.get("hasResults"), bool) else None,
        "reference_pmids": [str(r["pmid"]).strip() for r in refs],
        "reference_types": [_text(r.get("type")) for r in refs],
        "source": "ctgov",
    }
    for col, struct in _DATES.items():
        row[col] = _text(_get(status, struct, "date"))
        row[f"{col}_type"] = _text(_get(status, struct, "type"))
    return row


def empty_trials() -> pd.DataFrame:
    """An empty registry table with :data:`TRIAL_COLUMNS`."""
    return conform_trials(pd.DataFrame({c: [] for c in TRIAL_COLUMNS}))


def conform_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly :data:`TRIAL_COLUMNS` in order and their dtypes (extra columns kept after)."""
    frame = frame.copy()
    n = len(frame)
    for col in TRIAL_COLUMNS:
        if col not in frame.columns:
            frame[col] = [[] for _ in range(n)] if col in TRIAL_LIST_COLUMNS else None
    for col in TRIAL_LIST_COLUMNS:
        frame[col] = [v if isinstance(v, list) else [] for v in frame[col]]
    frame["enrollment"] = pd.to_numeric(frame["enrollment"], errors="coerce").astype("Int64")
    for col in _BOOL_COLUMNS:
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    for col in TRIAL_COLUMNS:
        if col not in TRIAL_LIST_COLUMNS and col not in _BOOL_COLUMNS and col != "enrollment":
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    extra = [c for c in frame.columns if c not in TRIAL_COLUMNS]
    return frame[TRIAL_COLUMNS + extra].reset_index(drop=True)


def _documents(data: Any, name: str) -> Iterable[tuple[str, dict]]:
    """(where, study) for every study in parsed JSON: a study, a page, or a list of either."""
    if isinstance(data, list):
        for i, item in enumerate(data, 1):
            if isinstance(item, dict) and "studies" in item:
                yield from _page(item, f"{name} page {i}")
            else:
                yield f"{name} item {i}", item
    elif isinstance(data, dict) and "studies" in data:
        yield from _page(data, name)
    else:
        yield name, data


def _page(page: dict, where: str) -> Iterable[tuple[str, dict]]:
    studies = page.get("studies")
    if not isinstance(studies, list):
        raise InputError(f"{where}: 'studies' is not a list: give an API v2 /studies page", source=where)
    for j, study in enumerate(studies, 1):
        yield f"{where} study {j}", study


def _load(source: Any) -> tuple[Any, str]:
    """Parsed JSON and a name for messages, from a path, bytes, text or parsed JSON."""
    if isinstance(source, (dict, list)):
        return source, "the study JSON"
    if isinstance(source, (str, os.PathLike)) and not (isinstance(source, str) and source.lstrip()[:1] in "{["):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"registry file not found: {path}: give a ClinicalTrials.gov API v2 JSON file "
                             "(.json, .json.gz or .jsonl)", source=str(path))
        raw = path.read_bytes()
        name = str(path)
    else:
        raw = source.encode("utf-8") if isinstance(source, str) else bytes(source)
        name = "the study JSON"
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"{name} is a damaged gzip file ({exc}): download or regenerate it",
                             source=name) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text: give ClinicalTrials.gov API v2 JSON", source=name) from None
    if text.lstrip()[:1] not in ("{", "["):
        hint = (" (it looks like a CSV export: use the JSON format)" if "," in text.split("\n", 1)[0] else "")
        raise InputError(f"{name} is not JSON{hint}: give ClinicalTrials.gov API v2 study JSON", source=name)
    try:
        return json.loads(text), name
    except json.JSONDecodeError as first:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) > 1:                       # JSON Lines: one page or study per line
            out = []
            for i, line in enumerate(lines, 1):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{name} line {i} is not JSON ({exc.msg}): the file is truncated or damaged; "
                                     "fetch it again", source=name) from None
            return out, name
        raise InputError(f"{name} is not valid JSON ({first.msg} at character {first.pos}): the file is "
                         "truncated or damaged; fetch it again", source=name) from None


def read_ctgov(source: Any, *, dedupe: bool = True) -> pd.DataFrame:
    """Read API v2 study JSON into the registry table (:data:`TRIAL_COLUMNS`).

    Parameters
    ----------
    source : path, bytes, str, dict or list
        A study, a ``/studies`` page, a list of pages or studies, or JSON Lines of
        those; a path may be gzip-compressed.
    dedupe : bool
        Keep one row per NCT id (the last seen, as a later page is newer).

    Raises
    ------
    InputError
        Not JSON, a study without protocolSection/nctId, or a malformed page (names the file and page).
    """
    data, name = _load(source)
    rows = [study_row(study, where) for where, study in _documents(data, name)]
    if not rows:
        return empty_trials()
    frame = conform_trials(pd.DataFrame(rows))
    if dedupe:
        frame = frame.drop_duplicates("nct_id", keep="last").reset_index(drop=True)
    return frame


def trials_csv_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """The registry table flattened for CSV: ``nct_id`` first, lists joined with ``"; "``."""
    out = conform_trials(trials)
    for col in TRIAL_LIST_COLUMNS:
        out[col] = [LIST_SEPARATOR.join("" if x is None else str(x) for x in v) for v in out[col]]
    return out


def write_trials_csv(trials: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the registry table to CSV atomically, CSV/Excel formula cells neutralised (reviewlib.safe_cells)."""
    from ..safe_cells import write_csv
    return write_csv(trials_csv_frame(trials), path)


def read_trials_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``trials.csv`` written by :func:`write_trials_csv` back into the registry table.

    Raises
    ------
    InputError
        The file is missing, not a CSV, or lacks ``nct_id``.
    """
    from ..safe_cells import unguard_frame
    from ..textfiles import check_text_file
    path, encoding = check_text_file(path, "registry table", "a trials.csv written by 'reviewlib registry'",
                                     compressed_ok=True)
    try:
        raw = unguard_frame(pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read registry table {path}: {exc}: give a UTF-8 CSV written by "
                         "'reviewlib registry'", source=str(path)) from None
    if "nct_id" not in raw.columns:
        raise InputError(f"registry table {path} has no nct_id column (columns: {', '.join(raw.columns[:6])}...): "
                         "give a trials.csv written by 'reviewlib registry'", source=str(path))
    raw = raw.replace({"": None})
    for col in TRIAL_LIST_COLUMNS:
        if col in raw:
            raw[col] = [[s for s in v.split(LIST_SEPARATOR)] if isinstance(v, str) else [] for v in raw[col]]
    for col in _BOOL_COLUMNS:
        if col in raw:
            raw[col] = [None if v is None else v == "True" for v in raw[col]]
    return conform_trials(raw)


# -- registry rows as records --------------------------------------------------------
def _design_line(row: pd.Series) -> str:
    parts = []
    for label, col in (("Phase", "phases"), ("Conditions", "conditions"), ("Interventions", "interventions")):
        if row[col]:
            parts.append(f"{label}: {', '.join(str(v) for v in row[col])}")
    for label, col in (("Study type", "study_type"), ("Allocation", "allocation"),
                       ("Intervention model", "intervention_model"), ("Masking", "masking")):
        if row[col]:
            parts.append(f"{label}: {row[col]}")
    if pd.notna(row["enrollment"]):
        parts.append(f"Enrollment: {row['enrollment']}" + (f" ({row['enrollment_type']})"
                                                             if row["enrollment_type"] else ""))
    return ". ".join(parts)


def registry_records(trials: pd.DataFrame) -> pd.DataFrame:
    """The registry table mapped onto the records table (:data:`reviewlib.records.COLUMNS`).

    title = brief title (the official title if none); abstract = brief summary,
    detailed description, then a line of design facts (phase, conditions,
    interventions, allocation, masking, enrollment) so screeners see them;
    ``abstract_sections`` labels those parts (BRIEF SUMMARY, DETAILED
    DESCRIPTION, DESIGN, ELIGIBILITY); keywords = conditions + keywords;
    year and pub_date from the start date; journal = "ClinicalTrials.gov";
    publication_types = ["Clinical Trial Registration"]; source = 'ctgov'.
    Every registry column is kept after the standard ones (``nct_id`` first
    of them), so extraction reads phase, allocation, masking, enrollment and
    ages from their fields rather than from text.
    """
    trials = conform_trials(trials)
    rows = []
    for _, t in trials.iterrows():
        sections = []
        if t["brief_summary"]:
            sections.append({"label": "BRIEF SUMMARY", "text": t["brief_summary"]})
        if t["detailed_description"]:
            sections.append({"label": "DETAILED DESCRIPTION", "text": t["detailed_description"]})
        design = _design_line(t)
        if design:
            sections.append({"label": "DESIGN", "text": design})
        if t["eligibility_criteria"]:
            sections.append({"label": "ELIGIBILITY", "text": t["eligibility_criteria"]})
        start = t["start_date"] or ""
        rows.append({
            "pmid": None, "doi": None, "pmcid": None,
            "title": t["title"] or t["official_title"],
            "abstract": "\n\n".join(s["text"] for s in sections[:3]) or None,
            "abstract_sections": sections,
            "authors": [], "journal": "ClinicalTrials.gov", "journal_abbrev": "ClinicalTrials.gov",
            "year": int(start[:4]) if start[:4].isdigit() else None,
            "pub_date": start or None, "language": ["eng"],
            "publication_types": ["Clinical Trial Registration"],
            "mesh_terms": [], "mesh_major": [],
            "keywords": list(t["conditions"]) + [k for k in t["keywords"] if k not in t["conditions"]],
            "source": "ctgov",
        })
    frame = conform(pd.DataFrame(rows)) if rows else conform(pd.DataFrame())
    extra = trials.drop(columns=["title", "keywords", "source"]).reset_index(drop=True)
    return pd.concat([frame.reset_index(drop=True), extra], axis=1)


# -- duplicates among registrations ------------------------------------------------------
#: Secondary ids that name one study in another register (so two NCT records sharing one are one study);
#: sponsors' own protocol numbers are not global and are never used.
GLOBAL_ID_PATTERNS = {
    "EudraCT": r"^\d{4}-\d{6}-\d{2}$",
    "CTIS": r"^\d{4}-\d{6}-\d{2}-\d{2}$",
    "ChiCTR": r"^ChiCTR[-\w]*\d{6,}$",
    "ISRCTN": r"^ISRCTN\d{8}$",
    "DRKS": r"^DRKS\d{8}$",
    "jRCT": r"^jRCT\w?\d{9,}$",
    "UMIN": r"^UMIN\d{9}$",
    "ACTRN": r"^ACTRN\d{14}$",
    "CTRI": r"^CTRI/\d{4}/\d+/\d+$",
}


def _global_id(value: str) -> str | None:
    v = value.strip()
    for name, pattern in GLOBAL_ID_PATTERNS.items():
        if re.match(pattern, v, re.I):
            return f"{name}:{v.upper()}"
    return None


def registry_duplicates(trials: pd.DataFrame) -> pd.DataFrame:
    """Pairs of registrations that are one study: ``nct_id``, ``duplicate_of``, ``how``.

    ``how`` is ``nct alias`` (one record lists the other's NCT id among its
    ``nct_aliases``) or ``shared <register> id`` (both list the same EudraCT,
    CTIS, ChiCTR, ISRCTN, DRKS, jRCT, UMIN, ACTRN or CTRI number).  The record
    kept (``duplicate_of``) is the one that appears first in ``trials``.
    """
    trials = conform_trials(trials)
    order = {n: i for i, n in enumerate(trials["nct_id"])}
    rows: list[tuple[str, str, str]] = []
    for t in trials.to_dict("records"):
        for alias in t["nct_aliases"]:
            if alias in order and alias != t["nct_id"]:
                a, b = sorted((t["nct_id"], alias), key=order.get)
                rows.append((b, a, "nct alias"))
    owners: dict[str, str] = {}
    for t in trials.to_dict("records"):
        for sid in t["secondary_ids"]:
            gid = _global_id(sid)
            if gid is None:
                continue
            if gid in owners and owners[gid] != t["nct_id"]:
                rows.append((t["nct_id"], owners[gid], f"shared {gid.split(':')[0]} id"))
            else:
                owners.setdefault(gid, t["nct_id"])
    rows = list(dict.fromkeys(rows))
    return pd.DataFrame(rows, columns=["nct_id", "duplicate_of", "how"])
