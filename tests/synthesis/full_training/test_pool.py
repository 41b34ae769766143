"""Full trainings in parallel processes: every result stored exactly once, even when a worker is killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--size", "32", "--synthetic-n", "400", "--max-samples", "200", "--val-subset", "60", "--no-progress"]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _stored(results: Path):
    from synthesis.full_training.store import open_ground_truth

    return open_ground_truth(f"sqlite:///{results / 'study.db'}").table("galaxy-synth")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists() or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux /proc and 2 allotted cores")
def test_a_killed_full_training_process_loses_only_its_model_and_a_rerun_trains_the_rest(tmp_path):
    from galaxy_synth.cli import main

    results = tmp_path / "r"
    assert main(["synth", "--trials", "8", "--results", str(results), *TINY]) == 0
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # two cores: two training processes
    cmd = [sys.executable, "-m", "galaxy_synth", "correlate", "--results", str(results), "--ground-truth", "6",
           "--full-epochs", "25", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(_stored(results)) == 0 and proc.poll() is None:
            time.sleep(0.2)  # the first model is stored: others are in training
        workers = _children(proc.pid)
        assert proc.poll() is None and len(workers) >= 2, "the models finished before the kill could happen"
        before = _stored(results)
        os.kill(workers[-1], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert proc.returncode == 2 and lines[-1].startswith("galaxy-synth: error: a full-training process died"), err[-2000:]
    after_kill = _stored(results)
    assert 1 <= len(after_kill) < 6
    rerun = subprocess.run(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = _stored(results)
    keys = list(zip(final["trial_number"], final["epochs"], final["seed"]))
    assert len(keys) == 6 and len(set(keys)) == 6  # every model exactly once
    kept = final.set_index("trial_number").loc[after_kill["trial_number"], "created"]
    assert list(kept) == list(after_kill["created"])  # models stored before the kill were not trained again
    assert set(before["trial_number"]) <= set(after_kill["trial_number"])
