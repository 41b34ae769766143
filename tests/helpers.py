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

