"""Copy every full-training result of a study into a ground-truth CSV kept in the repository.

The results folder does not survive between machines or sessions; these few-KB CSVs do, and
``galaxy-synth correlate --tables`` fits on them. Nothing is trained: only stored results are
written (``galaxy-synth correlate --save-ground-truth`` does the same after measuring).

    .venv/bin/python bench/export_ground_truth.py --results /work/runs/gz1pool --study gz1-pool \\
        --out bench/ground_truth/gz1_dev-gz1-pool.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthesis.full_training import fill_arch_keys, ground_truth_rows, merge_ground_truth_csv, open_ground_truth
from synthesis.search.storage import existing_storage_url
from synthesis.search.study import reopen_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--study", default=None)
    ap.add_argument("--storage", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    url = existing_storage_url(args.storage, Path(args.results))
    opened = reopen_study(url, args.study, Path(args.results), progress=False)
    store = open_ground_truth(url)
    trials = {t.number: t for t in opened.study.get_trials(deepcopy=False)}
    fill_arch_keys(store, opened.study.study_name, trials, opened.prepared(), opened.settings.precision)
    rows = ground_truth_rows(opened, store)
    path = merge_ground_truth_csv(rows, Path(args.out))
    print(f"{len(rows)} full trainings of study {opened.study.study_name!r} → {path}")


if __name__ == "__main__":
    main()
