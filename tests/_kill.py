"""Kill a study process in the middle of a trial, or a predict run inside a chunk, deterministically.

The process under test runs with ``GALAXY_SYNTH_TEST_HOLD=DIR:N`` and ``tests/_hooks`` first on its
``PYTHONPATH``: that folder's ``sitecustomize.py`` (test code, nothing of it in the product) makes the
first trial that passes the size caps once N trials have finished park itself before training and
say so in ``DIR/trial{number}.pid``. The test kills that process: the trial is certainly mid-trial,
however fast tiny trials are on the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HOOKS = Path(__file__).resolve().parent / "_hooks"
ROOT = Path(__file__).resolve().parents[1]


def hold_env(folder: Path, after_complete: int) -> dict[str, str]:
    """Environment for a process whose trial should park (merge it last: it sets PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"GALAXY_SYNTH_TEST_HOLD": f"{folder}:{after_complete}", "PYTHONPATH": f"{HOOKS}{os.pathsep}{ROOT}"}


def kill_held_trial(folder: Path, timeout: float = 240, alive=lambda: True) -> int:
    """Wait for a held trial, SIGKILL its process, return the trial's number."""
    deadline = time.time() + timeout
    while time.time() < deadline and alive():
        markers = sorted(Path(folder).glob("trial*.pid"))
        if markers:
            text = markers[0].read_text().strip()
            if text:  # written by the held process (an empty file is one being written)
                os.kill(int(text), signal.SIGKILL)
                return int(markers[0].stem[len("trial"):])
        time.sleep(0.1)
    raise AssertionError("no trial was held for killing (did every trial get pruned, or the process exit?)")


def blocking_catalogue(catalogue: Path, work: Path, row: int) -> tuple[Path, Path]:
    """A copy of ``catalogue`` (links) whose image ``row`` is a named pipe: opening it blocks, so a run can be killed
    exactly inside that row's chunk. Returns the CSV and the pipe (unlink it and link the image to go on)."""
    import pandas as pd

    cat = pd.read_csv(catalogue / "cat.csv")
    (work / "img").mkdir(parents=True)
    for f in cat["file"]:
        (work / f).symlink_to(catalogue / f)
    pipe = work / cat.loc[row, "file"]
    pipe.unlink()
    os.mkfifo(pipe)
    cat.to_csv(work / "cat.csv", index=False)
    return work / "cat.csv", pipe


def kill_when(argv: list[str], ready, timeout: float = 120) -> None:
    """Start ``python -m galaxy_synth ARGV``, wait until ``ready()`` (then a moment: it is blocked), kill -9 it."""
    proc = subprocess.Popen([sys.executable, "-m", "galaxy_synth", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
