"""Completed trials per hour: 1 vs 2 workers, SQLite vs PostgreSQL, in one run on one machine.

Each configuration runs a fresh study of ``--trials`` trials on the embedded procedural set
through the real command line (``galaxy-synth synth --workers N``), and is timed from the first
trial's start to the last trial's end as stored in the study (so process start-up and data
loading are not counted), and end to end (wall clock of the whole command).

    .venv/bin/python bench/worker_throughput.py --trials 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STUDY_ARGS = ["--size", "32", "--synthetic-n", "1200", "--max-samples", "600", "--val-subset", "200",
              "--max-mflops", "40", "--no-progress", "--seed", "0"]


def one_config(workers: int, storage: str | None, trials: int, results: Path, study: str) -> dict:
    import optuna
    from optuna.trial import TrialState

    cmd = [sys.executable, "-m", "galaxy_synth", "synth", "--results", str(results), "--study", study,
           "--trials", str(trials), "--workers", str(workers), *STUDY_ARGS]
    if storage:
        cmd += ["--storage", storage]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {res.stderr.strip().splitlines()[-1:]}")
    url = storage or f"sqlite:///{results / 'study.db'}"
    done = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    span = (max(t.datetime_complete for t in done if t.datetime_complete)
            - min(t.datetime_start for t in done if t.datetime_start)).total_seconds()
    logs = "".join(p.read_text(errors="replace") for p in (results / "workers").glob("*.log")) if workers > 1 else res.stderr
    return {"workers": workers, "storage": "postgresql" if storage else "sqlite", "complete": len(complete),
            "all_trials": len(done), "trial_span_s": round(span, 1), "wall_s": round(wall, 1),
            "trials_per_hour": round(3600 * len(complete) / span, 1),
            "trials_per_hour_end_to_end": round(3600 * len(complete) / wall, 1),
            "lock_errors": logs.lower().count("database is locked")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "worker_throughput.json"))
    args = ap.parse_args()
    from tests.postgres_server import throwaway_postgres

    rows = []
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as pg:
        for workers, storage in ((1, None), (2, None), (1, pg), (2, pg)):
            name = f"w{workers}-{'pg' if storage else 'sqlite'}"
            results = Path(tmp) / name
            row = one_config(workers, storage, args.trials, results, name)
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "trials": args.trials,
           "study_args": STUDY_ARGS, "command": f"python bench/worker_throughput.py --trials {args.trials}", "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
