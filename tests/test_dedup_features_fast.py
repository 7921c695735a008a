"""dedup_match.features with ASCII text cleaned by ``bytes.translate`` and candidate_pairs scoring each pair
of a block once (task scale5b) give exactly the features and candidate pairs the earlier versions gave,
and deduplication the same groups, audit and uncertain pairs.

The ``_old_*`` functions below are verbatim copies of ``clean_title``, ``_author_parts``,
``_normalise_journal``, ``looks_translated``, ``features``, ``candidate_pairs`` and ``_compare`` as of
commit 7da929f (before the change; names qualified);
every test compares the two on real records (tests/data, the packaged demo snapshot) and on text made
to reach every ASCII character and some Unicode whitespace.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from reviewlib.protocol import PACKAGE_DATA
from reviewlib.records import conform
from reviewlib.screening import dedup, dedup_match as m
from reviewlib.sources.pubmed_xml import read_pubmed_xml
from reviewlib.sources.readers import read_medline, read_ris

from test_dedup import _bib_records

_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")


# -- before the change (7da929f), kept as the reference -----------------------------------------
def _old_clean_title(title):
    if not isinstance(title, str):
        return ""
    text = title
    for _ in range(3 if ("[" in text or "(" in text) else 0):    # every suffix is bracketed
        new = m._TITLE_SUFFIX.sub(" ", text)
        if new == text:
            break
        text = new
    text = m.ascii_fold(text).lower().replace("&", " and ")
    text = _NON_WORD.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return "" if text in m._PLACEHOLDER or not m._LATIN.search(text) else text


def _old_author_parts(author):
    a = m.ascii_fold(str(author)).lower().strip()
    if "," in a:
        surname, given = a.split(",", 1)
    else:
        parts = a.split()
        if len(parts) > 1 and m._INITIALS.fullmatch(parts[-1]) and str(author).split()[-1].isupper():
            surname, given = " ".join(parts[:-1]), parts[-1]
        elif len(parts) > 1:
            surname, given = parts[-1], " ".join(parts[:-1])
        else:
            surname, given = a, ""
    surname_words = [w for w in _NON_WORD.sub(" ", surname).split() if w not in m._NAME_PARTICLES]
    given = _NON_WORD.sub(" ", given).replace(" ", "")
    key = surname_words[-1] if surname_words else _NON_WORD.sub("", surname)
    return key, given, (_NON_WORD.sub("", surname)[:1] or key[:1])


def _old_normalise_journal(journal):
    if not isinstance(journal, str):
        return ""
    text = _NON_WORD.sub(" ", m.ascii_fold(journal).lower().replace("&", " and "))
    return " ".join(w for w in text.split() if w not in m._STOP)


def _old_looks_translated(raw, cleaned):
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        return True
    return sum(w in m._FOREIGN for w in cleaned.split()) >= 2


def _old_features(frame):
    n = len(frame)

    def col(name):
        return frame[name].tolist() if name in frame.columns else [None] * n

    raw = col("title")
    titles = [_old_clean_title(t) for t in raw]
    alt_titles = [_old_clean_title(mm.group(1)) if isinstance(t, str) and not t.lstrip().startswith("[")
                  and (mm := m._ALT_TITLE.search(t)) and mm.start() > 10 else "" for t in raw]
    titles = [_old_clean_title(m._ALT_TITLE.sub("", t)) if a else c for t, a, c in zip(raw, alt_titles, titles)]
    years = [None if m._missing(y) else int(y) for y in col("year")]
    authors = [[_old_author_parts(str(a)) for a in al[:6] if str(a).strip()] if isinstance(al, (list, tuple)) else []
               for al in col("authors")]
    journals = [_old_normalise_journal(j) for j in col("journal")]
    kinds = [m.record_kind(p, t) for p, t in zip(col("publication_types"), titles)]
    pmids = [None if m._missing(p) or not str(p).strip() else str(p).strip() for p in col("pmid")]
    volumes = [None if v is not None and y is not None and v == str(y) else v
               for v, y in zip((m._volume(v) for v in col("volume")), years)]
    return m.Features(titles=titles, years=years, authors=authors, journals=journals,
                      volumes=volumes, pages=[m.first_page(p) for p in col("pages")],
                      issues=[m._simple(v) for v in col("issue")], kinds=kinds,
                      dois=[m.normalise_doi(d) for d in col("doi")], pmids=pmids,
                      generic=[bool(m._GENERIC.match(t)) or (0 < len(t.split()) <= 1) for t in titles],
                      alt_titles=alt_titles, last_pages=[m.last_page(p) for p in col("pages")],
                      translated=[_old_looks_translated(t, c) for t, c in zip(raw, titles)])


def _old_candidate_pairs(f, cutoff=m.WEAK_TITLE):
    """(i, j, search score) for pairs worth judging: title blocks, author blocks, shared identifiers."""
    n = len(f.titles)
    prefix = [t[:m.SEARCH_PREFIX] for t in f.titles]
    seen = set()
    blocks = defaultdict(lambda: defaultdict(list))
    for i, t in enumerate(f.titles):
        if not t:
            continue
        head, tail = m._ends(t)
        y = f.years[i]
        blocks[("t0",) + head][y].append(i)
        blocks[("t1",) + tail][y].append(i)
        if f.authors[i]:
            blocks[("a", f.authors[i][0][0])][y].append(i)
    venue = defaultdict(list)
    for i in range(n):
        if f.pages[i] and f.authors[i]:
            venue[(f.authors[i][0][0], f.volumes[i], f.pages[i])].append(i)
    for by_year in blocks.values():
        if len(by_year) == 1:
            (only,) = by_year.values()
            if len(only) == 1:
                continue                  # one record alone in its block
        years = [y for y in by_year if y is not None]
        for y in years:
            left = by_year[y]
            right = left + by_year.get(y + 1, []) + by_year.get(y - 1, []) + by_year.get(None, [])
            if len(right) < 2:
                continue
            yield from _old_compare(left, right, prefix, seen, cutoff)
        if None in by_year:
            everyone = [i for ids in by_year.values() for i in ids]
            yield from _old_compare(by_year[None], everyone, prefix, seen, cutoff)
    identifier_groups = []
    for keys in (f.dois, f.pmids):
        groups = defaultdict(list)
        for i, k in enumerate(keys):
            if k:
                groups[k].append(i)
        identifier_groups.extend(groups.values())
    for members in identifier_groups + list(venue.values()):
        if len(members) > 1:
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    pair = (members[a], members[b])
                    if pair not in seen:
                        seen.add(pair)
                        yield pair[0], pair[1], 0.0


def _old_compare(left, right, prefix, seen, cutoff):
    if len(left) * len(right) <= 16:          # small blocks: direct scoring beats a cdist call
        for i in left:
            for j in right:
                if i == j:
                    continue
                pair = (i, j) if i < j else (j, i)
                if pair in seen:
                    continue
                score = fuzz.ratio(prefix[i], prefix[j], score_cutoff=cutoff)
                if score:
                    seen.add(pair)
                    yield pair[0], pair[1], score
        return
    scores = cdist([prefix[i] for i in left], [prefix[j] for j in right], scorer=fuzz.ratio,
                   score_cutoff=cutoff, dtype=np.float32)
    for a, b in zip(*np.nonzero(scores)):
        i, j = left[a], right[b]
        if i == j:
            continue
        pair = (i, j) if i < j else (j, i)
        if pair in seen:
            continue
        seen.add(pair)
        yield pair[0], pair[1], float(scores[a, b])



# -- the inputs ---------------------------------------------------------------------------------
def _every_ascii_character():
    """Titles, names and journals holding every ASCII character, alone and between words, and Unicode spaces."""
    chars = [chr(c) for c in range(128)]
    odd = ["\u00a0", "\u2003", "\u3000", "\x1c", "\x1f", "\x85", "\u2028", "_", "__init__", "é", "ß", "Ø", "ﬁ"]
    texts = [f"Word{c}word and{c} more {c}" for c in chars + odd] + [c for c in chars + odd] + [
        f"{c}{c} CAR-T in lupus {c}" for c in chars + odd]
    authors = [[f"Mül{c}ler, A{c}B", f"de{c}Hoon MJ", f"{c}", f"O'Brien{c} K", f"Ching-yi{c} W"] for c in chars + odd]
    n = len(texts)
    return conform(pd.DataFrame({"title": texts, "journal": texts, "authors": (authors * 3)[:n],
                                 "year": [2020] * n}))


def _real_tables(data_dir):
    tables = {"demo snapshot": read_pubmed_xml(PACKAGE_DATA / "car-t-autoimmune-snapshot.xml.gz"),
              "every ASCII character": _every_ascii_character()}
    for path in sorted((data_dir / "pubmed" / "efetch").glob("*.xml")):
        tables[path.name] = read_pubmed_xml(path)
    for path in sorted((data_dir / "pubmed" / "medline").glob("*.txt")) + [data_dir / "screening" / "medline_pubmed_result2.txt"]:
        tables[path.name] = read_medline(path)
    for path in sorted((data_dir / "ris").glob("*.ris")) + [data_dir / "screening" / "zotero_same_articles.ris"]:
        tables[path.name] = read_ris(path)
    for path in sorted((data_dir / "dedup").glob("*.csv")):
        tables[path.name] = _bib_records(path)
    return tables


def test_features_equal_the_regex_version_on_real_records(data_dir):
    for name, table in _real_tables(data_dir).items():
        frame = conform(table.drop(columns=["record_id"]) if "record_id" in table.columns else table)
        m._author_parts.cache_clear()
        m._normalise_journal.cache_clear()
        new, old = asdict(m.features(frame)), asdict(_old_features(frame))
        for field in old:
            if field != "first_authors":
                assert new[field] == old[field], f"{name}: {field} differs"
        assert new["first_authors"] == [a[0][0] if a else None for a in old["authors"]], name


def test_every_ascii_character_is_cleaned_as_the_regex_cleans_it():
    for c in map(chr, range(128)):
        for text in (c, f"a{c}b", f"{c}x{c}"):
            assert m._non_word_to_space(text) == _NON_WORD.sub(" ", text), repr(text)
            assert m._non_word_dropped(text) == _NON_WORD.sub("", text), repr(text)
            assert m._collapse_spaces(text) == _SPACE.sub(" ", text).strip(), repr(text)


@pytest.mark.parametrize("name", ["demo snapshot", "zotero_same_articles.ris", "medline_pubmed_result2.txt",
                                  "cytology_database_suffixes.csv", "digital_work_errata_same_and_later_issue.csv"])
def test_deduplication_gives_the_same_groups_audit_and_uncertain_pairs(data_dir, name, monkeypatch):
    table = _real_tables(data_dir)[name]
    if name.endswith(".txt"):     # a MEDLINE export beside its RIS copies: duplicates across sources
        table = pd.concat([table, read_ris(data_dir / "screening" / "zotero_same_articles.ris")], ignore_index=True)
    new = dedup.deduplicate(table)
    monkeypatch.setattr(m, "features", _old_features)
    old = dedup.deduplicate(table)
    pd.testing.assert_frame_equal(new.records, old.records)
    pd.testing.assert_frame_equal(new.audit, old.audit)
    pd.testing.assert_frame_equal(new.uncertain, old.uncertain)
    assert (new.n_removed, new.groups) == (old.n_removed, old.groups)


def _planted_years(seed: int = 3, n: int = 3000):
    """Records in few blocks over many years, some without a year: every year pairing of the blocks."""
    import random
    rng = random.Random(seed)
    words = "car t cell therapy lupus nephritis systemic sclerosis cd19 trial remission safety".split()
    rows = []
    for i in range(n):
        title = " ".join(rng.choice(words) for _ in range(rng.randint(3, 7)))
        rows.append({"title": title.capitalize(), "year": rng.choice([None, 2018, 2019, 2020, 2021, 2023]),
                     "authors": [rng.choice(["Wang A", "Li B", "Schett G", "Müller F"])],
                     "doi": f"10.1/{rng.randint(0, n)}" if i % 7 == 0 else None})
    return conform(pd.DataFrame(rows))


def test_candidate_pairs_equal_the_earlier_version(data_dir):
    tables = dict(_real_tables(data_dir), planted=_planted_years())
    for name, table in tables.items():
        frame = conform(table.drop(columns=["record_id"]) if "record_id" in table.columns else table)
        f = m.features(frame)
        new = sorted((i, j) for i, j, _ in m.candidate_pairs(f))
        old = sorted((i, j) for i, j, _ in _old_candidate_pairs(f))
        assert new == old, name
        assert len(new) == len(set(new))
    assert len(new) > 500           # the planted set reaches cdist's blocks, not only the small ones


def test_deduplication_without_conforming_a_conformed_table_again(data_dir, monkeypatch):
    """dedup.deduplicate skips ``conform`` of a table that is conformed already (task scale5b): the same
    unique records, dtypes included, as conforming the input and the output as before."""
    tables = _real_tables(data_dir)
    tables["medline + ris"] = pd.concat([tables["medline_pubmed_result2.txt"], tables["zotero_same_articles.ris"]],
                                        ignore_index=True)
    new = {name: dedup.deduplicate(table) for name, table in tables.items()}
    monkeypatch.setattr(dedup, "_conformed", lambda frame: False)
    monkeypatch.setattr(dedup, "_table_like", lambda frame, columns: conform(pd.DataFrame(columns,
                                                                                           columns=frame.columns)))
    for name, table in tables.items():
        old = dedup.deduplicate(table)
        pd.testing.assert_frame_equal(new[name].records, old.records, obj=name)
        pd.testing.assert_frame_equal(new[name].audit, old.audit, obj=name)
    assert new["medline + ris"].n_removed > 0
