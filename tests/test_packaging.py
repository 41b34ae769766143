"""The wheel a user or a cluster image installs: complete, and working away from this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("galaxy_common", "proxies", "synthesis", "correlation", "galaxy_synth")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources, so no build/ folder of the checkout (stale files) can leak in."""
    import shutil

    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                          str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (built,) = out.glob("galaxy_synth-*.whl")
    return built


def test_the_wheel_holds_every_package_and_the_shipped_calibrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names
    assert {"proxies/calibrations/default.json", "proxies/calibrations/seed_published.json"} <= names
    for sub in ("synthesis/data", "synthesis/models", "synthesis/training", "synthesis/search", "synthesis/hardware",
                "synthesis/full_training", "galaxy_synth/export", "galaxy_synth/predict"):
        assert f"{sub}/__init__.py" in names
    assert not any(n.startswith(("tests/", "bench/", "results/")) for n in names)


@pytest.mark.slow
def test_the_installed_cli_runs_a_study_from_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    where = subprocess.run([sys.executable, "-c", "import synthesis, proxies; print(synthesis.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(site)), where  # the installed copy, not the checkout
    cmd = [sys.executable, "-m", "galaxy_synth", "synth", "--trials", "1", "--epochs", "1", "--size", "16",
           "--synthetic-n", "120", "--max-samples", "40", "--val-subset", "20", "--objective", "composite",
           "--no-progress", "--device", "cpu", "--precision", "fp32"]
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    shipped = json.loads((ROOT / "proxies" / "calibrations" / "default.json").read_text())["name"]
    assert f"calibration {shipped!r}" in res.stdout  # the shipped default, found inside the wheel
    assert (work / "results" / "studies" / "galaxy-synth" / "trials_proxy_metrics.csv").is_file()
