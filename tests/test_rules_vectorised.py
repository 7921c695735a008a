"""The vectorised ``apply_rules`` (issue 15) gives exactly what the record-by-record one gave.

``_old_apply_rules`` below is a verbatim copy of ``apply_rules`` / ``evaluate`` and their helpers as
of commit db6810a, before vectorisation; every test compares the two outputs row by row.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pytest

from reviewlib.protocol import PACKAGE_DATA
from reviewlib.records import conform
from reviewlib.screening import eligibility
from reviewlib.screening.eligibility import Rules, TermGroup, pattern_needles, pattern_start
from reviewlib.sources.openalex import read_openalex
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.sources.readers import read_medline, read_ris
from reviewlib.store import record_id_for


# -- the implementation before vectorisation (db6810a), kept as the reference -----------------
def _old_any_text(patterns: Iterable[re.Pattern], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def _old_any_mesh(wanted: Iterable[str], mesh: set[str]) -> bool:
    for w in wanted:
        if w.endswith("*"):
            stem = w[:-1]
            if any(m.startswith(stem) for m in mesh):
                return True
        elif w in mesh:
            return True
    return False


def _old_group_text(group: TermGroup, texts: dict[str, str]) -> str:
    return " \n ".join(texts[f] for f in group.fields if texts.get(f))


def _old_matches(group: TermGroup, texts, mesh) -> bool:
    return _old_any_text(group.patterns, _old_group_text(group, texts)) or _old_any_mesh(group.mesh, mesh)


def _old_spared(group: TermGroup, texts, mesh) -> bool:
    return (_old_any_text(group.unless_patterns, _old_group_text(group, texts))
            or _old_any_mesh(group.unless_mesh, mesh))


def _old_texts_of(row: dict[str, Any]) -> dict[str, str]:
    kw = row.get("keywords")
    return {"title": row.get("title") if isinstance(row.get("title"), str) else "",
            "abstract": row.get("abstract") if isinstance(row.get("abstract"), str) else "",
            "keywords": "; ".join(str(k) for k in kw) if isinstance(kw, list) else ""}


def _old_lower_set(value: Any) -> set[str]:
    if not isinstance(value, list):
        return set()
    return {str(v).split("/")[0].strip().strip("*").lower() for v in value if v}


def _old_evaluate(row: dict[str, Any], rules: Rules) -> tuple[str, list[str], list[str]]:
    texts = _old_texts_of(row)
    mesh = _old_lower_set(row.get("mesh_terms"))
    pubtypes = _old_lower_set(row.get("publication_types"))
    langs = _old_lower_set(row.get("language"))
    has_abstract = isinstance(row.get("abstract"), str) and bool(row.get("abstract").strip())
    reasons: list[str] = []
    fired: list[str] = []
    unsure = False

    def fire(label: str, action: str, reason: str | None) -> None:
        nonlocal unsure
        fired.append(label)
        if action == "exclude":
            if reason not in reasons:
                reasons.append(reason)
        else:
            unsure = True

    hit = sorted(pubtypes & rules.publication_types)
    if hit:
        if not pubtypes & rules.publication_types_unless:
            fire(f"publication_types:{hit[0]}", rules.publication_types_action, rules.publication_types_reason)
    if rules.languages and langs and not (langs & rules.languages):
        fire(f"languages:{','.join(sorted(langs))}", rules.languages_action, rules.languages_reason)
    year = row.get("year")
    if year is not None and not pd.isna(year):
        year = int(year)
        if (rules.year_min is not None and year < rules.year_min) or (
                rules.year_max is not None and year > rules.year_max):
            fire(f"years:{year}", rules.years_action, rules.years_reason)
    if rules.animal_only_action and "animals" in mesh and "humans" not in mesh:
        fire("animal_only", rules.animal_only_action, rules.animal_only_reason)
    for group in rules.excluding:
        if _old_matches(group, texts, mesh) and not _old_spared(group, texts, mesh):
            fire(f"excluding:{group.name}", group.action, group.reason)
    missing = [g for g in rules.required if not _old_matches(g, texts, mesh)]
    for group in missing:
        fire(f"required:{group.name}", group.action if has_abstract else "unsure", group.reason)
    if reasons:
        return "exclude", reasons, fired
    if unsure or missing or not rules.required:
        return "unsure", reasons, fired
    return "include", reasons, fired


def _old_apply_rules(records: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    out = []
    for row in records.to_dict("records"):
        rid = row.get("record_id") or record_id_for(row)
        decision, reasons, fired = _old_evaluate(row, rules)
        out.append({"record_id": rid, "decision": decision, "reasons": reasons, "fired": fired})
    return pd.DataFrame(out, columns=["record_id", "decision", "reasons", "fired"])


# -- inputs ---------------------------------------------------------------------------------------
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def rules() -> Rules:
    return eligibility.load_rules("car-t-autoimmune")


def _real_records() -> dict[str, pd.DataFrame]:
    """Real records of every reader in tests/data and the package data, plus the synthetic snapshot."""
    sets = {"synthetic snapshot": read_pubmed_xml(PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"),
            "meijboom-2021 (OpenAlex)": read_openalex(PACKAGE_DATA / "meijboom-2021" / "works_1.zip")}
    efetch = [read_pubmed_xml(p) for p in sorted((DATA / "pubmed" / "efetch").rglob("*.xml"))]
    sets["efetch fixtures"] = pd.concat(efetch, ignore_index=True)
    sets["medline and ris fixtures"] = pd.concat([read_medline(p) for p in sorted((DATA / "pubmed" / "medline").glob("*.txt"))]
                                         + [read_medline(DATA / "screening" / "medline_pubmed_result2.txt"),
                                            read_ris(DATA / "screening" / "zotero_same_articles.ris")],
                                         ignore_index=True)
    return sets


def _assert_same(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    assert len(new) == len(old)
    for col in old.columns:
        assert new[col].tolist() == old[col].tolist(), col


@pytest.mark.parametrize("name", ["synthetic snapshot", "meijboom-2021 (OpenAlex)", "efetch fixtures",
                                  "medline and ris fixtures"])
def test_same_outputs_as_the_record_by_record_rules_on_real_records(rules, name):
    records = _real_records()[name]
    assert len(records) > 5
    new = eligibility.apply_rules(records, rules)
    old = _old_apply_rules(records, rules)
    _assert_same(new, old)
    assert new["fired"].map(len).sum() > 0                 # the rules had work to do


def test_same_outputs_on_case_folding_traps_and_missing_fields(rules):
    """Characters that ``re.IGNORECASE`` pairs with ASCII letters but ``str.lower`` does not turn into
    them (long s, dotted/dotless I, Kelvin sign), empty and missing fields, non-list lists."""
    rows = [
        dict(title="CAR-T cells in ſystemic ſclerosis", abstract="Patients with SLE were treated."),
        dict(title="CAR T in lupuſ", abstract="A case of İmmune thrombocytopenia İTP treated with CD19 CAR-T."),
        dict(title="Myaſthenia: ANCA vaſculitiſ and CAR-NK", abstract="patıents with myosıtıs"),
        dict(title="\u212aidney CAR-T for lymphoma", abstract="Lymphoma patients treated with CAR \u212a cells."),
        dict(title="", abstract=""),
        dict(title=None, abstract=None, keywords=None, mesh_terms=None),
        dict(title="Chimeric antigen receptor T cells in ALL", abstract=None, keywords=["lupus", "SLE"]),
        dict(title="Rituximab in lupus", abstract="No CAR cells.", mesh_terms=["Rituximab", "Humans"]),
        dict(title="Mouse model of lupus", abstract="CAR-T cells in mice", mesh_terms=["Animals", "Mice"]),
        dict(title="Lupus 2010", abstract="CAR-T", year=2010, language=["ger"], publication_types=["Review"]),
    ]
    records = conform(pd.DataFrame(rows))
    _assert_same(eligibility.apply_rules(records, rules), _old_apply_rules(records, rules))


class _OtherEngine:
    """A compiled pattern of another engine: only ``search`` and ``pattern``, as re2's objects have."""

    def __init__(self, pattern: str):
        self._compiled = re.compile(pattern, re.IGNORECASE)
        self.pattern = pattern

    def search(self, text: str):
        return self._compiled.search(text)


class _NoSource:
    """A compiled pattern that does not tell its source: searched everywhere, without the shortcut."""

    def __init__(self, pattern: str):
        self._compiled = re.compile(pattern, re.IGNORECASE)

    def search(self, text: str):
        return self._compiled.search(text)


@pytest.mark.parametrize("engine", [_OtherEngine, _NoSource])
def test_patterns_compiled_by_another_engine_give_the_same_outputs(rules, engine):
    import copy
    other = copy.deepcopy(rules)
    for group in other.required + other.excluding:
        group.patterns = [engine(p.pattern) for p in group.patterns]
        group.unless_patterns = [engine(p.pattern) for p in group.unless_patterns]
    records = _real_records()["synthetic snapshot"]
    _assert_same(eligibility.apply_rules(records, other), _old_apply_rules(records, rules))


def test_pattern_needles_are_necessary_literals():
    assert pattern_needles(r"\bSLE\b") == (("sle",),)
    assert pattern_needles(r"(?-i:\bALL\b)") == (("all",),)
    assert pattern_needles(r"sj[oö]gren") == (("gren",), ("sj",))
    assert pattern_needles(r"tumou?rs?\b(?! necrosis)") == (("tumor", "tumour"),)
    assert pattern_needles(r"necroti[sz]ing") == (("necrotising", "necrotizing"),)
    assert pattern_start(r"(?-i:\bALL\b)") == (("ALL",), True)
    assert pattern_start(r"\bCAA?R[\s-]?T\b") == (("caar", "car"), False)
    assert pattern_start(r"a?b") == (("ab", "b"), False)                # not just "b": "ab" starts otherwise
    assert pattern_start(r"^\W*rituximab") is None
    assert pattern_needles(r"^\W*(?:rituximab|A?HSCT)\b") == (("hsct", "rituximab"),)
    assert pattern_needles(r"(?:lupus)?") is None           # optional: nothing is required
    assert pattern_needles(r"lupus|.*") is None             # one branch needs no literal
    assert pattern_needles(r"[unclosed") is None            # not stdlib syntax: search every text
    # necessary: on real abstracts, a pattern never matches a text without its needles
    records = _real_records()["meijboom-2021 (OpenAlex)"]
    texts = [t for t in records["abstract"].tolist() + records["title"].tolist() if isinstance(t, str)]
    rules = eligibility.load_rules("car-t-autoimmune")
    for group in rules.required + rules.excluding:
        for p in group.patterns + group.unless_patterns:
            needles = pattern_needles(p.pattern)
            for t in texts:
                m = p.search(t)
                if m:
                    folded = eligibility._fold(t)
                    assert all(any(n in folded for n in cond) for cond in needles or ()), (p.pattern, t[:80])
                    start = pattern_start(p.pattern)
                    if start is not None:
                        hay = t if start[1] else folded
                        assert any(hay.startswith(sp, m.start()) for sp in start[0]), (p.pattern, t[:80])


def test_same_outputs_without_pyahocorasick(rules, monkeypatch):
    """Without the Aho-Corasick package every needle is its own scan: slower, same answer."""
    import sys
    monkeypatch.setitem(sys.modules, "ahocorasick", None)      # import fails
    records = _real_records()["synthetic snapshot"]
    _assert_same(eligibility.apply_rules(records, rules), _old_apply_rules(records, rules))


@pytest.mark.parametrize("finder", ["re2 set", "automaton only"])
def test_same_outputs_with_the_re2_needle_set_and_its_fallback(rules, monkeypatch, finder):
    """The needles are found by one RE2 set per text (the Aho-Corasick automaton where RE2 cannot take a
    text, or refuses the set): the same outputs either way, characters outside the BMP included (the
    rules' own RE2 patterns cannot take a lone surrogate either: that case is the finder's test below)."""
    if finder == "automaton only":
        monkeypatch.setattr(eligibility, "_RE2_SET_MAX_CHARS", 0)
    records = _real_records()["synthetic snapshot"].copy()
    records.loc[0, "title"] = "CAR-T cells \U0001d49e in lupus nephritis"
    records.loc[1, "abstract"] = "Systemic lupus treated with CD19 chimeric antigen receptor T cells \U0001f9ea."
    _assert_same(eligibility.apply_rules(records, rules), _old_apply_rules(records, rules))


def test_needle_finder_finds_each_needle_once_in_every_engine():
    needles = ["car", "t cell", "lupus", "é-x"]
    find = eligibility._needle_finder(needles)
    text = "car car t cells in lupus; é-x"
    assert sorted(find(text)) == [0, 1, 2, 3]
    assert sorted(find("lupus only \ud800")) == [2]                          # the automaton's answer
    assert find("nothing here") == []
    assert eligibility._needle_finder(["a\nb", "lupus"])("a\nb lupus") in ([0, 1], [1, 0])
