"""Small builders the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from synthesis.data.dataset import load_dataset
from synthesis.settings import StudySettings


def load(path, **kw):
    """load_dataset with test-sized defaults."""
    kw.setdefault("size", 32)
    kw.setdefault("progress", False)
    kw.setdefault("min_per_class", 3)
    return load_dataset(str(path), **kw)


def each_field_changed(base: StudySettings):
    """``(name, base with that one field changed)`` for every field of the settings: another of its choices, the
    other truth value, a number one larger, a longer text or list, a value for one left to None."""
    import dataclasses

    valid = {"fidelities": "2,4"}  # a value the stage settings parse
    for f in dataclasses.fields(base):
        value, choices, kind = getattr(base, f.name), f.metadata["choices"], str(f.type)
        if f.name in valid and value != valid[f.name]:
            other = valid[f.name]
        elif choices:
            other = next(c for c in choices if c != value)
        elif isinstance(value, bool):
            other = not value
        elif isinstance(value, (int, float)):
            other = value + 1
        elif isinstance(value, list):
            other = [*value, "x"]
        elif isinstance(value, str):
            other = value + "x"
        else:  # None: "auto" or unset
            other = 48 if kind.startswith("int") else 0.5 if kind.startswith("float") else ["x"] if kind.startswith("list") else "x"
        yield f.name, base.replace(**{f.name: other})


def tiny(tmp_path, **kw) -> StudySettings:
    """Settings of a study small enough for a test (seconds per trial)."""
    base = dict(size=32, synthetic_n=200, max_samples=80, val_subset=40, epochs=1, trials=3,
                results=str(tmp_path / "results"), max_params=150_000, progress=False, study="t",
                objective="val_acc")
    return StudySettings(**{**base, **kw})


def calibrate_tiny(root, url, **kw):
    """correlate on the tiny_study fixture's study, with test-sized folds and budgets."""
    from pathlib import Path

    from correlation.calibrate import calibrate_study

    args = dict(ground_truth=6, top=2, full_epochs=1, folds=5, repeats=2, progress=False)
    if "save_ground_truth" in kw:
        kw["save_ground_truth"] = Path(kw["save_ground_truth"])
    return calibrate_study(url, "gt", root, **{**args, **kw})


def heartbeat_study(tmp_path, name="s"):
    """A SQLite study whose trials go stale after 2 silent seconds (for the worker and target tests)."""
    import optuna

    from synthesis.search.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'w.db'}", heartbeat_interval=1, grace_period=2)
    return optuna.create_study(study_name=name, storage=storage), storage



def write_fits_catalogue(root, n: int = 120, size: int = 32, bands: int = 5, layout: str = "cube", votes: bool = False,
                         seed: int = 3, nan_pixels: int = 0):
    """Procedural galaxies as a survey archive would serve them: float fluxes in FITS, a labels.csv catalogue.

    ``layout``: "cube" (one bands×H×W file per galaxy), "per_band" (file_g, file_r… columns), "image"
    (2-D, one band). ``votes``: add simulated volunteer vote fractions (vote_<class> columns).
    """
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from astropy.io import fits

    from synthesis.data.synthetic import generate_band_galaxies

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    fluxes, labels, extras, fractions, names = generate_band_galaxies(n, size, seed, bands)
    band_names = "grizy"[:bands] if bands <= 5 else [f"b{i}" for i in range(bands)]
    rows = []
    for i in range(n):
        cube = np.moveaxis(fluxes[i], -1, 0).astype(np.float32)  # FITS axis order: bands, y, x
        if nan_pixels:
            cube[0, :nan_pixels // size + 1, : nan_pixels % size or size] = np.nan
        row = {"id": f"J{i:05d}", "label_name": names[labels[i]], "ra": f"{10 + i * 0.01:.4f}", "dec": f"{-1 - i * 0.01:.4f}",
               "z": float(extras[i, 0]), "z_err": float(extras[i, 1])}
        if layout == "cube":
            fits.PrimaryHDU(cube).writeto(root / "images" / f"g{i}.fits", overwrite=True)
            row["file"] = f"images/g{i}.fits"
        elif layout == "image":
            fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube[0], name="SCI")]).writeto(root / "images" / f"g{i}.fits",
                                                                                      overwrite=True)
            row["file"] = f"images/g{i}.fits"
        else:
            for b, name in enumerate(band_names):
                fits.PrimaryHDU(cube[b]).writeto(root / "images" / f"g{i}_{name}.fits", overwrite=True)
                row[f"file_{name}"] = f"images/g{i}_{name}.fits"
        if votes:
            row.update({f"vote_{c}": float(fractions[i, k]) for k, c in enumerate(names)})
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root
