"""Cores as allotted (docs/BENCHMARKS.md §17): a study quiet, under taskset, beside busy processes; plans; full training.

Every case runs ``galaxy-synth`` as a child process in a fresh results folder and records its wall
time and its CPU time (user + system of the child and everything it waited for: ``os.wait4``).
"Busy" cases start that many CPU-bound busy-loop processes first (``python -c 'while True: pass'``)
and stop them afterwards. "Old" runs the same command from a checkout of the release before this
change (``--old DIR``, a ``git worktree``), so old and new are measured side by side in one run,
case after case, with the same data cache warmed beforehand.

    git worktree add ../base d3bebc3
    .venv/bin/python bench/cores.py --old ../base --suite small synth correlate --out docs/cores.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["synth", "--trials", "3", "--epochs", "2", "--size", "32", "--synthetic-n", "1200", "--max-samples", "1000",
         "--val-subset", "128", "--seed", "3", "--no-progress"]
QUICKSTART = ["synth", "--no-progress"]  # what `make synth` runs: the embedded set, 20 trials, the CPU defaults
CORRELATE = ["correlate", "--ground-truth", "6", "--seeds", "2", "--full-epochs", "10", "--no-progress"]
BUSY = [sys.executable, "-c", "while True: pass"]


def run_case(cmd: list[str], env: dict[str, str], cwd: Path, busy: int = 0, taskset: str | None = None) -> dict:
    """Wall and CPU seconds of one child process (and its children), with ``busy`` busy loops beside it."""
    loops = [subprocess.Popen(BUSY) for _ in range(busy)]
    try:
        full = (["taskset", "-c", taskset] if taskset else []) + cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate()
        wall = time.perf_counter() - t0
        usage = _children_cpu()
    finally:
        for p in loops:
            p.kill()
            p.wait()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(full)} exited {proc.returncode}: {err.strip()[-800:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage, 2), "stderr_first_lines": err.strip().splitlines()[:3]}


_LAST_CHILD_CPU = [0.0]


def _children_cpu() -> float:
    """CPU seconds of children reaped since the last call (busy loops are reaped after this is read)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = r.ru_utime + r.ru_stime
    delta, _LAST_CHILD_CPU[0] = total - _LAST_CHILD_CPU[0], total
    return delta


def galaxy(version: str, old: Path | None) -> tuple[list[str], dict[str, str], Path]:
    """The command prefix, environment and working folder of the new (this checkout) or old release."""
    source = ROOT if version == "new" else old
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")}
    env["PYTHONPATH"] = str(source)
    return [sys.executable, "-m", "galaxy_synth"], env, source


def case(name: str, version: str, old: Path | None, args: list[str], results: Path, busy: int = 0,
         taskset: str | None = None, env_extra: dict[str, str] | None = None, keep: bool = False) -> dict:
    prefix, env, cwd = galaxy(version, old)
    if not keep:
        shutil.rmtree(results / "studies", ignore_errors=True)
        (results / "study.db").unlink(missing_ok=True)
    env.update(env_extra or {})
    _children_cpu()  # reset the counter: busy loops of the last case are not this one's
    out = run_case(prefix + args + ["--results", str(results)], env, cwd, busy, taskset)
    row = {"case": name, "version": version, "busy_loops": busy, "taskset": taskset, **(env_extra or {}), **out}
    print(json.dumps(row), flush=True)
    return row


def suite_small(old: Path | None, work: Path, repeats: int) -> list[dict]:
    rows = []
    results = work / "small"
    case("warm cache", "new", old, SMALL, results)  # the image cache is shared by both releases' runs
    for _ in range(repeats):
        for version in (["old", "new"] if old else ["new"]):
            rows.append(case("small study, quiet", version, old, SMALL, results))
            rows.append(case("small study, taskset -c 0", version, old, SMALL, results, taskset="0"))
            rows.append(case("small study, taskset -c 0, OMP_NUM_THREADS=1", version, old, SMALL, results, taskset="0",
                             env_extra={"OMP_NUM_THREADS": "1"}))
            rows.append(case("small study, 2 busy loops", version, old, SMALL, results, busy=2))
    return rows


def suite_synth(old: Path | None, work: Path, repeats: int) -> list[dict]:
    rows = []
    results = work / "quickstart"
    case("warm cache", "new", old, QUICKSTART, results)
    for _ in range(repeats):
        for version in (["old", "new"] if old else ["new"]):
            rows.append(case("make synth (20 trials), quiet", version, old, QUICKSTART, results))
            rows.append(case("make synth (20 trials), 1 busy loop", version, old, QUICKSTART, results, busy=1))
    rows += suite_plans(old, work)
    return rows


def suite_plans(old: Path | None, work: Path) -> list[dict]:
    """The quickstart under each plan, quiet and beside one busy loop. One process with two threads beside a
    busy loop is the old release's default, measured above (it took 13x its quiet time): not run again."""
    rows = []
    results = work / "quickstart"
    if not (results / "cache").is_dir():
        case("warm cache", "new", old, QUICKSTART, results)
    for plan, extra, busy_cases in (("1 process x 2 threads", ["--workers", "1"], (0,)),
                                    ("1 process x 1 thread", ["--workers", "1"], (0, 1)),
                                    ("2 processes x 1 thread", ["--workers", "2"], (0, 1))):
        env = {"OMP_NUM_THREADS": "1"} if plan == "1 process x 1 thread" else None
        for busy in busy_cases:
            rows.append(case(f"plan {plan}", "new", old, QUICKSTART + extra, results, busy=busy, env_extra=env))
    return rows


def suite_correlate(old: Path | None, work: Path) -> list[dict]:
    """Full trainings per hour: the old release (one process, all cores as threads) vs the new (a pool)."""
    rows = []
    results = work / "correlate"
    case("study to calibrate", "new", old, QUICKSTART, results)
    db = results / "study.db"
    pristine = work / "study-before-correlate.db"
    shutil.copyfile(db, pristine)
    for version in (["old", "new"] if old else ["new"]):
        shutil.copyfile(pristine, db)  # no stored ground truth: every model is trained
        shutil.rmtree(results / "studies" / "galaxy-synth" / "ground_truth", ignore_errors=True)
        row = case("correlate --ground-truth 6 --seeds 2 --full-epochs 10", version, old, CORRELATE, results, keep=True)
        row["models_per_hour"] = round(12 / row["wall_s"] * 3600, 1)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, default=None, help="a checkout of the release to compare with")
    ap.add_argument("--suite", nargs="+", default=["small", "synth", "correlate"],
                    choices=["small", "synth", "plans", "correlate"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "cores.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="galaxy-synth-cores-"))
    rows = []
    if "small" in args.suite:
        rows += suite_small(args.old, work, args.repeats)
    if "synth" in args.suite:
        rows += suite_synth(args.old, work, max(1, args.repeats - 1))
    if "plans" in args.suite:
        rows += suite_plans(args.old, work)
    if "correlate" in args.suite:
        rows += suite_correlate(args.old, work)
    machine = {"cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "command": " ".join(sys.argv), "rows": rows}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
