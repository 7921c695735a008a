"""PubMed DataBankList trial links: the scan (only articles holding a DataBankList parsed) against the
whole-file streamed parse it replaces, on the same efetch file in the same run (issue 15, notebook 03 cold).

    nice .venv/bin/python benchmarks/links_scan.py /tmp/reviewlib-scale/records-100000.xml.gz

Prints CPU seconds of each, their ratio, and whether the two link tables are equal (they must be).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reviewlib.sources import links  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xml", type=Path, help="efetch XML (.xml or .xml.gz)")
    args = parser.parse_args()
    scan = links._scan_databank_articles
    t = time.process_time()
    links._scan_databank_articles = lambda stream: None          # the whole-file parse, as before
    try:
        whole = links.links_from_pubmed_xml(args.xml)
    finally:
        links._scan_databank_articles = scan
    before = time.process_time() - t
    t = time.process_time()
    scanned = links.links_from_pubmed_xml(args.xml)
    after = time.process_time() - t
    with links._xml_stream(args.xml)[0] as stream:               # untimed: was the scan's answer used?
        vouched = scan(stream) is not None
    print(f"{args.xml.name}: whole-file parse {before:.2f} s CPU, scan {after:.2f} s CPU (used, not "
          f"handed to the whole-file parse: {vouched}), ratio {before / after:.1f}x; "
          f"{len(scanned)} links, equal: {scanned.equals(whole)}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
