"""Parallel worker processes on one Optuna storage (``synth --workers N``, and the default plan on a CPU).

No scheduler of our own: every worker is the same ``galaxy-synth synth`` command line, and the
storage (SQLite with serialised writes, PostgreSQL, or a journal file) is the only thing they
share. Optuna hands out trials, heartbeats detect a dead worker and re-queue its trial, and
:class:`synthesis.search.strategy.TrialTarget` stops every worker at exactly ``--trials``
finished trials. A worker's command line is made from the study's resolved settings
(:func:`synthesis.command_line.to_argv`); the storage URL travels in the environment
(:data:`synthesis.settings.STORAGE_ENV`), never on a command line that ``ps`` shows. The runner
(:func:`synthesis.search.runner.run_study`) decides how many workers; each runs that same function
as one process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from synthesis import to_argv
from synthesis import GalaxySynthError
from synthesis.hardware import ExecutionPlan
from synthesis.search.storage import open_storage
from synthesis import STORAGE_ENV, StudySettings


# The program every worker runs: the package's command line, started by its module name (a
# command, not an import: this layer does not import the command line's package).
WORKER_PROGRAM = ("-m", "galaxy_synth")


def worker_command(settings: StudySettings, worker_id: int) -> list[str]:
    """One worker's command line: the study's resolved settings, one process, no bars."""
    argv = to_argv(settings.replace(study=settings.study_name, workers=None, progress=False))
    verbose = ["-v"] if logging.getLogger().isEnabledFor(logging.INFO) else []
    return [sys.executable, *WORKER_PROGRAM, *verbose, "synth", *argv, "--workers", "1", "--worker-id", str(worker_id)]


def worker_environment(settings: StudySettings, plan: ExecutionPlan) -> dict[str, str]:
    """The parent's environment, with the workers' thread count and the storage URL."""
    return {**os.environ, "OMP_NUM_THREADS": str(plan.threads), STORAGE_ENV: settings.storage_url}


def run_workers(settings: StudySettings, plan: ExecutionPlan) -> None:
    """Start ``plan.workers`` processes, show the study's progress, wait; fail with one line if any worker failed.

    Each worker's output goes to ``<study folder>/workers/worker{i}.log``. Ctrl-C stops them all
    (each re-queues its interrupted trial).
    """
    import optuna
    from tqdm.auto import tqdm

    from synthesis.search.trials import finished_count

    log_dir = settings.study_dir / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_environment(settings, plan)
    procs: list[tuple[subprocess.Popen, Path]] = []
    for i in range(plan.workers):
        log_path = log_dir / f"worker{i}.log"
        with open(log_path, "w") as log_file:
            # ids distinct across the tasks of a job array too (each task may start several workers)
            worker_id = settings.worker_id * plan.workers + i
            procs.append((subprocess.Popen(worker_command(settings, worker_id), stdout=log_file, stderr=subprocess.STDOUT,
                                           env=env),
                          log_path))
    study = optuna.load_study(study_name=settings.study_name, storage=open_storage(settings.storage_url))
    target = settings.trials

    def completed() -> int:
        return finished_count(study)

    bar = tqdm(total=target, initial=min(completed(), target), desc=f"trials ({plan.workers} workers)", unit="trial",
               disable=not settings.progress, dynamic_ncols=True)
    try:
        for p, _ in procs:  # each wait returns as soon as that worker ends; the bar moves meanwhile
            while True:
                try:
                    p.wait(timeout=settings.poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    bar.update(min(completed(), target) - bar.n)
        bar.update(min(completed(), target) - bar.n)
    except KeyboardInterrupt:
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p, _ in procs:
            p.wait()
        raise
    finally:
        bar.close()
    failed = [(i, p.returncode, log) for i, (p, log) in enumerate(procs) if p.returncode != 0]
    if not failed:
        return
    summary = "; ".join(f"worker {i} exited with code {code}: {_last_line(log)} (log: {log})" for i, code, log in failed)
    if completed() >= target:  # the others finished its work (a killed worker's trial is retried)
        print(f"galaxy-synth: warning: {summary}; the other workers reached the target", file=sys.stderr)
        return
    raise GalaxySynthError(f"{summary}; {len(failed)} of {plan.workers} workers failed")


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"
