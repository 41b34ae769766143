"""Classifying a whole survey: a catalogue streamed through an exported model, chunk by chunk.

The rows (image files named or found in folders, or a catalogue CSV whose ``file`` / ``file_<band>``
columns name them) are cut into chunks. Each chunk is one task — decode, crop and resize its images,
run the model under ``torch.inference_mode()`` with one thread — done by a pool of processes, one
per allotted core, or by the workers of a Dask cluster (``dask.distributed``; the ``dask`` extra),
so memory is bounded by the chunks in flight whatever the catalogue's size. Results are written in
row order as chunks finish: to one CSV whose journal (``OUT.progress.json``) records the chunks and
bytes written, so a rerun truncates a half-written chunk and resumes after the last whole one (a
kill loses at most the chunks in flight, never duplicates a row); or, for ``.parquet``, to one part
file per chunk in a folder (pyarrow). An unreadable image is a ``status`` on its row, not a crash.

Every row also gets ``domain_z`` (:mod:`galaxy_synth.input_domain`): how unlike the training images
its brightness, contrast, sky, concentration and colours are; the first chunk whose statistics are
shifted by more than half a training SD on average warns once — a model trained on one survey
is not to be trusted silently on another's images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from galaxy_common.errors import DataError
from galaxy_synth.chunk_writers import CsvChunkWriter, ParquetChunkWriter
from galaxy_synth.input_domain import DOMAIN_SHIFT_WARNING, domain_scores
from galaxy_synth.predict import (
    EXTRAS_FALLBACK,
    collect_images,
    load_model_dir,
    predict_probabilities,
    read_extras,
)
from synthesis.data.decode import decode_rows

log = logging.getLogger("galaxy_synth")
DEFAULT_CHUNK = 1024
HEAVY_MODEL_FLOPS = 200e6  # above this (FLOPs per image) the network, not decoding, is the cost: run it in every worker


@dataclass
class CatalogueRows:
    """What to classify: image path(s) per row, the columns carried into the output, the model's extra inputs."""

    paths: list[tuple[str, ...]]
    carried: pd.DataFrame
    extras: np.ndarray
    extras_note: str | None = None  # set where the training means stood in for missing extra inputs

    def __len__(self) -> int:
        return len(self.paths)

    def signature(self) -> str:
        body = json.dumps([self.paths, self.carried.columns.tolist()], default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def rows_from_catalogue(loaded: Any, csv: str | Path, keep_columns: Sequence[str] = ()) -> CatalogueRows:
    """A catalogue CSV: ``file`` (or ``file_<band>`` for a per-band FITS model), optional ``id``, the model's
    extra inputs where present, ``keep_columns`` carried into the output. Paths are relative to the CSV."""
    csv = Path(csv)
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"catalogue not found: {csv}") from None
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read catalogue {csv}: {str(exc).splitlines()[0]}") from None
    layout = loaded.config.fits or {}
    file_columns = [f"file_{b}" for b in layout.get("band_names", ())] if layout.get("per_band_files") else ["file"]
    absent = [c for c in [*file_columns, *keep_columns] if c not in df.columns]
    if absent:
        raise DataError(f"catalogue {csv} has no column {absent[0]!r} (found: {', '.join(df.columns)})")
    base = csv.parent
    paths = [tuple(str(p if Path(p).is_absolute() else base / p) for p in row) for row in df[file_columns].itertuples(index=False)]
    carried = df[[c for c in dict.fromkeys(["id", *file_columns, *keep_columns]) if c in df.columns]].reset_index(drop=True)
    names = loaded.extra_names
    if names and all(n in df.columns for n in names):
        extras = df[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
        if not np.isfinite(extras).all():
            row = int(np.argwhere(~np.isfinite(extras))[0, 0])
            raise DataError(f"catalogue {csv} line {row + 2}: non-numeric or missing {', '.join(names)}")
        return CatalogueRows(paths, carried, extras)
    return CatalogueRows(paths, carried, *_extras(loaded, None, paths))


def rows_from_files(loaded: Any, images: Sequence[str | Path], extras_csv: str | Path | None = None) -> CatalogueRows:
    """Image files named directly or found in folders; extra inputs from ``extras_csv`` (by file name or id)."""
    files = collect_images(images)
    return CatalogueRows([(str(f),) for f in files], pd.DataFrame({"file": [str(f) for f in files]}),
                         *_extras(loaded, extras_csv, files))


def _extras(loaded: Any, extras_csv: str | Path | None, files: Sequence[Any]) -> tuple[np.ndarray, str | None]:
    """The model's extra inputs (:func:`galaxy_synth.predict.read_extras`; without a CSV, the training means) and the
    note that flags the fallback."""
    names = loaded.extra_names
    extras = read_extras(extras_csv, files, names, fallback=loaded.card["extra_inputs"].get("mean"))
    return extras, EXTRAS_FALLBACK if names and extras_csv is None else None


# ---------------------------------------------------------------------------------------------- one chunk


@dataclass(frozen=True)
class ChunkJob:
    """One task: the model folder, its rows' paths and extra inputs, and whether to average over views."""

    index: int
    model_dir: str
    paths: tuple[tuple[str, ...], ...]
    extras: np.ndarray
    tta: bool
    precision: str = "fp32"


@lru_cache(maxsize=2)
def _loaded(model_dir: str) -> Any:
    """The model, once per worker process (a Dask worker or a pool process keeps it between chunks)."""
    import torch

    torch.set_num_threads(1)  # one thread per process: the allotted cores are filled with processes
    return load_model_dir(model_dir)


def classify_chunk(job: ChunkJob) -> pd.DataFrame:
    """One task: :func:`classify_rows` with the worker's copy of the model."""
    return classify_rows(_loaded(job.model_dir), job.paths, job.extras, job.tta, job.precision)


def classify_rows(loaded: Any, paths: Sequence[Sequence[str]], extras: np.ndarray, tta: bool = False,
                  precision: str = "fp32") -> pd.DataFrame:
    """Decode, predict and score rows; a row whose image cannot be read gets its error as ``status``."""
    return score_decoded(loaded, *decode_rows(_decode_args(loaded, paths)), extras, tta, precision)


def _decode_args(loaded: Any, paths: Sequence[Sequence[str]]) -> tuple:
    config = loaded.config
    return [tuple(r) for r in paths], config.image_size, config.crop, (config.fits or {}) if loaded.is_fits else None


def score_decoded(loaded: Any, images: np.ndarray, status: list[str], extras: np.ndarray, tta: bool = False,
                  precision: str = "fp32") -> pd.DataFrame:
    """Predictions for decoded rows (:func:`synthesis.data.decode.decode_rows`): status, class, confidence,
    calibrated probabilities, domain_z; NaN where the row could not be read."""
    inputs = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    ok = np.array([s == "ok" for s in status], dtype=bool)
    names = loaded.class_names
    probs = np.full((len(status), len(names)), np.nan, np.float32)
    if ok.any():
        probs[ok] = predict_probabilities(loaded, inputs[ok], np.asarray(extras)[ok], tta, precision=precision)
    filled = np.nan_to_num(probs)
    out = pd.DataFrame({"status": status,
                        "predicted": [names[int(k)] if good else "" for k, good in zip(filled.argmax(1), ok)],
                        "confidence": np.where(ok, filled.max(axis=1), np.nan)})
    for k, name in enumerate(names):
        out[f"p_{name}"] = probs[:, k]
    out["domain_z"] = np.nan
    if ok.any():
        per_image, shift = domain_scores(loaded, inputs[ok])
        out.loc[ok, "domain_z"] = per_image
        out.attrs["domain_shift"] = shift  # the chunk's effect size, read by the writer's tally
    return out


def predict_files(loaded: Any, files: Sequence[str | Path], extras_csv: str | Path | None = None,
                  tta: bool = False) -> pd.DataFrame:
    """One row per image file, in memory (the Python API; ``galaxy-synth predict`` streams instead): the file,
    status, predicted class, confidence, every calibrated class probability, domain_z.

    A model trained with extra inputs (z, z_err) and no ``extras_csv`` gets the training-set means
    for every image; the ``extra_inputs`` column says so on every row.
    """
    rows = rows_from_files(loaded, files, extras_csv)
    table = pd.concat([rows.carried, classify_rows(loaded, rows.paths, rows.extras, tta)], axis=1)
    if rows.extras_note:
        table["extra_inputs"] = rows.extras_note
    return table


# ---------------------------------------------------------------------------------------------- running


@dataclass
class CatalogueSummary:
    rows: int
    written_now: int
    resumed_chunks: int
    failed: int
    counts: dict[str, int]
    out: Path
    domain_warning: str | None
    extras_note: str | None = None
    extra_names: tuple[str, ...] = ()


def classify_catalogue(model_dir: str | Path, rows: CatalogueRows, out: str | Path, tta: bool = False, precision: str = "fp32",
                       chunk_size: int = DEFAULT_CHUNK, workers: int | None = None, dask: str | None = None,
                       overwrite: bool = False, progress: bool = True) -> CatalogueSummary:
    """Classify every row into ``out`` (CSV or Parquet folder), resuming a run of the same model and rows.

    ``precision``: "fp32", or "bf16" (autocast; on a CPU with AMX the network 1.1-2.3× faster; probabilities move by
    at most ~0.02 and 0.1% of predicted classes change on gz1 —
    docs/BENCHMARKS.md §20)."""
    loaded = load_model_dir(model_dir)  # one line now if the folder is broken, not in every worker
    out = Path(out)
    if chunk_size < 1:
        raise DataError("--chunk-size must be >= 1")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise DataError(f"cannot write {out}: its folder {out.parent} does not exist or is not writable")
    if dask:
        _dask_client_class()  # one line now if dask.distributed is missing, before the output is touched
    signature = hashlib.sha256(f"{rows.signature()}|{_model_signature(loaded)}|{tta}|{precision}|{chunk_size}".encode()).hexdigest()[:16]
    writer = (ParquetChunkWriter if out.suffix == ".parquet" else CsvChunkWriter)(out, signature, overwrite)
    starts = list(range(0, len(rows), chunk_size))
    todo = [ChunkJob(i, str(Path(model_dir).resolve()), tuple(rows.paths[s:s + chunk_size]), rows.extras[s:s + chunk_size], tta,
                     precision)
            for i, s in enumerate(starts) if i >= writer.chunks_done]
    resumed = len(starts) - len(todo)
    state = {"failed": 0, "counts": {}, "warning": None, "written": 0}
    if not writer.complete:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), initial=min(len(rows), resumed * chunk_size), desc="classifying", unit="img",
                   unit_scale=True, disable=not progress)
        try:
            for job, table in _results_in_order(todo, workers, dask):
                start = starts[job.index]
                carried = rows.carried.iloc[start:start + len(job.paths)].reset_index(drop=True)
                shift = table.attrs.get("domain_shift")
                table = pd.concat([carried, table], axis=1)
                if rows.extras_note:
                    table["extra_inputs"] = rows.extras_note
                writer.append(table)
                _tally(state, table, shift)
                bar.update(len(table))
        finally:
            bar.close()
        writer.finish()
    return CatalogueSummary(len(rows), state["written"], resumed, state["failed"], state["counts"], out, state["warning"],
                            rows.extras_note, tuple(loaded.extra_names))


def _tally(state: dict, table: pd.DataFrame, shift: tuple[float, str] | None) -> None:
    state["written"] += len(table)
    state["failed"] += int((table["status"] != "ok").sum())
    for name, n in table.loc[table["status"] == "ok", "predicted"].value_counts().items():
        state["counts"][name] = state["counts"].get(name, 0) + int(n)
    if state["warning"] is None and shift is not None and shift[0] > DOMAIN_SHIFT_WARNING:
        d, feature = shift
        state["warning"] = (f"these images are not like the training images: their {feature} lies {d:.1f} training SDs "
                            f"from the training images' on average (over a chunk; > {DOMAIN_SHIFT_WARNING:g} warns; "
                            "per image: domain_z): do not trust the probabilities without checking some by eye")
        log.warning("%s", state["warning"])


def _model_signature(loaded: Any) -> str:
    card = loaded.card
    return f"{card.get('spec_hash')}|{card.get('created')}|{card.get('trial')}|{card.get('study')}"


def _results_in_order(jobs: list[ChunkJob], workers: int | None, dask: str | None) -> Iterator[tuple[ChunkJob, pd.DataFrame]]:
    """(job, result) in job order, from Dask workers, a process pool, or this process for a single chunk."""
    if not jobs:
        return
    if dask:
        yield from _dask_results(jobs, dask, workers)
        return
    if workers is None:
        from synthesis.hardware.cores import allotted_cores

        workers = allotted_cores().cores
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        import torch

        previous = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            for job in jobs:
                yield job, classify_chunk(job)
        finally:
            torch.set_num_threads(previous)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    loaded = _loaded(jobs[0].model_dir)
    context = multiprocessing.get_context("spawn")  # never fork a process whose OpenMP pool may have run: it can hang
    if loaded.card.get("flops_per_image", 0) > HEAVY_MODEL_FLOPS:
        # The network costs more than decoding (ResNet-18: 70 ms an image at 64 px against 1 ms): each process
        # decodes and runs it, one thread each, so every allotted core runs the network (torch in each: more memory).
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            yield from _bounded(jobs, lambda job: pool.submit(classify_chunk, job), lambda f: f.result(), ahead=2 * workers)
        return
    # A small network: decoding in a pool of light processes (no torch: ~35 MB each), the network here with one
    # thread, so only one process holds torch (a 100k-image run stayed under 1 GB, §20).
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            decoded = _bounded(jobs, lambda job: pool.submit(decode_rows, _decode_args(loaded, job.paths)),
                               lambda f: f.result(), ahead=2 * workers)
            for job, (images, status) in decoded:
                yield job, score_decoded(loaded, images, status, job.extras, job.tta, job.precision)
    finally:
        torch.set_num_threads(previous)


def _bounded(jobs: list[ChunkJob], submit: Callable[[ChunkJob], Any], result: Callable[[Any], Any],
             ahead: int) -> Iterator[tuple[ChunkJob, Any]]:
    """Keep at most ``ahead`` chunks in flight (memory stays bounded), yield their results in job order."""
    pending: list[tuple[ChunkJob, Any]] = []
    queue = iter(jobs)
    for job in queue:
        pending.append((job, submit(job)))
        if len(pending) >= ahead:
            break
    while pending:
        job, future = pending.pop(0)
        value = result(future)
        nxt = next(queue, None)
        if nxt is not None:
            pending.append((nxt, submit(nxt)))
        yield job, value


def _dask_client_class() -> tuple[Any, Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DataError("--dask needs dask.distributed: pip install 'galaxy-synth[dask]'") from None
    return Client, LocalCluster


def _dask_results(jobs: list[ChunkJob], address: str, workers: int | None) -> Iterator[tuple[ChunkJob, pd.DataFrame]]:
    """The same chunks as tasks on a Dask cluster: ``local`` (one started here) or a scheduler's address."""
    Client, LocalCluster = _dask_client_class()
    cluster = None
    if address == "local":
        from synthesis.hardware.cores import allotted_cores

        n = workers or allotted_cores().cores
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1", silence_logs=logging.WARNING)
        client = Client(cluster)
    else:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise DataError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        yield from _bounded(jobs, lambda job: client.submit(classify_chunk, job, pure=False, retries=2),
                            lambda f: f.result(), ahead=4 * n_workers)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
