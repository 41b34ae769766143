"""The command line as a user runs it: separate processes, real signals."""

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from galaxy_synth.cli import main
from tests._kill import hold_env, kill_held_trial

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--size", "32", "--synthetic-n", "200", "--max-samples", "80", "--val-subset", "40",
        "--max-params", "150000", "--no-progress", "--study", "cli"]


def test_help_explains_every_documented_flag(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = capsys.readouterr().out
    for flag in ("--data", "--trials", "--epochs", "--size", "--max-samples", "--val-subset", "--storage",
                 "--study", "--seed", "--device", "--results", "--merge", "--drop", "--crop"):
        assert flag in out


def test_bad_data_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    code = main(["synth", "--data", str(tmp_path / "missing"), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data not found" in err[0]
    assert not (tmp_path / "r" / "study.db").exists()


def test_bad_class_map_writes_no_study(tmp_path, csv_folder, capsys):
    code = main(["synth", "--data", str(csv_folder), "--drop", "dont_know", "--results", str(tmp_path / "r"), *TINY])
    assert code == 2 and "unknown class 'dont_know'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "study.db").exists()


def test_runs_on_a_csv_folder_with_a_class_map(tmp_path, csv_folder, capsys):
    code = main(["synth", "--data", str(csv_folder), "--merge", "spiral_cw,spiral_acw=spiral", "--trials", "1",
                 "--epochs", "1", "--results", str(tmp_path / "r"), *TINY])
    assert code == 0
    out = capsys.readouterr().out
    assert "best trials" in out and (tmp_path / "r" / "studies" / "cli" / "trials_proxy_metrics.csv").exists()
    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{tmp_path / 'r' / 'study.db'}")
    attrs = study.user_attrs["galaxy_synth"]
    assert attrs["class_names"] == ["elliptical", "spiral", "edge_on", "merger"] and attrs["extra_names"] == ["z", "z_err"]


def _cmd(results, trials):
    return [sys.executable, "-m", "galaxy_synth", "synth", "--results", str(results), "--trials", str(trials),
            "--epochs", "1", "--heartbeat-interval", "1", *TINY]


def _trials(db):
    return optuna.load_study(study_name="cli", storage=f"sqlite:///{db}").get_trials()


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the child: a test suite started in the background (`cmd &`, as CI
    may run it) inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt — the
    Ctrl-C test hung that way in a fresh-clone CI run."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_with_a_held_trial(tmp_path, trials):
    """A synth process whose first trial after one has completed parks before training (tests/_kill.py)."""
    results, hold = tmp_path / "r", tmp_path / "hold"
    proc = subprocess.Popen(_cmd(results, trials), cwd=ROOT, env={**ENV, **hold_env(hold, 1)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    return proc, hold, results, results / "study.db"


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume_loses_nothing(tmp_path):
    proc, hold, results, db = _start_with_a_held_trial(tmp_path, 4)
    try:
        killed_number = kill_held_trial(hold, alive=lambda: proc.poll() is None)  # once one trial is complete
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {t.number: t.value for t in _trials(db) if t.state == TrialState.COMPLETE}
    assert before and all(n < killed_number for n in before)

    time.sleep(3.5)  # past the heartbeat grace period (3 × 1 s), so the trial is known stale
    res = subprocess.run(_cmd(results, 4), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    trials = _trials(db)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4  # --trials counts completed trials across both runs
    assert all(t.state == TrialState.COMPLETE and t.value == v for n, v in before.items() for t in trials if t.number == n)
    killed = next(t for t in trials if t.number == killed_number)
    assert killed.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed_number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert not [t for t in trials if t.state == TrialState.RUNNING]


@pytest.mark.parametrize("argv, message", [
    (["--precision", "fp16", "--device", "cpu"], "--precision fp16 needs a GPU"),
    (["--device", "cuda"], "--device cuda: CUDA is not available here"),
    (["--device", "mps"], "--device mps: Apple MPS is not available here"),
    (["--device", "tpu"], "is not a device"),
    (["--trials", "0"], "--trials must be >= 1"),
])
def test_impossible_device_or_precision_is_one_line_before_anything_is_written(tmp_path, capsys, argv, message):
    code = main(["synth", "--results", str(tmp_path / "r"), *TINY, *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_bf16_on_a_cpu_without_bf16_instructions_is_refused(tmp_path, capsys, monkeypatch):
    import synthesis.hardware.device as device_mod

    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: [])
    assert main(["synth", "--results", str(tmp_path / "r"), "--precision", "bf16", "--device", "cpu", *TINY]) == 2
    assert "this CPU has no bf16 instructions" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_read_only_cache_folder_is_one_line_and_no_study(tmp_path, capsys, monkeypatch):
    import synthesis.data.cache as data_mod

    results = tmp_path / "r"
    (results / "cache").mkdir(parents=True)
    (results / "cache").chmod(0o555)
    real_access = os.access  # root may write anywhere: make the folder read-only for this process's checks too
    monkeypatch.setattr(data_mod.os, "access", lambda p, mode: False if str(p).endswith("cache") else real_access(p, mode))
    try:
        code = main(["synth", "--results", str(results), "--trials", "1", *TINY])
    finally:
        (results / "cache").chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "read-only" in err[0], err
    assert not (results / "study.db").exists()


def test_resuming_under_another_precision_is_refused_and_auto_keeps_the_studys(tmp_path, capsys, monkeypatch):
    import synthesis.hardware.device as device_mod

    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: ["avx512_bf16"])  # bf16 is possible: only the study refuses
    results = ["--results", str(tmp_path / "r"), "--epochs", "1", "--device", "cpu", *TINY]
    assert main(["synth", "--trials", "1", "--precision", "fp32", *results]) == 0
    capsys.readouterr()
    assert main(["synth", "--trials", "1", "--precision", "bf16", *results]) == 2
    assert "precision: study has 'fp32', now 'bf16'" in capsys.readouterr().err
    assert main(["synth", "--trials", "2", *results]) == 0  # auto: the study's own fp32
    assert "fp32 (the study's own)" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_requeues_the_interrupted_trial(tmp_path):
    import signal

    proc, hold, results, db = _start_with_a_held_trial(tmp_path, 3)
    deadline = time.time() + 240
    while time.time() < deadline and not list(hold.glob("trial*.pid")) and proc.poll() is None:
        time.sleep(0.1)
    marker = next(hold.glob("trial*.pid"))
    held = int(marker.stem[len("trial"):])
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired as exc:  # say what the process had printed, should it ever hang again
        proc.kill()
        raise AssertionError(f"no exit 180 s after SIGINT; stderr so far: {exc.stderr!r}") from None
    assert proc.returncode == 130
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "interrupted" in lines[-1] and "re-queued" in lines[-1] and "Traceback" not in err and "KeyboardInterrupt" not in err
    trials = _trials(db)
    waiting = [t for t in trials if t.system_attrs.get("failed_trial") == held]
    assert len(waiting) == 1 and waiting[0].state == TrialState.WAITING  # queued again, same parameters
    assert waiting[0].params == next(t for t in trials if t.number == held).params
    res = subprocess.run(_cmd(results, 3), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    retry = next(t for t in _trials(db) if t.system_attrs.get("failed_trial") == held)
    assert retry.state == TrialState.COMPLETE  # the resumed run trained the interrupted trial first
