"""Shared fixtures: small on-disk datasets in every supported layout, made from our own generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: the in-process plan (tests of the parallel plan say so)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tiny_galaxies():
    from synthesis.data.synthetic import generate_galaxies

    return generate_galaxies(n=120, size=48, seed=3)


def write_csv_folder(root: Path, images, labels, names, extras=None, per_class_limit=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        fname = f"g{i:04d}.jpg"
        Image.fromarray(img).save(root / fname, quality=95)
        row = {"id": f"g{i:04d}", "label": int(lab), "label_name": names[lab], "file": fname}
        if extras is not None:
            row["z"], row["z_err"] = float(extras[i, 0]), float(extras[i, 1])
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture
def csv_folder(tmp_path, tiny_galaxies) -> Path:
    images, labels, extras, names = tiny_galaxies
    return write_csv_folder(tmp_path / "csvdata", images, labels, names, extras)


@pytest.fixture
def image_folder(tmp_path, tiny_galaxies) -> Path:
    images, labels, _, names = tiny_galaxies
    root = tmp_path / "imagefolder"
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = root / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.fixture
def galaxy10_h5(tmp_path, tiny_galaxies) -> Path:
    import h5py

    images, labels, extras, _ = tiny_galaxies
    path = tmp_path / "Galaxy10.h5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("images", data=images)
        fh.create_dataset("ans", data=labels.astype(np.uint8))
        fh.create_dataset("redshift", data=extras[:, 0].astype(np.float64))
    return path


def shared_or_skip(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (tests read real data from ../shared and skip without it)")
    return path



@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (see tests/postgres_server.py); skips, saying why, without one."""
    pytest.importorskip("psycopg", reason="psycopg not installed (it is in the project's dev extra)")
    from tests.postgres_server import PostgresUnavailable, throwaway_postgres

    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def exported_study(tmp_path_factory):
    """A tiny study on the embedded set (it has z, z_err and mirror-image spirals), its top 2 exported."""
    from galaxy_synth.cli import main

    results = tmp_path_factory.mktemp("exported")
    tiny = ["--results", str(results), "--study", "exp", "--no-progress"]
    assert main(["synth", "--trials", "5", "--size", "32", "--synthetic-n", "240", "--max-samples", "100",
                 "--val-subset", "40", "--max-params", "150000", *tiny]) == 0
    assert main(["export", "--top", "2", "--full-epochs", "2", *tiny]) == 0
    return results


@pytest.fixture(scope="session")
def ensemble_study(exported_study, tmp_path_factory):
    """A copy of the exported tiny study (its ranks 1-2 reused), with models/ensemble/ from its top 3: its models folder."""
    import shutil

    from galaxy_synth.cli import main

    results = tmp_path_factory.mktemp("ensemble") / "results"
    shutil.copytree(exported_study, results)
    assert main(["export", "--top", "1", "--full-epochs", "2", "--ensemble", "3", "--ensemble-members", "4",
                 "--results", str(results), "--study", "exp", "--no-progress"]) == 0
    return results / "studies/exp/models"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A 7-trial study on the embedded set, one per test module that asks (its ground truth accumulates)."""
    from synthesis.search.runner import run_study
    from synthesis.settings import StudySettings

    root = tmp_path_factory.mktemp("gt")
    settings = StudySettings(size=32, synthetic_n=200, max_samples=80, val_subset=40, epochs=1, trials=7,
                             results=str(root), max_params=150_000, progress=False, study="gt", objective="val_acc")
    run_study(settings.replace(workers=1))  # one process, as the fixture always ran
    return root, settings.storage_url

