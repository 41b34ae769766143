"""Where a study lives: its data set's name, its default study name, its storage URL and its folder of results."""

from __future__ import annotations

import re
from pathlib import Path

DEFAULT_STUDY = "galaxy-synth"


def dataset_name(data: str | None) -> str:
    """A data set's name wherever it lies: 'embedded' for the generated set, else the folder's (or file's) name."""
    if not data or data == "synthetic":
        return "embedded"
    return Path(data.rstrip("/\\")).stem or "embedded"


def default_study_name(data: str | None) -> str:
    """'galaxy-synth' for the embedded set, else the data folder's (or file's) name."""
    if not data or data == "synthetic":
        return DEFAULT_STUDY
    name = Path(data.rstrip("/\\")).stem or DEFAULT_STUDY
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def default_storage_url(results: Path) -> str:
    """The SQLite study database inside the results folder."""
    return f"sqlite:///{(Path(results) / 'study.db').as_posix()}"


def study_dir(results: Path, study_name: str) -> Path:
    return Path(results) / "studies" / re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name)
