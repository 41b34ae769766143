"""Parallel workers on one storage: exact target, no lost or doubled trial, a SIGKILLed worker's trial retried."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from galaxy_synth.cli import _build_parser
from synthesis.search.workers import worker_command, worker_environment
from tests._kill import hold_env, kill_held_trial

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40",
        "--max-params", "150000", "--no-progress", "--heartbeat-interval", "1"]


def test_workers_run_the_studys_resolved_settings_with_the_storage_in_the_environment():
    from synthesis.hardware.cores import ExecutionPlan
    from synthesis.settings import STORAGE_ENV, StudySettings

    settings = StudySettings(trials=9, size=32, merge=["a,b=c"], drop=["d"], storage="postgresql://u:SECRET@h/db",
                             max_mflops=40.0, workers=3)
    cmd = worker_command(settings, 2)
    assert cmd[:3] == [sys.executable, "-m", "galaxy_synth"]
    assert "SECRET" not in " ".join(cmd)  # ps shows command lines to every user of the machine
    args = _build_parser().parse_args(cmd[3:])  # what the worker process will see
    assert (args.trials, args.size, args.merge, args.drop, args.max_mflops) == (9, 32, ["a,b=c"], ["d"], 40.0)
    assert (args.workers, args.worker_id, args.no_progress, args.study) == (1, 2, True, "galaxy-synth")
    env = worker_environment(settings, ExecutionPlan(3, 1, "test"))
    assert env[STORAGE_ENV] == "postgresql://u:SECRET@h/db" and env["OMP_NUM_THREADS"] == "1"
    from synthesis.command_line import from_args

    back = from_args(args)  # the worker's settings are the parent's, but for how it runs
    assert back.replace(workers=3, storage=settings.storage, progress=True, study=None) == settings


def describe(trials: list[optuna.trial.FrozenTrial]) -> str:
    """One line per trial, for a failed assertion: what each worker did with it."""
    return "\n".join(f"#{t.number} {t.state.name} worker={t.user_attrs.get('worker')} retry_of={t.system_attrs.get('failed_trial')} "
                     f"start={t.datetime_start} end={t.datetime_complete} why={t.user_attrs.get('prune_reason')}" for t in trials)


def _count_in_logs(logs: list[Path], pattern: str) -> int:
    return sum(len(re.findall(pattern, p.read_text(errors="replace"), flags=re.I)) for p in logs)


def run_workers_with_a_kill(tmp_path: Path, storage: str | None, workers: int = 3, target: int = 9, extra=()):
    """Start `synth --workers N`, SIGKILL one worker mid-trial, return (exit code, stderr, trials, killed, logs)."""
    results = tmp_path / "r"
    study_name = f"workers-{os.getpid()}-{time.time_ns()}"
    cmd = [sys.executable, "-m", "galaxy_synth", "synth", "--results", str(results), "--trials", str(target),
           "--workers", str(workers), "--study", study_name, *TINY, *extra]
    url = storage or f"sqlite:///{results / 'study.db'}"
    if storage:
        cmd += ["--storage", storage]
    hold = tmp_path / "hold"
    env = {**os.environ, "PYTHONPATH": str(ROOT), **hold_env(hold, 2)}  # once two trials are complete
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        killed = kill_held_trial(hold, timeout=300, alive=lambda: proc.poll() is None)
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    try:
        trials = optuna.load_study(study_name=study_name, storage=url).get_trials()
    except KeyError:
        pytest.fail(f"no study was made; galaxy-synth exited {proc.returncode}: {err.strip()[-2000:]}")
    logs = sorted((results / "studies" / study_name / "workers").glob("worker*.log"))
    return proc.returncode, err, trials, killed, logs


def check_exact_and_retried(code, err, trials, killed, logs, workers=3, target=9):
    from synthesis.search.trials import finished

    assert killed is not None, "never saw a completed and a running trial at once"
    assert code == 0, err
    assert "warning: worker" in err and "exited with code -9" in err  # the parent says which worker died
    assert len(logs) == workers
    states = [t.state for t in trials]
    assert sum(finished(t) for t in trials) == target, describe(trials)  # exactly: no overshoot from racing workers
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, describe(trials)
    dead = trials[killed]
    assert dead.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and finished(retries[0]) and retries[0].params == dead.params
    # Nothing ran twice: every trial that reached training did so once, in one worker.
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.user_attrs.get("worker") for t in trials if finished(t)}) >= 2  # really parallel
    assert _count_in_logs(logs, r"database is locked|Cannot tell a|UpdateFinishedTrialError|Traceback") == 0


PROMOTION = ("--epochs", "1", "--fidelities", "1,3")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), PROMOTION], ids=["plain", "promotion"])
def test_three_sqlite_workers_with_a_sigkill_reach_the_target_exactly(tmp_path, extra):
    check_exact_and_retried(*run_workers_with_a_kill(tmp_path, storage=None, extra=extra))


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), PROMOTION], ids=["plain", "promotion"])
def test_three_postgresql_workers_with_a_sigkill_reach_the_target_exactly(tmp_path, postgres_url, extra):
    check_exact_and_retried(*run_workers_with_a_kill(tmp_path, storage=postgres_url, extra=extra))


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), PROMOTION], ids=["plain", "promotion"])
def test_three_journal_workers_started_separately_with_a_sigkill_reach_the_target_exactly(tmp_path, extra):
    """As a cluster's job array starts them: three independent commands on one journal file, one killed."""
    results, hold = tmp_path / "r", tmp_path / "hold"
    url = f"journal:{tmp_path / 'shared' / 'study.journal'}"
    study_name = "journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "GALAXY_SYNTH_STORAGE": url, **hold_env(hold, 2)}
    cmd = [sys.executable, "-m", "galaxy_synth", "synth", "--results", str(results), "--trials", "9", "--study", study_name,
           *TINY, *extra]
    logs = [tmp_path / f"task{i}.log" for i in range(3)]
    procs = []
    for task, log in enumerate(logs):
        with open(log, "w") as fh:  # each with its array task number, as SLURM sets it
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env={**env, "SLURM_ARRAY_TASK_ID": str(task)}, stdout=fh,
                                          stderr=subprocess.STDOUT))
    killed = None
    try:
        killed = kill_held_trial(hold, timeout=300, alive=lambda: any(p.poll() is None for p in procs))
        for p in procs:
            p.wait(timeout=400)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = sorted(p.returncode for p in procs)
    assert codes == [-9, 0, 0], "\n---\n".join(log.read_text()[-1200:] for log in logs)
    from synthesis.search.storage import open_storage
    from synthesis.search.trials import finished

    trials = optuna.load_study(study_name=study_name, storage=open_storage(url)).get_trials()
    why = describe(trials) + "\n---\n" + "\n---\n".join(log.read_text()[-3000:] for log in logs)
    assert sum(finished(t) for t in trials) == 9, why
    assert TrialState.RUNNING not in [t.state for t in trials] and TrialState.WAITING not in [t.state for t in trials], why
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and finished(retries[0]) and retries[0].params == trials[killed].params
    assert len({t.user_attrs.get("worker") for t in trials if finished(t)}) >= 2
    assert _count_in_logs(logs, r"Cannot tell a|UpdateFinishedTrialError|Traceback") == 0
