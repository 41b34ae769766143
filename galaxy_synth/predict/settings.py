"""The predict stage's own settings: one run of a packaged model over images or a catalogue, made once where the
request comes in (``galaxy-synth predict``'s arguments, :func:`galaxy_synth.api.classify`'s keywords).

Torch-free, as everything a catalogue run does before the weights load."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PredictSettings:
    """One ``predict`` run: the model folder, what goes in (image paths or a catalogue, its extra inputs and kept
    columns), how it runs (chunks, workers or Dask, precision, engine, test-time augmentation) and where it goes.

    ``precision`` (fp32, bf16, auto) and ``engine`` (torch, onnx, auto) are requests until
    :func:`galaxy_synth.predict.catalogue.inference_settings` settles them for the model and the CPU."""

    model: Path
    images: tuple[str | Path, ...] = ()
    catalogue: str | Path | None = None
    extra_csv: str | Path | None = None
    keep_columns: tuple[str, ...] = ()
    out: Path = Path("predictions.csv")
    tta: bool = False
    chunk_size: int = 1024
    workers: int | None = None
    dask: str | None = None
    precision: str = "fp32"
    engine: str = "torch"
    overwrite: bool = False
    progress: bool = True
    embeddings: bool = False  # also each galaxy's pooled features (galaxy_synth.predict.embeddings)
    target_error: float | None = None  # the `reliable` column's target (None: the card's threshold, if any)

    @classmethod
    def of(cls, args: argparse.Namespace) -> PredictSettings:
        """From ``galaxy-synth predict``'s parsed arguments (``--keep-columns`` is one comma-separated option)."""
        return cls(model=Path(args.model), images=tuple(args.images), catalogue=args.catalogue, extra_csv=args.extra,
                   keep_columns=tuple(c.strip() for c in args.keep_columns.split(",") if c.strip()), out=Path(args.out),
                   tta=args.tta, chunk_size=args.chunk_size, workers=args.workers, dask=args.dask,
                   precision=args.precision, engine=args.engine, overwrite=args.overwrite, progress=args.progress,
                   embeddings=args.embeddings, target_error=getattr(args, "target_error", None))
