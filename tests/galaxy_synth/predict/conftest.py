"""Predict's shared fixtures: a small catalogue of procedural galaxies like the exported study's training set."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """40 procedural galaxies as PNG files and a catalogue CSV with id, file, z, z_err, ra, dec."""
    from synthesis.data.synthetic import generate_galaxies

    imgs, _, extras, _ = generate_galaxies(n=40, size=32, seed=21)  # as the training set was rendered
    root = tmp_path_factory.mktemp("cat")
    (root / "img").mkdir()
    rows = []
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(root / "img" / f"g{i}.png")
        rows.append({"id": f"G{i:03d}", "file": f"img/g{i}.png", "z": extras[i, 0], "z_err": extras[i, 1],
                     "ra": 150 + i / 100, "dec": 2 - i / 100})
    pd.DataFrame(rows).to_csv(root / "cat.csv", index=False)
    return root


def blocking_catalogue(catalogue: Path, work: Path, row: int) -> tuple[Path, Path]:
    """A copy of ``catalogue`` (links) whose image ``row`` is a named pipe: opening it blocks, so a run can be killed
    exactly inside that row's chunk. Returns the CSV and the pipe (unlink it and link the image to go on)."""
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
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
