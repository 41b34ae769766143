"""``galaxy-synth synth --workers N``: N worker processes on one Optuna storage.

No scheduler of our own: every worker is the same ``galaxy-synth synth`` command, and the
storage (SQLite with serialised writes, or PostgreSQL) is the only thing they share. Optuna
hands out trials, heartbeats detect a dead worker and re-queue its trial, and
:func:`synthesis.runner.optimize_to_target` stops every worker at exactly ``--trials`` COMPLETE
trials. On several machines, run the same command on each against one PostgreSQL URL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from synthesis.errors import GalaxySynthError


def threads_per_worker(workers: int) -> int:
    """Split the cores evenly: N workers × (cores / N) torch threads each, at least one."""
    return max(1, (os.cpu_count() or 1) // workers)


def worker_command(argv: Sequence[str], worker_id: int) -> list[str]:
    """The user's own ``synth`` command line, as one worker (argparse keeps the last value given)."""
    return [sys.executable, "-m", "galaxy_synth", *argv, "--workers", "1", "--worker-id", str(worker_id), "--no-progress"]


def run_workers(argv: Sequence[str], workers: int, storage_url: str, study_name: str, target: int, log_dir: Path,
                progress: bool = True, poll_seconds: float = 2.0) -> None:
    """Start ``workers`` processes, show the study's progress, wait; fail with one line if any worker failed.

    Each worker's output goes to ``log_dir/worker{i}.log``. Ctrl-C stops them all (their running
    trials are re-queued by heartbeat on the next run).
    """
    import optuna
    from tqdm.auto import tqdm

    from synthesis.runner import finished_count

    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_worker(workers))}
    procs: list[tuple[subprocess.Popen, Path]] = []
    for i in range(workers):
        log_path = log_dir / f"worker{i}.log"
        with open(log_path, "w") as log_file:
            procs.append((subprocess.Popen(worker_command(argv, i), stdout=log_file, stderr=subprocess.STDOUT, env=env),
                          log_path))
    study = optuna.load_study(study_name=study_name, storage=storage_url)

    def completed() -> int:
        return finished_count(study)

    bar = tqdm(total=target, initial=min(completed(), target), desc=f"trials ({workers} workers)", unit="trial",
               disable=not progress, dynamic_ncols=True)
    try:
        while any(p.poll() is None for p, _ in procs):
            time.sleep(poll_seconds)
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
    raise GalaxySynthError(f"{summary}; {len(failed)} of {workers} workers failed")


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"
