"""An independent test set of real registry text: draw it, then measure the extractor on it.

The source is the 315 registered CAR-T-in-autoimmune-disease trials that ClinicalTrials.gov listed on
2026-08-22 (shared/data/registry/car-t-autoimmune-2026-08-22/trials.csv, real registry fields).

  draw     seeded random sample of 100 trials, split 75 development / 25 held back; writes the sampled
           registry rows (unmodified) and two gold sheets with empty gold columns, to be filled BY HAND
           from the registry text alone (never from reviewlib's extractor).
  measure  builds a records table from the sampled rows (title = BriefTitle; abstract = BriefSummary,
           then the registry's Conditions and Interventions as it gives them), runs reviewlib's extractor
           with the default protocol's schema on the text, and prints per-field accuracy against the
           hand-written gold, beside a naive baseline (per field the most frequent gold value of the
           development part, and the first synonym of the protocol vocabulary found anywhere in the text);
           also how many trials the extractor gave a value for (not "not reported") and how many of those
           were right.

Run:
  python benchmarks/registry_testset.py draw [--source PATH]       (once; refuses to overwrite)
  python benchmarks/registry_testset.py measure --part dev         (development part)
  python benchmarks/registry_testset.py measure --part heldback    (held back: once, at the end)
  python benchmarks/registry_testset.py rules --part dev           (the screening rules on registry text)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE = ROOT.parent / "shared" / "data" / "registry" / "car-t-autoimmune-2026-08-22" / "trials.csv"
SET_DIR = ROOT / "tests" / "data" / "registry_testset"
ROWS = SET_DIR / "registry_rows.csv"
SEED = 20261201
SAMPLE = 100
DEV = 75
GOLD_COLUMNS = ["nct_id", "disease", "target", "cell_source", "lymphodepletion_named", "lymphodepletion",
                "design", "age_group", "n_patients", "notes"]
# gold column -> extractor field it is compared with
SCORED = {"disease": "disease", "target": "target", "cell_source": "cell_source",
          "lymphodepletion_named": "lymphodepletion", "lymphodepletion": "lymphodepletion",
          "design": "design", "age_group": "age_group", "n_patients": "n_patients"}


def draw(source: Path, out_dir: Path, seed: int = SEED) -> None:
    """Sample the trials and write the (unfilled) gold sheets; refuses to overwrite a drawn set."""
    dev_path, held_path = out_dir / "dev.csv", out_dir / "heldback.csv"
    if dev_path.exists() or held_path.exists():
        raise SystemExit(f"{out_dir} already holds a drawn set: the gold is written by hand, not redrawn")
    trials = pd.read_csv(source, dtype=str, keep_default_na=False)
    sample = trials.sample(n=SAMPLE, random_state=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample.sort_values("NCTId").to_csv(out_dir / "registry_rows.csv", index=False, encoding="utf-8")
    for path, part in ((dev_path, sample.iloc[:DEV]), (held_path, sample.iloc[DEV:])):
        gold = pd.DataFrame({c: "" for c in GOLD_COLUMNS}, index=range(len(part)))
        gold["nct_id"] = sorted(part["NCTId"])
        gold.to_csv(path, index=False, encoding="utf-8")
    print(f"drew {SAMPLE} of {len(trials)} trials with seed {seed}: {DEV} dev, {SAMPLE - DEV} held back -> {out_dir}")


# -- measurement -------------------------------------------------------------------------------
def records_of(rows: pd.DataFrame) -> pd.DataFrame:
    """A records table from registry rows: the text a reader of the registry entry sees."""
    def abstract(r: pd.Series) -> str:
        parts = [r["BriefSummary"].strip()]
        if r["Conditions"].strip():
            parts.append("Conditions: " + r["Conditions"].replace("|", "; ") + ".")
        if r["Interventions"].strip():
            parts.append("Interventions: " + r["Interventions"].replace("|", "; ") + ".")
        return " ".join(p for p in parts if p)
    return pd.DataFrame({"record_id": rows["NCTId"], "pmid": None, "title": rows["BriefTitle"],
                         "abstract": rows.apply(abstract, axis=1)})


def _values(v: str) -> set[str]:
    return {x.strip().lower() for x in str(v).split(";") if x.strip()} or {"not reported"}


def design_of(extracted: str) -> str:
    """The extractor's design value on the gold's scale (it has no 'controlled non-randomised')."""
    return "randomised" if extracted == "randomised controlled" else "single-arm"


def named_of(lymphodepletion: str) -> str:
    return "no" if lymphodepletion in ("not reported", "") else "yes"


def comparable(field: str, value: str) -> str:
    if field == "design":
        return design_of(value)
    if field == "lymphodepletion_named":
        return named_of(value)
    if field == "lymphodepletion" and value == "agents not named":
        return "not reported"  # the gold's agents column: no agent named (the protocol value added later)
    return value


def same(field: str, gold: str, got: str) -> bool:
    if field == "n_patients":
        try:
            return int(float(gold)) == int(float(got))
        except ValueError:
            return str(gold).strip() == str(got).strip()
    return _values(gold) == _values(got)


def measure(part: str, protocol: str | None = None, show_errors: bool = False) -> pd.DataFrame:
    from reviewlib.evidence import extraction as ex
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from extraction import naive_record  # the first-synonym peer of benchmarks/extraction.py

    gold = pd.read_csv(SET_DIR / f"{part}.csv", dtype=str, keep_default_na=False)
    dev_gold = pd.read_csv(SET_DIR / "dev.csv", dtype=str, keep_default_na=False)
    if (gold[[c for c in GOLD_COLUMNS if c != "notes"]] == "").any().any():
        raise SystemExit(f"{part}.csv has empty gold cells: fill them by hand first")
    rows = pd.read_csv(ROWS, dtype=str, keep_default_na=False).set_index("NCTId").loc[gold["nct_id"]].reset_index()
    records = records_of(rows)
    schema = ex.load_schema(protocol)
    ours = ex.extract(records, schema).set_index("record_id")
    naive = {r["record_id"]: naive_record(r["title"], r["abstract"], schema) for r in records.to_dict("records")}
    # the constant peer: the most frequent gold value of the development part (so held-back is not used)
    modal = {g: dev_gold[g].mode().iloc[0] for g in SCORED}
    table, errors = [], []
    for g, f in SCORED.items():
        ok_ours = ok_first = ok_modal = answered = ok_answered = 0
        for _, item in gold.iterrows():
            nct = item["nct_id"]
            got = comparable(g, ours.loc[nct, f])
            first = comparable(g, naive[nct][f])
            ok_ours += same(g, item[g], got)
            if ours.loc[nct, f] != "not reported":
                answered += 1
                ok_answered += same(g, item[g], got)
            ok_first += same(g, item[g], first)
            ok_modal += same(g, item[g], modal[g])
            if not same(g, item[g], got):
                errors.append({"nct_id": nct, "field": g, "gold": item[g], "extracted": got,
                               "evidence": ours.loc[nct].get(f"{f}_evidence")})
        n = len(gold)
        table.append({"field": g, "n": n, "reviewlib": round(ok_ours / n, 3),
                      "first_synonym": round(ok_first / n, 3), "most_frequent": round(ok_modal / n, 3),
                      "most_frequent_value": modal[g], "answered": answered,
                      "right_when_answered": round(ok_answered / answered, 3) if answered else None})
    out = pd.DataFrame(table).set_index("field")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "reviewlib", "notebooks"],
                           capture_output=True, text=True).stdout.strip()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 110)
    print(f"== registry test set, {part} part: {len(gold)} trials; extractor at commit {commit}"
          f"{' (with uncommitted changes)' if dirty else ''} ==")
    print(out.to_string())
    if show_errors:
        print(pd.DataFrame(errors).to_string())
    return out


def rules(part: str = "dev", protocol: str | None = None) -> pd.DataFrame:
    """The protocol's screening rules on the registry text of one part: every trial in the set is a
    registered trial of engineered cells in immune-mediated disease, so each exclusion is one a
    reviewer would question (the text may simply not say "CAR")."""
    from reviewlib.records import conform
    from reviewlib.screening import eligibility

    gold = pd.read_csv(SET_DIR / f"{part}.csv", dtype=str, keep_default_na=False)
    rows = pd.read_csv(ROWS, dtype=str, keep_default_na=False).set_index("NCTId").loc[gold["nct_id"]].reset_index()
    result = eligibility.apply_rules(conform(records_of(rows).assign(source="registry")),
                                     eligibility.load_rules(protocol))
    print(f"== screening rules on the registry text, {part} part: {len(result)} registered trials ==")
    print("decisions:", result["decision"].value_counts().to_dict())
    excluded = result[result["decision"] == "exclude"]
    print("exclusion reasons:", pd.Series([r for rs in excluded["reasons"] for r in rs]).value_counts().to_dict())
    print("excluded:", ", ".join(excluded["record_id"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draw", help="draw the seeded sample and write the unfilled gold sheets")
    d.add_argument("--source", type=Path, default=SOURCE)
    d.add_argument("--seed", type=int, default=SEED)
    m = sub.add_parser("measure", help="extractor accuracy against the hand-written gold")
    m.add_argument("--part", choices=["dev", "heldback"], default="dev")
    m.add_argument("--protocol", default=None, help="protocol with an extraction section (default review)")
    m.add_argument("--show-errors", action="store_true")
    r = sub.add_parser("rules", help="the protocol's screening rules on the registry text of one part")
    r.add_argument("--part", choices=["dev", "heldback"], default="dev")
    r.add_argument("--protocol", default=None)
    args = parser.parse_args(argv)
    if args.command == "draw":
        draw(args.source, SET_DIR, args.seed)
    elif args.command == "rules":
        rules(args.part, args.protocol)
    else:
        measure(args.part, args.protocol, args.show_errors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
