"""The data stage's own settings: what loading a study's data and planning its split read, and nothing else.

Derived once from the study's settings (``DataSettings.of``), as progressive growth derives its
``GrowthSettings``: the data stage never sees the trial, search or process options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthesis import StudySettings


@dataclass(frozen=True)
class DataSettings:
    """The source and how it is read (``--data``, FITS bands and HDU, vote and carried columns), its preprocessing
    (``--size``, ``--crop``, ``--band-mapping``), the class map, the split's seed and the trials' subsets."""

    data: str | None
    size: int | None  # resolved (an int) once the device is known
    crop: float | None
    merge: tuple[str, ...]
    drop: tuple[str, ...]
    extra_columns: tuple[str, ...] | None
    bands: str | None
    hdu: str | None
    band_mapping: str
    soft_labels: tuple[str, ...]  # the --soft-labels columns, in class order
    schema: str | None  # the --schema file (read where the data are loaded)
    keep_columns: tuple[str, ...]
    max_samples: int
    val_subset: int
    synthetic_n: int
    seed: int  # the split's (and the generated set's) seed: --seed, never --search-seed
    cache_dir: Path
    progress: bool

    @classmethod
    def of(cls, settings: StudySettings) -> DataSettings:
        return cls(
            data=settings.data, size=settings.size, crop=settings.crop, merge=tuple(settings.merge),
            drop=tuple(settings.drop),
            extra_columns=tuple(settings.extra_columns) if settings.extra_columns is not None else None,
            bands=settings.bands, hdu=settings.hdu, band_mapping=settings.band_mapping,
            soft_labels=tuple(c.strip() for c in (settings.soft_labels or "").split(",") if c.strip()),
            schema=settings.schema,
            keep_columns=tuple(settings.keep_columns or ()), max_samples=settings.max_samples,
            val_subset=settings.val_subset, synthetic_n=settings.synthetic_n, seed=settings.seed,
            cache_dir=settings.results_dir / "cache", progress=settings.progress)
