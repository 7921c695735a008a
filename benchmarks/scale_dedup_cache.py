"""Notebook 02's deduplication on an unchanged rerun: read back (dedup_cache) against done again (issue 15).

Peer: ``registrations.deduplicate`` + ``dedup.save``, what notebook 02 did on every run before.  Both on
the same records, in the same process, after one cold call that fills the cache; CPU seconds are the
figure to compare on a shared machine.  The records are those ``benchmarks/scale.py`` builds (real
PubMed baseline records, pickled in ``$TMPDIR/reviewlib-scale/records-N.pkl``).

    nice .venv/bin/python benchmarks/scale_dedup_cache.py --size 10000 [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import pandas as pd
    from reviewlib.records import conform
    from reviewlib.screening import dedup, dedup_cache, registrations
    from reviewlib.store import ReviewStore
    source = Path(tempfile.gettempdir()) / "reviewlib-scale" / f"records-{args.size}.pkl"
    if not source.is_file():
        sys.exit(f"{source} is missing: build it with 'benchmarks/scale.py --sizes {args.size}'")
    with tempfile.TemporaryDirectory() as folder:
        store = ReviewStore(Path(folder) / "review.sqlite")
        store.add_records(conform(pd.read_pickle(source)), search_id=store.add_search("snapshot", "benchmark"))
        records = store.records()
        _, cold_cpu, cold_wall = _timed(lambda: dedup_cache.deduplicate_cached(store, records, None))
        peer, mine = [], []
        for _ in range(args.repeat):
            fresh, cpu, wall = _timed(lambda: dedup.save(store, registrations.deduplicate(records, None)) and None)
            peer.append((cpu, wall))
            cached, cpu, wall = _timed(lambda: dedup_cache.deduplicate_cached(store, records, None))
            mine.append((cpu, wall))
        again = registrations.deduplicate(records, None)
        pd.testing.assert_frame_equal(cached.records, again.records)
        pd.testing.assert_frame_equal(cached.audit, again.audit)
    best_peer, best_mine = min(peer), min(mine)
    print(f"{len(records)} records, {again.n_removed} duplicates; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  first run (deduplicate + save + cache write): CPU {cold_cpu:.2f} s, wall {cold_wall:.2f} s")
    print(f"  unchanged rerun, peer (deduplicate + save):   CPU {best_peer[0]:.2f} s, wall {best_peer[1]:.2f} s")
    print(f"  unchanged rerun, read back (dedup_cache):     CPU {best_mine[0]:.2f} s, wall {best_mine[1]:.2f} s")
    print(f"  ratio peer / read back (CPU): {best_peer[0] / best_mine[0]:.1f}x")


if __name__ == "__main__":
    main()
