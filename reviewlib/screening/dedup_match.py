"""Evidence for and against two bibliographic records being one report.

:func:`features` turns a records table into comparable per-record fields (cleaned title, author
keys, year, journal, volume, first page, issue, record kind, normalised DOI and PMID).
:func:`candidate_pairs` finds the pairs worth comparing without comparing all pairs (blocks by
first-author surname, by the title's first and by its last significant words, by identifiers;
``rapidfuzz.process.cdist`` inside each block).  :func:`judge` weighs one pair and answers
``"duplicate"`` (proven: merged), ``"uncertain"`` (close but not proven: listed for a person) or
``None`` (different), with the reasons in words.

The rules, in short (chosen on the four labelled sets of benchmarks/dedup.py, which are therefore
development data; tests/test_dedup.py pins each with a real example):

* The same PMID is one report (the store keeps one record per PMID as well).
* A *hard conflict* keeps two records apart whatever else agrees: different DOIs, different
  record kinds (journal article / conference paper / erratum / editorial; a conference paper and
  a book chapter do not conflict, proceedings are often chapters), different volumes, first pages
  more than :data:`CLOSE_PAGES` apart (unless one DOI), years more than one apart, different
  digits or roman numerals in the titles ("phase 1" / "phase 2"; unless volume and first page
  agree, a footnote mark), or a reviewer's "not duplicates" mark.
* *Venue corroboration*: the same first page and volume (or, for proceedings without volumes,
  the same first page and an agreeing venue name), or the same volume and issue when a page is
  missing.  Journal names agree by token-set similarity, word-by-word abbreviation ("Ann New
  York Acad Sci") or acronym ("ICIS").
* A title match (ratio of cleaned titles >= 95) is a duplicate with compatible first authors, the
  same year and no journal disagreement; with venue corroboration (first authors may then only
  partly agree: reversed name order, authors in another order, a shared co-author); with authors
  partly agreeing, the same year, ratio >= 97 and agreeing venues; or a year one apart with
  agreeing journal names (online first / print, proceedings printed the next year).  A title,
  journal, volume and first page that all agree (ratio >= 99) are a duplicate whatever the
  author spellings.
* First pages a few apart (a typo, "945" / "948") merge only a near-identical record: ratio >= 98,
  same first author, volume, year and journal.
* A weaker title match (ratio >= 85, or one cleaned title the start of the other: a dropped
  subtitle) needs venue corroboration and compatible authors.  One title that ends the other after a
  few words that are not a reply's or a notice's ("How did it ... <title>": a section heading) is a
  duplicate with the same first author, year and journal when one record has no volume or page to
  compare.
* *Twins* (:func:`twins`): the same long title and the same author list (two or more, given names
  agreeing) in one journal within a year outweigh different DOIs, volumes or first pages, a
  database's metadata error; titles of recurring items ("Special Section: ...", "Introduction to the
  Minitrack on ...") are never twins.
* An erratum printed in its article's issue ("Erratum to <title>", same first author, journal, year,
  volume and issue, a later first page) is part of that report (:func:`erratum_in_same_issue`); an
  erratum in a later issue is a notice of its own.  This follows the digital-work labels (one erratum
  merged, in its article's issue; five in later issues kept apart) and was written on them.
* Different titles are one report only when one is a translation (bracketed, or in another
  language) and journal, volume, full page range, first author and year agree.
* The same DOI is a duplicate when the titles agree (ratio >= 95; author spellings aside), or
  when they are close (>= 80, or one starts the other) and the authors agree; one DOI on many
  different titles (a supplement's DOI) is not evidence.
* Generic titles ("Editorial", "Editor's comments", "Introduction", ...) need the same DOI or
  the same volume, issue and first page.

Whatever a rule cannot prove but looks close (a title match held back by one of these tests) is
``"uncertain"``.  Empty titles, placeholders ("DOI", "n/a") and titles without Latin letters
never count as evidence.
"""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator
from urllib.parse import unquote

import numpy as np
import pandas as pd
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

#: Title ratio (0-100) that is a title match on its own.
STRONG_TITLE = 95.0
#: Title ratio that, with volume and first page equal, is a match; and the floor of "uncertain".
WEAK_TITLE = 85.0
#: Title ratio two records with different PMIDs (PubMed's duplicate citations) need, with the same year and first author.
PMID_CONFLICT_TITLE = 98.0
#: Title ratio below which one shared DOI is not enough.
DOI_TITLE_FLOOR = 80.0
#: Journal-name similarity (token_set_ratio) above which two journal names agree.
JOURNAL_AGREE = 85.0
#: Characters of the cleaned title used for candidate search (catches truncated and suffixed titles).
SEARCH_PREFIX = 120

_STOP = {"a", "an", "the", "of", "on", "in", "and", "for", "to", "with", "by", "at", "from", "is", "are", "or"}
_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")
_LATIN = re.compile(r"[a-z]")
# database-added title suffixes: "[Review] [45 refs]", "[Erratum appears in ...]", "(Provisional abstract)", ...
_LANGS = ("japanese|chinese|german|french|spanish|italian|russian|portuguese|polish|dutch|danish|swedish|"
          "norwegian|finnish|czech|hungarian|turkish|korean|hebrew|greek|croatian|serbian|romanian|persian")
_TITLE_SUFFIX = re.compile(
    r"\s*(?:\[(?:review|abstract|comment|editorial|letter|erratum[^\]]*|retraction[^\]]*|corrected[^\]]*|"
    r"see comments?[^\]]*|\d+\s*refs?\.?|abstract no[^\]]*|" + _LANGS + r"|article in [a-z]+)\]"
    r"|\((?:provisional abstract|structured abstract|brief record|abstract)\)"
    r"|\.?\s*\[erratum appears in[^\]]*\]?)", re.IGNORECASE)
_GENERIC = re.compile(
    r"^(?:editorial|editor s (?:comments?|note|introduction)|from the editors?|letter from the editors?|"
    r"introduction|preface|foreword|in this issue|erratum|errata|corrigendum|correction|reply|response|"
    r"comment|commentary|letter to the editor|book reviews?|announcements?|news|acknowledg(?:e)?ments?|"
    r"reviewers|guest editorial|editors comments|remarks from [a-z ]+ editor editor s comments)$")
_PLACEHOLDER = {"", "doi", "na", "n a", "none", "null", "nan", "unknown", "no title", "untitled", "title"}
_ALT_TITLE = re.compile(r"\s*\[([^\]]{20,})\]\s*\.?\s*$")   # "English title [Original-language title]"
_DOI_FIND = re.compile(r"10\.\d{1,9}/\S+", re.IGNORECASE)
_KINDS = {"conference paper": "conference", "congress": "conference", "meeting abstract": "conference",
          "conference abstract": "conference", "inproceedings": "conference", "proceedings": "conference",
          "published erratum": "erratum", "erratum": "erratum", "editorial": "editorial",
          "journal article": "article", "article": "article", "book chapter": "chapter", "book": "book",
          "technical report": "report"}
#: proceedings are often published as book chapters (LNCS, CCIS): these two kinds do not conflict
_PROCEEDINGS = {"conference", "chapter"}
_MONTHS = {m: i for i, m in enumerate(("jan feb mar apr may jun jul aug sep oct nov dec").split(), start=1)}
_PAGE = re.compile(r"^[a-z]{0,2}(\d+)[a-z]?(?:\s*-+\s*[a-z]{0,2}\d*[a-z]?)?(?:\.e\d+)?$")
_ARTICLE_NUMBER = re.compile(r"^[a-z]+\d{4,}$")
_PAGE_RANGE = re.compile(r"^[a-z]{0,2}(\d+)[a-z]?\s*-+\s*[a-z]{0,2}(\d+)[a-z]?$")
_LEADING_NUMBER = re.compile(r"^(\d+)\b")
_INITIALS = re.compile(r"[a-z]{1,3}\.?")
_DIGIT = re.compile(r"\d")
_ROMAN = re.compile(r"\b[ivx]{1,4}\b")
_EXCEL_PAGE = re.compile(r"^(\d{1,2})-([a-z]{3})$")
_NAME_PARTICLES = {"van", "der", "den", "de", "da", "di", "del", "la", "le", "von", "jr", "sr", "dos", "du"}


# -- normalisation --------------------------------------------------------------
#: The ASCII characters ``_NON_WORD`` matches (not a letter, digit or whitespace; and "_"): ASCII text
#: (most titles and names) is cleaned by ``bytes.translate`` instead of the regex (6x faster at 100,000
#: titles; the same text for every ASCII character, ``tests/test_dedup_features_fast.py``).
_ASCII_NON_WORD = bytes(c for c in range(128) if not (chr(c).isalnum() or chr(c).isspace()) or c == ord("_"))
_ASCII_NON_WORD_TO_SPACE = bytes.maketrans(_ASCII_NON_WORD, b" " * len(_ASCII_NON_WORD))


def _non_word_to_space(text: str) -> str:
    """``_NON_WORD.sub(" ", text)``."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_NON_WORD_TO_SPACE).decode("ascii")
    return _NON_WORD.sub(" ", text)


def _non_word_dropped(text: str) -> str:
    """``_NON_WORD.sub("", text)``."""
    if text.isascii():
        return text.encode("ascii").translate(None, _ASCII_NON_WORD).decode("ascii")
    return _NON_WORD.sub("", text)


def _collapse_spaces(text: str) -> str:
    """``_SPACE.sub(" ", text).strip()`` (``str.split`` and ``\\s`` know the same whitespace)."""
    return " ".join(text.split())


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def ascii_fold(text: str) -> str:
    """Accents removed ("Müller" -> "Muller"); ASCII text is returned as it is."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalise_doi(doi: Any) -> str | None:
    """A DOI in comparable form, or None when there is none.

    Finds the ``10.<registrant>/<suffix>`` part wherever it is ("https://doi.org/...",
    "doi:", "DOI 10....", "ARTN 106\\r\\n10...."), decodes URL escapes ("%28"), lower-cases it and
    drops trailing punctuation.  Placeholders ("DOI", "n/a", "") give None.

    Examples
    --------
    >>> normalise_doi("DOI 10.1016/J.CHB.2019.04.019")
    '10.1016/j.chb.2019.04.019'
    >>> normalise_doi("https://doi.org/10.1002/%28SICI%291097-0258")
    '10.1002/(sici)1097-0258'
    >>> normalise_doi("ARTN 106\\r\\n10.1016/j.im.2019.103177") , normalise_doi("DOI")
    ('10.1016/j.im.2019.103177', None)
    """
    if _missing(doi):
        return None
    text = unquote(str(doi)).strip()
    found = _DOI_FIND.search(text)
    if not found:
        return None
    doi = found.group(0).rstrip(".,;]")
    while doi.endswith(")") and doi.count(")") > doi.count("("):
        doi = doi[:-1].rstrip(".,;]")
    return doi.lower()


def clean_title(title: Any) -> str:
    """A title in comparable form: database suffixes removed, brackets of translated titles dropped,
    accents and punctuation stripped, lower case.  Placeholders give "".

    Examples
    --------
    >>> clean_title("Management of histologic abnormalities of the cervix. [Review] [43 refs]")
    'management of histologic abnormalities of the cervix'
    >>> clean_title("Surveillance after treatment (Provisional abstract)")
    'surveillance after treatment'
    """
    if not isinstance(title, str):
        return ""
    text = title
    for _ in range(3 if ("[" in text or "(" in text) else 0):    # every suffix is bracketed
        new = _TITLE_SUFFIX.sub(" ", text)
        if new == text:
            break
        text = new
    text = _collapse_spaces(_non_word_to_space(ascii_fold(text).lower().replace("&", " and ")))
    return "" if text in _PLACEHOLDER or not _LATIN.search(text) else text


@lru_cache(maxsize=65536)
def _normalise_journal(journal: str) -> str:
    text = _non_word_to_space(ascii_fold(journal).lower().replace("&", " and "))
    return " ".join(w for w in text.split() if w not in _STOP)


def normalise_journal(journal: Any) -> str:
    return _normalise_journal(journal) if isinstance(journal, str) else ""


def journals_agree(a: str, b: str) -> bool:
    """Two normalised journal names name one journal (also an abbreviation of the other, word by word)."""
    if a == b:
        return True
    if fuzz.token_set_ratio(a, b) >= JOURNAL_AGREE:
        return True
    wa, wb = a.split(), b.split()
    for short, long_ in ((wa, wb), (wb, wa)):
        if _abbreviates(short, long_):
            return True
    # an acronym: "ICIS: Transforming Society ..." / "International Conference on Information Systems"
    for words, other in ((wa, wb), (wb, wa)):
        initials = "".join(w[0] for w in other if not w.isdigit())
        if len(initials) >= 3 and initials in words:
            return True
    return False


def _abbreviates(short: list[str], long_: list[str]) -> bool:
    """Each word of ``short`` starts a word of ``long_``, in order ("ann new york acad sci")."""
    if not short or len(short) > len(long_):
        return False
    k = 0
    for w in short:
        while k < len(long_) and not long_[k].startswith(w):
            k += 1
        if k == len(long_):
            return False
        k += 1
    return True


def first_page(pages: Any) -> str | None:
    """The first page as digits, or None when the field is not a page range ("Suppl-29", "nan").

    Excel-damaged ranges ("01-Sep" for 1-9) are read back.
    """
    if _missing(pages):
        return None
    text = str(pages).strip().lower().replace("--", "-").replace("\u2013", "-")
    m = _EXCEL_PAGE.match(text)
    if m and m.group(2) in _MONTHS:
        return str(int(m.group(1)))
    if _ARTICLE_NUMBER.match(text):      # an article number ("e12724", "a1754"), not a page
        return None
    m = _PAGE.match(text)
    return str(int(m.group(1))) if m else None


def last_page(pages: Any) -> str | None:
    """The last page of a range as digits ("527-32" gives 527 + "32" -> 532), or None."""
    if _missing(pages):
        return None
    m = _PAGE_RANGE.match(str(pages).strip().lower())
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    if len(last) < len(first):
        last = first[:len(first) - len(last)] + last
    return str(int(last))


_FOREIGN = set("der die das und zum zur fur von des den im mit bei auf les du et sur pour dans avec aux une el los "
               "las del por para con una il della di delle nel och av een het em da do dos com uma nos".split())


def looks_translated(raw: Any, cleaned: str) -> bool:
    """A MEDLINE-style translated title ("[...]") or one in another language than English (two or more
    common German/French/Spanish/Italian/Portuguese/Dutch/Swedish function words)."""
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        return True
    return sum(map(_FOREIGN.__contains__, cleaned.split())) >= 2


def _simple(value: Any) -> str | None:
    if _missing(value):
        return None
    text = str(value).strip().lower()
    if text in ("", "nan", "none", "unknown", "n/a"):
        return None
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text


def _volume(value: Any) -> str | None:
    """The volume's leading number ("174 AISC" and "174" agree), else the text."""
    text = _simple(value)
    if text is None:
        return None
    m = _LEADING_NUMBER.match(text)
    return m.group(1) if m else text


def record_kind(publication_types: Any, title: str) -> str | None:
    """article / conference / erratum / editorial / chapter / book / report, or None if unknown."""
    if title.startswith(("erratum", "correction to", "corrigendum")):
        return "erratum"
    kinds = set()
    for t in publication_types if isinstance(publication_types, (list, tuple)) else []:
        k = _KINDS.get(str(t).strip().lower())
        if k:
            kinds.add(k)
    for k in ("erratum", "conference", "editorial", "chapter", "book", "report", "article"):
        if k in kinds:
            return k
    return None


@lru_cache(maxsize=262144)
def _author_parts(author: str) -> tuple[str, str, str]:
    """(surname key, given/initials, the surname's first letter) of one author: "Wu, C Y", "Wu CY", "Ching-yi W"."""
    a = ascii_fold(str(author)).lower().strip()
    if "," in a:
        surname, given = a.split(",", 1)
    else:
        parts = a.split()
        if len(parts) > 1 and _INITIALS.fullmatch(parts[-1]) and str(author).split()[-1].isupper():
            surname, given = " ".join(parts[:-1]), parts[-1]
        elif len(parts) > 1:
            surname, given = parts[-1], " ".join(parts[:-1])
        else:
            surname, given = a, ""
    surname_words = [w for w in _non_word_to_space(surname).split() if w not in _NAME_PARTICLES]
    given = _non_word_to_space(given).replace(" ", "")
    bare = _non_word_dropped(surname)
    key = surname_words[-1] if surname_words else bare
    return key, given, (bare[:1] or key[:1])


def _parts_of(authors: Any) -> list[tuple[str, str, str]]:
    """:func:`_author_parts` of a record's first six authors (blank ones skipped)."""
    if not isinstance(authors, (list, tuple)):
        return []
    return [_author_parts(str(a)) for a in authors[:6] if str(a).strip()]


def _first_author(authors: Any) -> str | None:
    """``_parts_of(authors)[0][0]`` (the first author's surname key), or None without authors."""
    if isinstance(authors, (list, tuple)):
        for a in authors[:6]:
            text = str(a)
            if text.strip():
                return _author_parts(text)[0]
    return None


class AuthorParts(Sequence):
    """Each record's :func:`_parts_of`, worked out when first asked for: blocking needs only the first
    author's key (:attr:`Features.first_authors`), judging a few thousand pairs the others (task scale5b:
    129,000 distinct names at 100,000 records, 1.2 s, most never compared)."""

    def __init__(self, lists: list):
        self._lists = lists
        self._parts: dict[int, list[tuple[str, str, str]]] = {}

    def __len__(self) -> int:
        return len(self._lists)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self._lists)
        parts = self._parts.get(i)
        if parts is None:
            parts = self._parts[i] = _parts_of(self._lists[i])
        return parts

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None


@dataclass
class Features:
    """Per-record comparable fields (lists aligned with the records table).

    ``authors`` may be an :class:`AuthorParts` (a sequence computed on demand); ``first_authors``, when
    given, is ``[a[0][0] if a else None for a in authors]``."""

    titles: list[str]
    years: list[int | None]
    authors: "list[list[tuple[str, str, str]]] | AuthorParts"
    journals: list[str]
    volumes: list[str | None]
    pages: list[str | None]
    issues: list[str | None]
    kinds: list[str | None]
    dois: list[str | None]
    pmids: list[str | None]
    generic: list[bool]
    alt_titles: list[str]
    last_pages: list[str | None]
    translated: list[bool]
    first_authors: list[str | None] | None = None


def features(frame: pd.DataFrame) -> Features:
    """Comparable fields of every record (``volume``, ``issue``, ``pages`` are used when present)."""
    n = len(frame)

    def col(name: str) -> list:
        return frame[name].tolist() if name in frame.columns else [None] * n

    raw = col("title")
    titles = [clean_title(t) for t in raw]
    alt_titles = [clean_title(m.group(1)) if isinstance(t, str) and not t.lstrip().startswith("[")
                  and (m := _ALT_TITLE.search(t)) and m.start() > 10 else "" for t in raw]
    titles = [clean_title(_ALT_TITLE.sub("", t)) if a else c for t, a, c in zip(raw, alt_titles, titles)]
    years = [None if _missing(y) else int(y) for y in col("year")]
    author_lists = col("authors")
    authors = AuthorParts(author_lists)
    first_authors = [_first_author(al) for al in author_lists]
    journals = [normalise_journal(j) for j in col("journal")]
    kinds = [record_kind(p, t) for p, t in zip(col("publication_types"), titles)]
    pmids = [None if _missing(p) or not str(p).strip() else str(p).strip() for p in col("pmid")]
    volumes = [None if v is not None and y is not None and v == str(y) else v      # a year in the volume field
               for v, y in zip((_volume(v) for v in col("volume")), years)]
    return Features(titles=titles, years=years, authors=authors, journals=journals,
                    volumes=volumes, pages=[first_page(p) for p in col("pages")],
                    issues=[_simple(v) for v in col("issue")], kinds=kinds,
                    dois=[normalise_doi(d) for d in col("doi")], pmids=pmids,
                    generic=[bool(t) and (" " not in t or bool(_GENERIC.match(t))) for t in titles],   # one word, or generic
                    alt_titles=alt_titles, last_pages=[last_page(p) for p in col("pages")],
                    translated=[looks_translated(t, c) for t, c in zip(raw, titles)], first_authors=first_authors)


# -- candidate pairs ----------------------------------------------------------------
def _ends(title: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The first two and the last two significant words of a title (all words if none is significant)."""
    words = title.split()
    head = [w for w in words[:12] if w not in _STOP][:2]
    tail = [w for w in words[-12:] if w not in _STOP][-2:]
    if not head:
        head, tail = words[:2], words[-2:]
    return tuple(head), tuple(tail)


def candidate_pairs(f: Features, cutoff: float = WEAK_TITLE) -> Iterator[tuple[int, int, float]]:
    """(i, j, search score) for pairs worth judging: title blocks, author blocks, shared identifiers."""
    n = len(f.titles)
    prefix = [t[:SEARCH_PREFIX] for t in f.titles]
    seen: set[tuple[int, int]] = set()
    firsts = f.first_authors if f.first_authors is not None else [a[0][0] if a else None for a in f.authors]
    blocks: dict[tuple, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, t in enumerate(f.titles):
        if not t:
            continue
        head, tail = _ends(t)
        y = f.years[i]
        blocks[("t0",) + head][y].append(i)
        blocks[("t1",) + tail][y].append(i)
        if firsts[i] is not None:
            blocks[("a", firsts[i])][y].append(i)
    venue: dict[tuple, list[int]] = defaultdict(list)
    for i in range(n):
        if f.pages[i] and firsts[i] is not None:
            venue[(firsts[i], f.volumes[i], f.pages[i])].append(i)
    for by_year in blocks.values():
        if len(by_year) == 1:
            (only,) = by_year.values()
            if len(only) == 1:
                continue                  # one record alone in its block
        yield from _block_pairs(by_year, prefix, seen, cutoff)
    identifier_groups = []
    for keys in (f.dois, f.pmids):
        groups: dict[str, list[int]] = defaultdict(list)
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


def _block_pairs(by_year: dict, prefix: list[str], seen: set, cutoff: float) -> Iterator[tuple[int, int, float]]:
    """The pairs of one block whose years are at most one apart (or one unknown) and whose titles match.

    Each pair of records is compared once: a year with itself (one list given to ``cdist`` as both
    sides, which rapidfuzz scores as a triangle: half the work), a year with the next one, the records
    without a year with themselves and with every other.  (Before task scale5b each year was compared
    with the one before, itself, the next and the unknown ones, so most pairs were scored twice: the
    same pairs are found.)"""
    years = [y for y in by_year if y is not None]
    for y in years:
        left = by_year[y]
        yield from _compare_within(left, prefix, seen, cutoff)
        after = by_year.get(y + 1)
        if after:
            yield from _compare(left, after, prefix, seen, cutoff)
    unknown = by_year.get(None)
    if unknown:
        yield from _compare_within(unknown, prefix, seen, cutoff)
        others = [i for y in years for i in by_year[y]]
        if others:
            yield from _compare(unknown, others, prefix, seen, cutoff)


def _compare_within(ids: list[int], prefix: list[str], seen: set, cutoff: float) -> Iterator[tuple[int, int, float]]:
    """``_compare(ids, ids, ...)`` with each pair scored once."""
    if len(ids) < 2:
        return
    if len(ids) * len(ids) <= 16:
        yield from _compare(ids, ids, prefix, seen, cutoff)
        return
    titles = [prefix[i] for i in ids]
    scores = cdist(titles, titles, scorer=fuzz.ratio, score_cutoff=cutoff, dtype=np.float32)   # a triangle
    for a, b in zip(*np.nonzero(scores)):
        if a >= b:
            continue
        i, j = ids[a], ids[b]
        pair = (i, j) if i < j else (j, i)
        if pair in seen:
            continue
        seen.add(pair)
        yield pair[0], pair[1], float(scores[a, b])


def _compare(left, right, prefix, seen, cutoff):
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


# -- judging a pair ---------------------------------------------------------------------
def authors_agree(a: list[tuple[str, str, str]], b: list[tuple[str, str, str]]) -> str | None:
    """'same' (first surnames equal), 'partial' (reversed name order or a shared co-author),
    'different', or None when a record has no authors."""
    if not a or not b:
        return None
    (sa, ga, fa), (sb, gb, fb) = a[0], b[0]
    if sa and sa == sb:
        return "same"
    # reversed order: "Tong, H" vs "Hua, T", "Wu CY" vs "Ching-yi W"; a surname given as a forename:
    # "Wendel, S B" vs "Brismar, Wendel S"
    if fa and fb and ga and gb and fa == gb[0] and fb == ga[0]:
        return "partial"
    if sa and (sa == gb or sa in gb.split()) or sb and (sb == ga or sb in ga.split()):
        return "partial"
    if sa and sb and len(sa) > 4 and fuzz.ratio(sa, sb) >= 85:      # "Hiess" / "Hiessl"
        return "partial"
    all_a, all_b = {s for s, _, _ in a}, {s for s, _, _ in b}
    if sa in all_b and sb in all_a:                                  # the same authors in another order
        return "partial"
    rest_a = {s for s, _, _ in a[1:] if len(s) > 1}
    rest_b = {s for s, _, _ in b[1:] if len(s) > 1}
    if rest_a & rest_b:
        return "partial"
    return "different"


def _numbers(title: str) -> tuple[str, set[str]]:
    """The title's digits in order ("CO 2" and "CO2", "10 000" and "10000" agree) and its roman numerals."""
    return "".join(_DIGIT.findall(title)), set(_ROMAN.findall(title))


#: First pages this close may be one article's typo ("945-948" / "948-961"); only a near-identical record may merge.
CLOSE_PAGES = 10


def pages_close(i: int, j: int, f: Features) -> bool:
    a, b = f.pages[i], f.pages[j]
    return bool(a and b) and a != b and abs(int(a) - int(b)) <= CLOSE_PAGES


#: Conflicts a database's metadata error can explain: waived for :func:`twins`.
_WAIVED_FOR_TWINS = ("DOIs differ", "volumes differ", "first pages differ")
#: Words that make a title containing another title a different item (a reply, a comment, a notice).
_RESPONSE_WORDS = re.compile(r"\b(?:reply|replies|response|respond|responses|comments?|commentary|rejoinder|"
                             r"erratum|errata|correction|corrigendum|retraction|retracted|discussion|authors?|"
                             r"re|letter|review|notice|concern)\b")
#: Titles of items that recur, issue after issue or year after year, under the same title and editors.
_RECURRING = re.compile(r"^(?:introduction to|introducing|special (?:section|issue|theme|focus)|minitrack|mini track|"
                        r"track|editorial|editor s|editors|guest editor|preface|foreword|call for|in memoriam|"
                        r"reviewers|acknowledg|annual|welcome|message from|report of|report from|news)\b")
#: Significant words a title needs before two identical titles can outweigh conflicting identifiers.
TWIN_TITLE_WORDS = 5


def twins(i: int, j: int, f: Features) -> bool:
    """The same long title and the same author list (two or more authors, given names agreeing) in one
    journal, within a year, of one kind: one paper whose DOI, volume or pages a database got wrong.

    Such a pair survives "DOIs differ", "volumes differ" and "first pages differ" (a digital-work pair:
    "Sponsorship and IT vendor management of projects", Liu & Yetton, J Inf Technol 24(1) and 25(1)).
    Different numbers in the titles, kinds, or years more than one apart still keep them apart, and so
    do titles of recurring items ("Special Section: ...", "Introduction to the Minitrack on ...": the same
    editors under the same title each year).
    """
    ti, tj = f.titles[i], f.titles[j]
    if not ti or ti != tj or f.generic[i] or _RECURRING.match(ti) or len([w for w in ti.split() if w not in _STOP]) < TWIN_TITLE_WORDS:
        return False
    ai, aj = f.authors[i], f.authors[j]
    if len(ai) < 2 or len(ai) != len(aj):
        return False
    for (si, gi, _), (sj, gj, _) in zip(ai, aj):
        if si != sj or not gi or not gj or gi[0] != gj[0]:
            return False
    if not (f.journals[i] and f.journals[j] and journals_agree(f.journals[i], f.journals[j])):
        return False
    if f.kinds[i] != f.kinds[j]:
        return False
    return f.years[i] is not None and f.years[j] is not None and abs(f.years[i] - f.years[j]) <= 1


_ERRATUM_PREFIX = re.compile(r"^(?:erratum|errata|corrigendum|correction)(?: to)?\s+")
#: Conflicts an erratum printed in its article's issue has with it by nature.
_WAIVED_FOR_ERRATA = ("DOIs differ", "first pages differ", "kinds differ (erratum / article)",
                      "kinds differ (article / erratum)")


def erratum_in_same_issue(i: int, j: int, f: Features) -> bool:
    """An erratum of one article printed in the same issue, after it: part of the report as published.

    "Erratum to <the article's title>" (title ratio >= 95 once "Erratum to" is dropped), the same first
    author, journal, year, volume and issue, and a later first page.  An erratum in a later issue stays
    a record of its own (a notice published afterwards), as the digital-work labels keep it (5 of 5);
    the one erratum they merge with its article is in that article's issue (J Inf Technol 33(2), 171).
    """
    for e, a in ((i, j), (j, i)):
        if f.kinds[e] == "erratum" and f.kinds[a] in ("article", None):
            break
    else:
        return False
    stripped = _ERRATUM_PREFIX.sub("", f.titles[e])
    if not f.titles[a] or stripped == f.titles[e] or fuzz.ratio(stripped, f.titles[a]) < STRONG_TITLE:
        return False
    if authors_agree(f.authors[e], f.authors[a]) != "same":
        return False
    if not (f.journals[e] and f.journals[a] and journals_agree(f.journals[e], f.journals[a])):
        return False
    if f.years[e] is None or f.years[e] != f.years[a]:
        return False
    if not (f.volumes[e] and f.volumes[e] == f.volumes[a] and f.issues[e] and f.issues[e] == f.issues[a]):
        return False
    return bool(f.pages[e] and f.pages[a]) and int(f.pages[e]) > int(f.pages[a])


def _waived(conflict: str | None, i: int, j: int, f: Features) -> str | None:
    """Why the field conflicts of a pair do not count (a database's error, an erratum printed with its
    article), or None: every conflict the pair has must be one the rule explains."""
    if conflict in _WAIVED_FOR_TWINS and twins(i, j, f) and _field_conflict(i, j, f, _WAIVED_FOR_TWINS) is None:
        return (f"title and all {len(f.authors[i])} authors the same in one journal; {conflict} "
                "(one database's error?)")
    if conflict in _WAIVED_FOR_ERRATA and erratum_in_same_issue(i, j, f) \
            and _field_conflict(i, j, f, _WAIVED_FOR_ERRATA) is None:
        return f"an erratum printed in its article's issue ({f.volumes[i]}({f.issues[i]})); {conflict}"
    return None


def hard_conflict(i: int, j: int, f: Features) -> str | None:
    """Why two records cannot be one report, or None."""
    why = _field_conflict(i, j, f)
    if why and _waived(why, i, j, f):
        return None
    return why


def _field_conflict(i: int, j: int, f: Features, skip: tuple[str, ...] = ()) -> str | None:
    """The first field that keeps two records apart, or None; conflicts named in ``skip`` are passed over."""
    if f.dois[i] and f.dois[j] and f.dois[i] != f.dois[j] and "DOIs differ" not in skip:
        return "DOIs differ"
    if f.kinds[i] and f.kinds[j] and f.kinds[i] != f.kinds[j] and {f.kinds[i], f.kinds[j]} != _PROCEEDINGS:
        why = f"kinds differ ({f.kinds[i]} / {f.kinds[j]})"
        if why not in skip:
            return why
    if f.years[i] is not None and f.years[j] is not None and abs(f.years[i] - f.years[j]) > 1:
        return "years differ by more than one"
    if f.volumes[i] and f.volumes[j] and f.volumes[i] != f.volumes[j] and "volumes differ" not in skip:
        return "volumes differ"
    if f.pages[i] and f.pages[j] and f.pages[i] != f.pages[j] and not (f.dois[i] and f.dois[i] == f.dois[j]) \
            and not pages_close(i, j, f) and "first pages differ" not in skip:
        return "first pages differ"       # (article numbers and page numbers of one DOI differ)
    if f.titles[i] and f.titles[j] and _numbers(f.titles[i]) != _numbers(f.titles[j]) and not (
            f.volumes[i] and f.volumes[i] == f.volumes[j] and f.pages[i] and f.pages[i] == f.pages[j]):
        return "numbers in the titles differ"     # (unless the same volume and first page: a footnote mark)
    return None


def _ends_other(ti: str, tj: str) -> bool:
    """One title is the end of the other after a few words that do not make it a reply or a notice
    ("How did it ... Upwork's CEO on how an introverted engineer learned to lead")."""
    if not ti or not tj or ti == tj:
        return False
    short, long_ = (ti, tj) if len(ti) < len(tj) else (tj, ti)
    if len(short) < 30 or not long_.endswith(" " + short):
        return False
    head = long_[: -len(short)].split()
    return 0 < len(head) <= 4 and not _RESPONSE_WORDS.search(" ".join(head))


def judge(i: int, j: int, f: Features, strong: float = STRONG_TITLE) -> tuple[str | None, str, float]:
    """("duplicate" | "uncertain" | None, the reasons in words, title ratio) for one pair."""
    ti, tj = f.titles[i], f.titles[j]
    ratio = fuzz.ratio(ti, tj) if ti and tj else 0.0
    for a, b in ((f.alt_titles[i], tj), (ti, f.alt_titles[j])):
        if a and b:
            ratio = max(ratio, fuzz.ratio(a, b))
    if f.pmids[i] and f.pmids[i] == f.pmids[j]:
        # one PubMed record (the store keeps one record per PMID too), whatever copies of it disagree on
        return "duplicate", "same PMID", 100.0
    conflict = _field_conflict(i, j, f)
    same_doi = bool(f.dois[i]) and f.dois[i] == f.dois[j]
    waived = _waived(conflict, i, j, f) if conflict else None
    if waived:
        return "duplicate", f"title {ratio:.1f}; {waived}", ratio
    if conflict:
        return None, conflict, ratio
    authors = authors_agree(f.authors[i], f.authors[j])
    if f.pmids[i] and f.pmids[j]:        # two PubMed citations: only near-identical twins merge
        if ratio >= PMID_CONFLICT_TITLE and f.years[i] is not None and f.years[i] == f.years[j] and authors == "same":
            return "duplicate", f"PMIDs differ but title {ratio:.1f}, same year, same first author", ratio
        return ("uncertain" if ratio >= WEAK_TITLE else None), "PMIDs differ", ratio
    prefix = bool(ti and tj) and min(len(ti), len(tj)) >= 20 and (ti.startswith(tj) or tj.startswith(ti))
    contained = _ends_other(ti, tj)
    same_volume = bool(f.volumes[i]) and f.volumes[i] == f.volumes[j]
    same_page = bool(f.pages[i]) and f.pages[i] == f.pages[j]
    journal_agree = bool(f.journals[i] and f.journals[j]) and journals_agree(f.journals[i], f.journals[j])
    journal_clash = bool(f.journals[i] and f.journals[j]) and not journal_agree
    venue = (same_page and (same_volume or (not f.volumes[i] and not f.volumes[j] and journal_agree))
             or same_volume and f.issues[i] is not None and f.issues[i] == f.issues[j]
             and not (f.pages[i] and f.pages[j]))
    same_year = f.years[i] is None or f.years[j] is None or f.years[i] == f.years[j]
    both_conference = f.kinds[i] == f.kinds[j] == "conference"
    if journal_clash and both_conference and same_year:
        journal_clash = False        # proceedings names vary ("AMCIS 2017 Proceedings" / "Americas Conference ...")
    why = [f"title {ratio:.1f}" + (" (one title starts the other)" if prefix and ratio < strong else "")]
    why.append({"same": "same first author", "partial": "authors partly agree", "different": "first authors differ",
                None: "authors missing"}[authors])
    why.append("same year" if same_year else "years one apart")
    if venue:
        why.append("volume and first page agree")
    if journal_clash:
        why.append("journal names differ")
    if same_doi:
        why.insert(0, "same DOI")
    reasons = "; ".join(why)
    if f.generic[i] or f.generic[j]:
        issue_ok = f.issues[i] is not None and f.issues[i] == f.issues[j]
        if same_doi or (venue and issue_ok):
            return "duplicate", "generic title; " + reasons + ("; same issue" if issue_ok else ""), ratio
        return ("uncertain" if ratio >= strong else None), "generic title; " + reasons, ratio
    if same_doi and ti and tj and ratio >= strong:
        return "duplicate", reasons, ratio          # one DOI, one title: author spellings do not matter
    if same_doi and (ratio >= DOI_TITLE_FLOOR or prefix) and authors in ("same", "partial", None):
        return "duplicate", reasons, ratio
    if same_doi and not (ti and tj) and authors in ("same", "partial"):
        return "duplicate", reasons + "; a title is missing", ratio
    if not (ti and tj):
        return None, "a title is missing", 0.0
    if pages_close(i, j, f):         # only a near-identical record of one journal volume survives a page typo
        if (ratio >= 98 and authors == "same" and same_volume and same_year and journal_agree
                and not (f.dois[i] and f.dois[j])):
            return "duplicate", reasons + f"; first pages {f.pages[i]} / {f.pages[j]} close (a typo?)", ratio
        return ("uncertain" if ratio >= strong else None), reasons + "; first pages differ slightly", ratio
    if ratio >= 99 and same_volume and same_page and same_year and journal_agree and not f.generic[i]:
        return "duplicate", reasons + "; title, journal, volume and first page agree", ratio
    if ratio >= strong:
        if authors in ("same", None) and same_year and not journal_clash:
            return "duplicate", reasons, ratio
        if authors in ("same", None, "partial") and venue:
            return "duplicate", reasons, ratio
        if authors == "partial" and same_year and ratio >= 97 and (journal_agree or both_conference):
            return "duplicate", reasons, ratio     # reversed name order or reordered authors, nothing disagrees
        if authors in ("same", None) and journal_agree:
            return "duplicate", reasons, ratio     # a year one apart (online first, proceedings printed later);
            # volumes and pages, where both have them, agree (else a hard conflict stopped it above)
        if authors in ("same", None) and not journal_clash and not f.journals[i] and not f.journals[j]:
            return "duplicate", reasons, ratio     # nothing but a year one apart disagrees, nothing to corroborate
        return "uncertain", reasons, ratio
    if ratio >= WEAK_TITLE or prefix or contained:
        if venue and authors in ("same", "partial", None) and (not journal_clash or same_volume):
            return "duplicate", reasons, ratio
        nothing_to_compare = not (f.volumes[i] or f.pages[i]) or not (f.volumes[j] or f.pages[j])
        if (contained and authors == "same" and f.years[i] is not None and f.years[i] == f.years[j]
                and journal_agree and nothing_to_compare):
            return "duplicate", reasons + "; one title ends the other (a section heading before it?)", ratio
        return "uncertain", reasons, ratio
    full_range = (same_volume and same_page and f.last_pages[i] is not None and f.last_pages[i] == f.last_pages[j]
                  and f.last_pages[i] != f.pages[i])
    if full_range and authors == "same" and same_year and journal_agree and (f.translated[i] or f.translated[j]):
        return "duplicate", reasons + "; titles differ (a translation?) but journal, volume and page range agree", \
            ratio
    return None, reasons, ratio
