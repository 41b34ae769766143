"""Which local storage survives parallel workers? A measurement, not a test.

Reproduces the known trap (parallel SQLite workers + queued WAITING trials, which is also how
stale-trial retries arrive) with a cheap objective, for each candidate storage:

* ``sqlite-optuna``: Optuna's RDBStorage on SQLite as it comes (only a busy timeout);
* ``sqlite-safe``: galaxy-synth's :func:`synthesis.search.storage.open_storage` (BEGIN IMMEDIATE + WAL);
* ``journal``: ``JournalStorage(JournalFileBackend(...))``.

Each run enqueues ``--trials`` trials, starts ``--workers`` processes that optimise until that many
are COMPLETE, and counts COMPLETE trials, trials that ran twice (a queued trial popped by two
workers) and errors in the workers' logs.

    .venv/bin/python bench/storage_race.py --workers 3 --trials 60 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import sys, time, optuna, warnings
warnings.simplefilter("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
kind, url, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "sqlite-optuna":
    storage = optuna.storages.RDBStorage(url, engine_kwargs={{"connect_args": {{"timeout": 60}}}})
elif kind == "sqlite-safe":
    from synthesis.search.storage import open_storage
    storage = open_storage(url)
else:
    from optuna.storages.journal import JournalFileBackend
    storage = optuna.storages.JournalStorage(JournalFileBackend(url))
study = optuna.load_study(study_name="race", storage=storage)
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    trial.set_user_attr("ran_by", trial.number)
    time.sleep(0.05)
    return x
study.optimize(objective, n_trials=3 * target, catch=(),
               callbacks=[optuna.study.MaxTrialsCallback(target, states=(optuna.trial.TrialState.COMPLETE,))])
"""


def make_storage(kind: str, folder: Path):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if kind == "journal":
        url = str(folder / "race.journal")
        return url, optuna.storages.JournalStorage(JournalFileBackend(url))
    url = f"sqlite:///{folder / 'race.db'}"
    return url, optuna.storages.RDBStorage(url)


def one_run(kind: str, workers: int, trials: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, storage = make_storage(kind, folder)
        study = optuna.create_study(study_name="race", storage=storage)
        for i in range(trials):
            study.enqueue_trial({"x": i / trials})
        script = folder / "worker.py"
        script.write_text(WORKER.format(root=str(ROOT)))
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, str(script), kind, url, str(trials)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(workers)]
        logs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - t0
        done = optuna.load_study(study_name="race", storage=storage).get_trials(deepcopy=False)
        states = [t.state.name for t in done]
        errors = [line for log in logs for line in log.splitlines() if "Error" in line or "locked" in line]
        return {"storage": kind, "workers": workers, "target": trials, "complete": states.count("COMPLETE"),
                "failed": states.count("FAIL"), "total_trials": len(done), "exit_codes": [p.returncode for p in procs],
                "error_lines": len(errors), "first_error": errors[0][:160] if errors else "", "wall_s": round(wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--storages", default="sqlite-optuna,sqlite-safe,journal")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "storage_race.json"))
    args = ap.parse_args()
    rows = []
    for kind in args.storages.split(","):
        for _ in range(args.repeats):
            row = one_run(kind, args.workers, args.trials)
            print(json.dumps(row), flush=True)
            rows.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
