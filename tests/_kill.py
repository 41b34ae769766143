"""Kill a study process in the middle of a trial, deterministically.

The process under test runs with ``GALAXY_SYNTH_TEST_HOLD=DIR:N`` and ``tests/_hooks`` first on its
``PYTHONPATH``: that folder's ``sitecustomize.py`` (test code, nothing of it in the product) makes the
first trial that passes the size caps once N trials have finished park itself before training and
say so in ``DIR/trial{number}.pid``. The test kills that process: the trial is certainly mid-trial,
however fast tiny trials are on the machine.
"""

from __future__ import annotations

import os
import signal
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
