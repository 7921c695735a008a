"""Evidence from trial registrations: extraction through the review's schema, and the registry's tables.

Registrations (the registry table of :mod:`reviewlib.sources.ctgov`) are
extracted with the same protocol schema as publications
(:func:`extract_trials`): the text extractor reads the title, summary,
description, conditions, interventions and eligibility
(:func:`reviewlib.sources.ctgov.registry_records`), then the protocol's
``registry: fields`` rules replace what a registry states in a structured field
(phase, allocation, enrollment, age groups): the value comes from the field,
its evidence is ``"ClinicalTrials.gov <column>: <value>"`` and its confidence 1.0,
never a guess from text.  Derived fields (e.g. ``controlled`` from ``design``)
are derived again from the new value.

:func:`trial_table` joins the extraction with the registry columns (one row
per trial); :func:`registry_tables` computes the tables the protocol's
``report: registry_tables`` declares, by generic kinds (the engine names no
field or word of any review; the vocabulary, e.g. which agents to look for in
the interventions, is in the protocol):

``crosstab``     trials by ``rows`` x ``columns`` (extracted fields; a multi-valued row counts in each of its values)
``basket``       trials with several values of ``field`` (e.g. several diseases), and their combinations
``phases``       trials by registered phase
``trial_design`` randomised / comparator (controlled) / single-arm, from the design fields where the record has them
                 (allocation, arm types, intervention model), else from the ``text`` columns' patterns
``enrollment``   planned enrollment: median, quartiles, distribution, by ``by``, with how many at most ``small``
``mentions``     trials whose ``columns`` name each of ``values`` (regexes), and ``none`` for the rest
``ages``         age groups eligible (std_ages; children = minimum age below ``child_below`` years)
``status``       trials by overall status
``countries``    trials by country (``top`` shown), multinational trials
``start_years``  trials started per year, by ``by``
``publications`` registered trials with any publication linked (per status), completed trials with none

:func:`registry_gap_facts` gives the numbers behind the gap statements.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import ProtocolError
from ..sources.ctgov import TRIAL_COLUMNS, conform_trials, registry_records
from . import extraction

logger = logging.getLogger(__name__)

#: Registry columns kept beside the extracted fields in :func:`trial_table`.
TRIAL_TABLE_COLUMNS = ["nct_id", "title", "status", "phases", "allocation", "intervention_model", "masking",
                       "arm_types", "enrollment", "enrollment_type", "conditions", "interventions", "std_ages",
                       "minimum_age", "maximum_age", "countries", "start_date", "lead_sponsor", "lead_sponsor_class",
                       "has_results", "brief_summary", "detailed_description", "official_title"]
#: ClinicalTrials.gov's own design enums (API v2), not any review's words.
RANDOMISED_ALLOCATION = {"RANDOMIZED"}
NOT_RANDOMISED_ALLOCATION = {"NON_RANDOMIZED"}
COMPARATOR_ARMS = {"PLACEBO_COMPARATOR", "ACTIVE_COMPARATOR", "SHAM_COMPARATOR", "NO_INTERVENTION"}
SINGLE_GROUP_MODELS = {"SINGLE_GROUP"}
NOT_GIVEN = "not given"
TABLE_KINDS = ("crosstab", "basket", "phases", "trial_design", "enrollment", "mentions", "ages", "status", "countries",
               "start_years", "publications")


def _joined(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value) if value else None
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def _registry_section(protocol: Any) -> dict:
    section = protocol.section("registry") if hasattr(protocol, "section") else (protocol or {}).get("registry")
    return section if isinstance(section, dict) else {}


def _field_rules(protocol: Any, schema: extraction.Schema) -> dict[str, list[dict]]:
    rules = _registry_section(protocol).get("fields") or {}
    where = f"protocol {getattr(protocol, 'path', '')}".strip()
    out: dict[str, list[dict]] = {}
    for name, spec in rules.items():
        if name not in schema.fields:
            raise ProtocolError(f"{where}: registry.fields.{name} is not an extraction field: use one of "
                                f"{', '.join(schema.names)}", source=where)
        spec = spec if isinstance(spec, list) else [spec]
        for rule in spec:
            if not isinstance(rule, dict) or rule.get("column") not in TRIAL_COLUMNS:
                raise ProtocolError(f"{where}: registry.fields.{name} rules need a column of the registry table "
                                    f"(e.g. allocation, phases, enrollment, std_ages), got {rule!r}", source=where)
            for target in (rule.get("map") or {}).values():
                try:
                    schema.fields[name].normalise(target)
                except ValueError as exc:
                    raise ProtocolError(f"{where}: registry.fields.{name}: {exc}", source=where) from None
        out[name] = spec
    return out


def _structured(row: Mapping[str, Any], rules: list[dict], f: extraction.Field) -> tuple[str, str] | None:
    """The (value, evidence) the first rule gives for one trial, or None."""
    for rule in rules:
        raw = _joined(row.get(rule["column"]))
        if raw is None:
            continue
        mapping = rule.get("map")
        value = mapping.get(raw) if mapping else raw
        if value is None:
            continue
        try:
            value = f.normalise(value)
        except ValueError:
            continue            # e.g. an enrollment of 0 for an integer field with a minimum: leave it to the text
        return value, f"ClinicalTrials.gov {rule['column']}: {raw}"
    return None


def _extraction_text(trial: Mapping[str, Any]) -> list[dict[str, str]]:
    """The text the extractor reads of a registration: summary, description, conditions, interventions, arms.

    Not the design enums (``NON_RANDOMIZED`` would read as "randomised": design fields are
    read from their fields) and not the eligibility criteria (their exclusion lists name
    drugs and diseases the trial does not study).
    """
    out = []
    for label, col in (("BRIEF SUMMARY", "brief_summary"), ("DETAILED DESCRIPTION", "detailed_description")):
        if trial.get(col):
            out.append({"label": label, "text": str(trial[col])})
    facts = [f"{label}: {'; '.join(str(v) for v in trial[col])}." for label, col in
             (("Conditions", "conditions"), ("Interventions", "interventions"), ("Arms", "arms"))
             if trial.get(col)]
    if facts:
        out.append({"label": "REGISTRATION", "text": " ".join(facts)})
    return out


def extract_trials(trials: pd.DataFrame, protocol: Any, *, cache_dir: Any = None) -> pd.DataFrame:
    """Extract the protocol's fields from registrations (one row per trial, like :func:`extraction.extract`).

    The text extractor reads each registration as a record; the protocol's
    ``registry: fields`` rules then set what the registry gives in its fields.
    ``cache_dir``: the review's cache folder, where the text extraction of an unchanged
    registration is kept (:class:`reviewlib.evidence.extraction.ExtractionCache`).

    Returns
    -------
    pandas.DataFrame
        record_id (``nct:NCT...``), pmid (None), nct_id, then per field the
        value, ``<field>_evidence`` and ``<field>_confidence``.
    """
    schema = extraction.load_schema(protocol)
    rules = _field_rules(protocol, schema)
    trials = conform_trials(trials)
    records = registry_records(trials)
    records.insert(0, "record_id", [f"nct:{n}" for n in trials["nct_id"]])
    texts = [_extraction_text(t) for t in trials.to_dict("records")]
    records["abstract_sections"] = texts
    records["abstract"] = ["\n\n".join(x["text"] for x in sec) or None for sec in texts]
    out = extraction.extract(records, schema, cache_dir=cache_dir)
    rows = trials.to_dict("records")
    for name, spec in rules.items():
        f = schema.fields[name]
        for i, row in enumerate(rows):
            got = _structured(row, spec, f)
            if got is None:
                continue
            out.at[i, name], out.at[i, f"{name}_evidence"] = got
            out.at[i, f"{name}_confidence"] = 1.0
    for name, f in schema.fields.items():           # derived fields follow their (possibly new) source
        if f.kind == "derived" and f.source in rules:
            out[name] = [extraction.derive(f, v) for v in out[f.source]]
            out[f"{name}_evidence"] = out[f"{f.source}_evidence"]
            out[f"{name}_confidence"] = out[f"{f.source}_confidence"]
    out.insert(2, "nct_id", list(trials["nct_id"]))
    out.attrs["extraction_schema"] = extraction.SchemaRef(schema)
    return out


def trial_table(trials: pd.DataFrame, protocol: Any, extracted: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per trial: the registry columns (:data:`TRIAL_TABLE_COLUMNS`) and the extracted fields."""
    trials = conform_trials(trials)
    extracted = extract_trials(trials, protocol) if extracted is None else extracted
    schema = extraction.load_schema(protocol)
    keep = ["nct_id"] + [c for c in extracted.columns if c.split("_evidence")[0].split("_confidence")[0]
                         in schema.fields]
    frame = trials[TRIAL_TABLE_COLUMNS].merge(extracted[keep], on="nct_id", how="left")
    frame.insert(0, "record_id", [f"nct:{n}" for n in frame["nct_id"]])
    frame.attrs["extraction_schema"] = extraction.SchemaRef(schema)
    return frame


# -- the tables ----------------------------------------------------------------------
def _values(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return [extraction.NOT_REPORTED]
    parts = [p.strip() for p in str(value).split(extraction.SEPARATOR) if p.strip()]
    return parts or [extraction.NOT_REPORTED]


def _compile_all(patterns: Iterable[str], where: str) -> re.Pattern:
    try:
        return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)", re.IGNORECASE)
    except re.error as exc:
        raise ProtocolError(f"{where}: bad pattern ({exc})") from None


def _text(row: Mapping[str, Any], columns: Iterable[str]) -> str:
    return " \n".join(t for t in (_joined(row.get(c)) for c in columns) if t)


def crosstab(table: pd.DataFrame, rows: str, columns: str) -> pd.DataFrame:
    """Trials by ``rows`` x ``columns`` (multi-valued cells count the trial once in each value), with totals."""
    pairs = [(r, c) for a, b in zip(table[rows], table[columns]) for r in _values(a) for c in _values(b)]
    frame = pd.DataFrame(pairs, columns=[rows, columns])
    out = pd.crosstab(frame[rows], frame[columns]) if len(frame) else pd.DataFrame()
    if len(out):
        out["all trials"] = [int(sum(1 for v in table[rows] if r in _values(v))) for r in out.index]
    return out.reset_index()


def basket(table: pd.DataFrame, field: str) -> pd.DataFrame:
    """Trials with several values of ``field`` (basket trials), by combination, largest first."""
    combos = ["; ".join(sorted(v)) for v in (_values(x) for x in table[field]) if len(v) > 1]
    counts = pd.Series(combos, dtype=object).value_counts()
    out = pd.DataFrame({field: list(counts.index), "trials": [int(v) for v in counts.values]})
    total = pd.DataFrame({field: [f"all basket trials (of {len(table)})"], "trials": [len(combos)]})
    return pd.concat([total, out], ignore_index=True)


def phases(table: pd.DataFrame) -> pd.DataFrame:
    """Trials by registered phase (the phases joined as the registry lists them)."""
    counts = pd.Series([_joined(v) or NOT_GIVEN for v in table["phases"]], dtype=object).value_counts()
    return pd.DataFrame({"phase": list(counts.index), "trials": [int(v) for v in counts.values],
                         "share": [f"{v / max(len(table), 1):.0%}" for v in counts.values]})


def design_calls(table: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    """Per trial: randomised, controlled, single_arm (True/False/None) and where each call came from."""
    cols = spec.get("text") or ["brief_summary", "detailed_description", "title", "official_title"]
    pats = {k: _compile_all(spec.get(k) or [], f"registry_tables design.{k}") for k in
            ("randomised", "comparator", "single_arm")}
    rows = []
    for t in table.to_dict("records"):
        text = _text(t, cols)
        alloc, model = t.get("allocation"), t.get("intervention_model")
        arms = set(t.get("arm_types") or [])
        calls: dict[str, Any] = {"nct_id": t["nct_id"]}
        field = {"randomised": (True if alloc in RANDOMISED_ALLOCATION else False if alloc in
                                NOT_RANDOMISED_ALLOCATION or model in SINGLE_GROUP_MODELS else None),
                 "comparator": (True if arms & COMPARATOR_ARMS else False if arms or model in SINGLE_GROUP_MODELS
                                else None),
                 "single_arm": (True if model in SINGLE_GROUP_MODELS else False if model else None)}
        for k, v in field.items():
            if v is not None:
                calls[k], calls[f"{k}_from"] = v, "design field"
            elif pats[k].search(text):
                calls[k], calls[f"{k}_from"] = True, "summary text"
            else:
                calls[k], calls[f"{k}_from"] = None, "not stated"
        rows.append(calls)
    return pd.DataFrame(rows, columns=["nct_id", "randomised", "randomised_from", "comparator", "comparator_from",
                                       "single_arm", "single_arm_from"])


def trial_design(table: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    """How many trials are randomised, controlled, single-arm: from the design fields and from summary text."""
    calls = design_calls(table, spec)
    out = []
    for k, label in (("randomised", "randomised"), ("comparator", "controlled (comparator arm)"),
                     ("single_arm", "single-arm")):
        yes = calls[calls[k].eq(True)]
        out.append({"registered design": label, "trials": len(yes),
                    "from design fields": int(yes[f"{k}_from"].eq("design field").sum()),
                    "from summary text": int(yes[f"{k}_from"].eq("summary text").sum()),
                    "not stated": int(calls[f"{k}_from"].eq("not stated").sum())})
    none = calls[~(calls["randomised"].eq(True) | calls["comparator"].eq(True) | calls["single_arm"].eq(True))]
    out.append({"registered design": "none of these stated", "trials": len(none), "from design fields": 0,
                "from summary text": 0, "not stated": len(none)})
    return pd.DataFrame(out)


def _enrollment(table: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(pd.Series(list(table["enrollment"]), dtype=object), errors="coerce")


def enrollment(table: pd.DataFrame, by: str | None = "phases", small: int = 20) -> pd.DataFrame:
    """Planned enrollment: n, median, quartiles, range, trials at most ``small``, per ``by`` and overall."""
    n = _enrollment(table)
    groups = [("all trials", n)]
    if by:
        keys = pd.Series([_joined(v) or NOT_GIVEN for v in table[by]], dtype=object)
        for key in keys.value_counts().index:
            groups.append((key, n[keys.values == key]))
    rows = []
    for label, s in groups:
        s = s.dropna()
        rows.append({"group": label, "trials with enrollment": len(s),
                     "median": float(s.median()) if len(s) else None,
                     "quartiles": f"{s.quantile(.25):g}-{s.quantile(.75):g}" if len(s) else "",
                     "range": f"{s.min():g}-{s.max():g}" if len(s) else "",
                     f"at most {small}": int((s <= small).sum()),
                     f"share at most {small}": f"{(s <= small).mean():.0%}" if len(s) else ""})
    return pd.DataFrame(rows)


def enrollment_distribution(table: pd.DataFrame, bins: Iterable[int] = (0, 10, 20, 50, 100, 500)) -> pd.DataFrame:
    """Trials by planned enrollment band (and whether the number is actual or estimated)."""
    n = _enrollment(table)
    edges = list(bins) + [np.inf]
    labels = [f"{a + 1}-{b}" if np.isfinite(b) else f"more than {a}" for a, b in zip(edges[:-1], edges[1:])]
    band = pd.cut(n, edges, labels=labels, right=True)
    kind = pd.Series([str(v).lower() if v else NOT_GIVEN for v in table["enrollment_type"]], dtype=object)
    out = pd.crosstab(band, kind).reindex(labels, fill_value=0)
    out["trials"] = out.sum(axis=1)
    out = out.reset_index().rename(columns={"enrollment": "planned enrollment", "row_0": "planned enrollment"})
    out.columns.name = None
    missing = int(n.isna().sum())
    if missing:
        out = pd.concat([out, pd.DataFrame({out.columns[0]: [NOT_GIVEN], "trials": [missing]})], ignore_index=True)
    return out.fillna(0)


def mention_calls(table: pd.DataFrame, spec: Mapping[str, Any]) -> list[list[str]]:
    """Per trial, the ``values`` of a ``mentions`` spec its ``columns`` name (``none`` when none)."""
    pats = {v: _compile_all(p if isinstance(p, list) else [p], f"registry_tables mentions {v}")
            for v, p in (spec.get("values") or {}).items()}
    none = spec.get("none", "none named")
    cols = spec.get("columns") or ["interventions"]
    out = []
    for t in table.to_dict("records"):
        text = _text(t, cols)
        found = [v for v, p in pats.items() if p.search(text)]
        out.append(found or [none])
    return out


def mentions(table: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    """Trials naming each value (a trial naming two counts in both), the ``none`` row, and any-of-them."""
    calls = mention_calls(table, spec)
    none = spec.get("none", "none named")
    names = list((spec.get("values") or {}).keys()) + [none]
    rows = [{"named": v, "trials": sum(v in c for c in calls)} for v in names]
    combos = pd.Series(["; ".join(c) for c in calls if len(c) > 1], dtype=object).value_counts()
    rows += [{"named": f"both/several: {k}", "trials": int(v)} for k, v in combos.items()]
    out = pd.DataFrame(rows)
    out["share"] = [f"{v / max(len(table), 1):.0%}" for v in out["trials"]]
    return out


def _years(age: Any) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day)", str(age or ""), re.I)
    if not m:
        return None
    per = {"year": 1, "month": 1 / 12, "week": 1 / 52, "day": 1 / 365}[m.group(2).lower()]
    return float(m.group(1)) * per


def ages(table: pd.DataFrame, child_below: int = 18) -> pd.DataFrame:
    """Age groups eligible (the registry's std_ages) and trials open to children (minimum age below ``child_below``)."""
    std = [set(v or []) for v in table["std_ages"]]
    min_age = [_years(a) for a in table["minimum_age"]]
    children = [("CHILD" in s) or (m is not None and m < child_below) for s, m in zip(std, min_age)]
    rows = [("children eligible (CHILD, or minimum age below %d)" % child_below, sum(children)),
            ("children only (CHILD, no ADULT)", sum(1 for s in std if s == {"CHILD"})),
            ("adults, no children", sum(1 for s, c in zip(std, children) if s and not c)),
            ("older adults eligible (OLDER_ADULT)", sum("OLDER_ADULT" in s for s in std)),
            ("age groups not given", sum(1 for s, m in zip(std, min_age) if not s and m is None))]
    known = [m for m in min_age if m is not None]
    out = pd.DataFrame(rows, columns=["age group", "trials"])
    out["share"] = [f"{v / max(len(table), 1):.0%}" for v in out["trials"]]
    out.attrs["median_minimum_age"] = float(np.median(known)) if known else None
    return out


def status(table: pd.DataFrame) -> pd.DataFrame:
    """Trials by overall status, largest first."""
    counts = pd.Series([v or NOT_GIVEN for v in table["status"]], dtype=object).value_counts()
    return pd.DataFrame({"status": [str(k).lower().replace("_", " ") for k in counts.index],
                         "trials": [int(v) for v in counts.values],
                         "share": [f"{v / max(len(table), 1):.0%}" for v in counts.values]})


def countries(table: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """Trials by country (a multinational trial counts in each), the ``top`` countries, then the rest."""
    lists = [list(v or []) for v in table["countries"]]
    counts = pd.Series([c for cs in lists for c in cs], dtype=object).value_counts()
    shown = counts.iloc[:top]
    rows = [{"country": k, "trials": int(v)} for k, v in shown.items()]
    if len(counts) > top:
        rows.append({"country": f"{len(counts) - top} other countries", "trials": int(counts.iloc[top:].sum())})
    rows.append({"country": "multinational (2 or more countries)", "trials": sum(len(c) > 1 for c in lists)})
    rows.append({"country": NOT_GIVEN, "trials": sum(not c for c in lists)})
    return pd.DataFrame(rows)


def start_year(table: pd.DataFrame) -> pd.Series:
    """The start year of each trial (Int64; missing where the registry gives no start date)."""
    return pd.Series([int(str(d)[:4]) if str(d or "")[:4].isdigit() else None for d in table["start_date"]],
                     dtype="Int64")


def start_years(table: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Trials started per year (rows), by ``by``'s values (columns, multi-valued counted in each), with totals."""
    years = start_year(table)
    if not by:
        counts = years.value_counts().sort_index()
        return pd.DataFrame({"start year": list(counts.index), "trials": [int(v) for v in counts.values]})
    pairs = [(y, v) for y, x in zip(years, table[by]) if pd.notna(y) for v in _values(x)]
    frame = pd.DataFrame(pairs, columns=["start year", by])
    out = pd.crosstab(frame["start year"], frame[by])
    out["all trials"] = years.value_counts().reindex(out.index).fillna(0).astype(int)
    out = out.reset_index()
    out.columns.name = None
    return out


def publications(table: pd.DataFrame, links: pd.DataFrame | None, record_ids: Iterable[str] | None = None
                 ) -> pd.DataFrame:
    """Registered trials with any publication linked, by status; ``record_ids``: the review's records counted."""
    from ..sources.links import LINK_COLUMNS, trial_publications
    links = links if links is not None else pd.DataFrame(columns=LINK_COLUMNS)
    per = trial_publications(table, links, record_ids)
    per["status"] = [str(s or NOT_GIVEN).lower().replace("_", " ") for s in per["status"]]
    out = per.groupby("status").agg(trials=("nct_id", "size"),
                                    with_publication=("n_reports", lambda s: int((s > 0).sum())))
    out["without_publication"] = out["trials"] - out["with_publication"]
    out = out.sort_values("trials", ascending=False).reset_index()
    total = pd.DataFrame([{"status": "all trials", "trials": len(per),
                           "with_publication": int((per["n_reports"] > 0).sum()),
                           "without_publication": int((per["n_reports"] == 0).sum())}])
    return pd.concat([total, out], ignore_index=True).rename(columns={
        "with_publication": "with a publication linked", "without_publication": "no publication linked"})


def table_specs(protocol: Any) -> list[dict]:
    """The protocol's ``report: registry_tables`` (checked: each has a known kind and a title)."""
    report = protocol.section("report") if hasattr(protocol, "section") else (protocol or {}).get("report")
    specs = (report or {}).get("registry_tables") or []
    where = f"protocol {getattr(protocol, 'path', '')}".strip()
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("kind") not in TABLE_KINDS or not spec.get("title"):
            raise ProtocolError(f"{where}: report.registry_tables entries need a kind ({', '.join(TABLE_KINDS)}) "
                                f"and a title, got {spec!r}", source=where)
    return specs


def registry_table(table: pd.DataFrame, spec: Mapping[str, Any], links: pd.DataFrame | None = None,
                   record_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One table of the registry section, by the spec's kind (see the module docstring)."""
    kind = spec["kind"]
    if kind == "crosstab":
        return crosstab(table, spec["rows"], spec["columns"])
    if kind == "basket":
        return basket(table, spec["field"])
    if kind == "phases":
        return phases(table)
    if kind == "trial_design":
        return trial_design(table, spec)
    if kind == "enrollment":
        return enrollment(table, spec.get("by", "phases"), int(spec.get("small", 20)))
    if kind == "mentions":
        return mentions(table, spec)
    if kind == "ages":
        return ages(table, int(spec.get("child_below", 18)))
    if kind == "status":
        return status(table)
    if kind == "countries":
        return countries(table, int(spec.get("top", 15)))
    if kind == "start_years":
        return start_years(table, spec.get("by"))
    return publications(table, links, record_ids)


def registry_tables(table: pd.DataFrame, protocol: Any, links: pd.DataFrame | None = None,
                    record_ids: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Every table the protocol's ``report: registry_tables`` declares, by title, in its order."""
    out = {spec["title"]: registry_table(table, spec, links, record_ids) for spec in table_specs(protocol)}
    if any(s["kind"] == "enrollment" for s in table_specs(protocol)):
        out["planned enrollment, distribution"] = enrollment_distribution(table)
    return out


def registry_gap_facts(table: pd.DataFrame, protocol: Any, links: pd.DataFrame | None = None,
                       record_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """The registry's numbers behind the review's gap statements (for :func:`reviewlib.evidence.tables.gaps`).

    Returns
    -------
    dict
        ``n_trials``; ``enrollment`` (median, n_with, at_most_small, small); ``registered_design``
        (randomised, comparator, single_arm, none_stated, and how many of each from text);
        ``ages`` (children_eligible); ``status`` (counts by status, lower case); ``publications``
        (with_publication, completed, completed_without_publication); and for every
        ``mentions`` table, under its ``gap`` key (else its title), value -> trials.
    """
    specs = table_specs(protocol)
    facts: dict[str, Any] = {"n_trials": int(len(table))}
    n = _enrollment(table).dropna()
    small = next((int(s.get("small", 20)) for s in specs if s["kind"] == "enrollment"), 20)
    facts["enrollment"] = {"median": float(n.median()) if len(n) else None, "n_with": int(len(n)),
                           "small": small, "at_most_small": int((n <= small).sum())}
    dspec = next((s for s in specs if s["kind"] == "trial_design"), {})
    calls = design_calls(table, dspec)
    facts["registered_design"] = {k: int(calls[k].eq(True).sum()) for k in ("randomised", "comparator", "single_arm")}
    facts["registered_design"].update({f"{k}_from_text": int((calls[k].eq(True) & calls[f"{k}_from"].eq("summary text")).sum())
                            for k in ("randomised", "comparator", "single_arm")})
    facts["registered_design"]["none_stated"] = int((~(calls["randomised"].eq(True) | calls["comparator"].eq(True)
                                            | calls["single_arm"].eq(True))).sum())
    child = next((int(s.get("child_below", 18)) for s in specs if s["kind"] == "ages"), 18)
    facts["ages"] = {"children_eligible": int(ages(table, child).iloc[0]["trials"])}
    facts["status"] = {str(k).lower(): int(v) for k, v in
                       pd.Series([s or NOT_GIVEN for s in table["status"]], dtype=object).value_counts().items()}
    from ..sources.links import LINK_COLUMNS, trial_publications
    per = trial_publications(table, links if links is not None else pd.DataFrame(columns=LINK_COLUMNS), record_ids)
    completed = per["status"].eq("COMPLETED")
    facts["publications"] = {"with_publication": int((per["n_reports"] > 0).sum()),
                             "completed": int(completed.sum()),
                             "completed_without_publication": int((completed & per["n_reports"].eq(0)).sum())}
    for spec in specs:
        if spec["kind"] == "mentions":
            calls_m = mention_calls(table, spec)
            names = list((spec.get("values") or {}).keys()) + [spec.get("none", "none named")]
            facts[spec.get("gap") or spec["title"]] = {v: sum(v in c for c in calls_m) for v in names}
    return facts


def informative(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the columns no row has a value in (empty, None, NaN, or 'not reported' throughout)."""
    def empty(v: Any) -> bool:
        if isinstance(v, (list, tuple)):
            return not v
        return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or \
            str(v).strip() in ("", extraction.NOT_REPORTED)
    keep = [c for c in frame.columns if not all(empty(v) for v in frame[c])]
    return frame[keep]
