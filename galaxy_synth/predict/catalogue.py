"""Classifying a whole survey: a catalogue streamed through an exported model, chunk by chunk.

The rows (image files named or found in folders, or a catalogue CSV whose ``file`` / ``file_<band>``
columns name them) are cut into chunks. Each chunk is one task — decode, crop and resize its images,
run the model under ``torch.inference_mode()`` with one thread — done by a pool of processes, one
per allotted core, or by the workers of a Dask cluster (``dask.distributed``; the ``dask`` extra),
so memory is bounded by the chunks in flight whatever the catalogue's size. Results are written in
row order as chunks finish: to one CSV whose journal (``OUT.progress.json``) records the chunks and
bytes written, so a rerun truncates a half-written chunk and resumes after the last whole one (a
kill loses at most the chunks in flight, never duplicates a row); or to Parquet or FITS parts
(:mod:`galaxy_synth.predict.output_formats`). An unreadable image is a ``status`` on its row, not a crash.

Every row also gets ``domain_z`` (:mod:`galaxy_synth.predict.input_domain`): how unlike the training images
its brightness, contrast, sky, concentration and colours are; the first chunk whose statistics are
shifted by more than half a training SD on average warns once — a model trained on one survey is not to be
trusted silently on another's images. A model trained on votes (``--schema``) adds its per-answer columns.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from galaxy_common import DataError
from galaxy_synth.predict.catalogue_rows import CatalogueRows, rows_from_files
from galaxy_synth.predict.uncertainty import add_reliable, add_uncertainty, classify_with_members, reliability_threshold
from galaxy_synth.predict.input_domain import DOMAIN_SHIFT_WARNING, domain_scores
from galaxy_synth.predict.model_folder import MODEL_FILES, ModelFolder, read_model_folder
from galaxy_synth.predict.onnx_engine import FP32_ONLY, NEEDS_RUNTIME
from galaxy_synth.predict.output_formats import open_writer
from galaxy_synth.predict.settings import PredictSettings
from galaxy_synth.predict.votes import add_vote_columns
from synthesis.data import decode_rows
from synthesis.hardware import cpu_bf16_flags

log = logging.getLogger("galaxy_synth")
HEAVY_MODEL_FLOPS = 200e6  # above this (FLOPs per image) the network, not decoding, is the cost: run it in every worker
DECODED_AHEAD_BYTES = 64 << 20  # decoded chunks waiting for the network: enough to cover torch's import and the model's load


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
    engine: str = "torch"
    embeddings: bool = False  # also each row's pooled features (galaxy_synth.predict.embeddings)


def _network(model_dir: str, engine: str = "torch") -> Any:
    """The network, once per process (a Dask worker or a pool process keeps it between chunks) and per version of the
    folder's files (a folder exported again is loaded again): the torch model, or ONNX Runtime on model.onnx."""
    return _network_version(model_dir, engine, tuple(_file_version(Path(model_dir) / n) for n in (*MODEL_FILES, "model.onnx")))


def _file_version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=2)
def _network_version(model_dir: str, engine: str, stamps: tuple) -> Any:
    if engine == "onnx":
        from galaxy_synth.predict.onnx_engine import OnnxModel

        return OnnxModel.load(read_model_folder(model_dir), threads=1)
    import torch

    from galaxy_synth.predict.network import load_model_dir

    torch.set_num_threads(1)  # one thread per process: the allotted cores are filled with processes
    return load_model_dir(model_dir)


def classify_chunk(job: ChunkJob) -> pd.DataFrame:
    """One task: :func:`classify_rows` with the worker's copy of the model."""
    return classify_rows(_network(job.model_dir, job.engine), job.paths, job.extras, job.tta, job.precision, job.embeddings)


def classify_rows(loaded: Any, paths: Sequence[Sequence[str]], extras: np.ndarray, tta: bool = False,
                  precision: str = "fp32", embeddings: bool = False) -> pd.DataFrame:
    """Decode, predict and score rows; a row whose image cannot be read gets its error as ``status``."""
    return score_decoded(loaded, *decode_rows(_decode_args(loaded, paths)), extras, tta, precision, embeddings)


def _decode_args(model: ModelFolder, paths: Sequence[Sequence[str]]) -> tuple:
    """What :func:`decode_rows` needs, from the card alone: a decode process never sees the network."""
    config = model.config
    return [tuple(r) for r in paths], config.image_size, config.crop, (config.fits or {}) if model.is_fits else None


def score_decoded(network: Any, images: np.ndarray, status: list[str], extras: np.ndarray, tta: bool = False,
                  precision: str = "fp32", embeddings: bool = False) -> pd.DataFrame:
    """Predictions for decoded rows (:func:`synthesis.data.decode.decode_rows`): status, class, confidence,
    calibrated probabilities, uncertainty, domain_z (and ``attrs["embeddings"]``); NaN where the row could not be read."""
    inputs = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    ok, names = np.array([s == "ok" for s in status], dtype=bool), network.class_names
    probs, vectors, members = classify_with_members(network, inputs, np.asarray(extras), ok, tta, precision, embeddings)
    filled = np.nan_to_num(probs)
    out = pd.DataFrame({"status": status,
                        "predicted": [names[int(k)] if good else "" for k, good in zip(filled.argmax(1), ok)],
                        "confidence": np.where(ok, filled.max(axis=1), np.nan)})
    out = out.assign(**{f"p_{name}": probs[:, k] for k, name in enumerate(names)})
    add_vote_columns(out, network, inputs, np.asarray(extras), ok, precision)  # --schema models: per-answer fractions
    add_uncertainty(out, network, probs, members)  # predictive_entropy (and an ensemble's mutual_information)
    out["domain_z"] = np.nan
    if ok.any():
        per_image, shift = domain_scores(network, inputs[ok])
        out.loc[ok, "domain_z"] = per_image
        out.attrs["domain_shift"] = shift  # the chunk's effect size, read by the writer's tally
    out.attrs["embeddings"] = vectors
    return out


def predict_files(loaded: Any, files: Sequence[str | Path], extras_csv: str | Path | None = None,
                  tta: bool = False) -> pd.DataFrame:
    """One row per image file, in memory (the Python API; ``galaxy-synth predict`` streams instead): the file,
    status, predicted class, confidence, every calibrated class probability, the uncertainty columns, domain_z. A model trained with extra
    inputs (z, z_err) and no ``extras_csv`` gets the training-set means; the ``extra_inputs`` column says so."""
    rows = rows_from_files(loaded, files, extras_csv)
    table = add_reliable(pd.concat([rows.carried, classify_rows(loaded, rows.paths, rows.extras, tta)], axis=1),
                         reliability_threshold(loaded, None))
    if rows.extras_note:
        table["extra_inputs"] = rows.extras_note
    return table


# ---------------------------------------------------------------------------------------------- running


def inference_settings(model: ModelFolder, precision: str = "auto", engine: str = "auto") -> tuple[str, str]:
    """(precision, engine) for this model on this CPU, or one line saying why a request cannot run.

    precision ``auto``: bf16 where the CPU has AMX (measured 1.1-2.3× faster networks, §20), else fp32. engine
    ``auto``: ONNX Runtime on the folder's model.onnx where the run is fp32 and onnxruntime is installed (1.35×
    faster small networks than fused torch on a CPU without AMX, §20), else torch; ``onnx`` runs fp32."""
    has_runtime = importlib.util.find_spec("onnxruntime") is not None
    has_file = (model.folder / "model.onnx").is_file()
    if engine == "onnx":
        if not has_file:
            raise DataError(f"--engine onnx: {model.folder} has no model.onnx (export with the onnx package installed)")
        if not has_runtime:
            raise DataError(NEEDS_RUNTIME)
        if precision == "bf16":
            raise DataError(FP32_ONLY)
        precision = "fp32"
    if precision == "auto":
        precision = "bf16" if "amx_bf16" in cpu_bf16_flags() else "fp32"
    if precision == "bf16" and not cpu_bf16_flags():
        raise DataError("--precision bf16: this CPU has no bf16 instructions (avx512_bf16 or AMX); use fp32")
    if engine == "auto":
        engine = "onnx" if precision == "fp32" and has_runtime and has_file else "torch"
    return precision, engine


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


def classify_catalogue(model: ModelFolder, rows: CatalogueRows, settings: PredictSettings) -> CatalogueSummary:
    """Classify every row into ``settings.out`` (CSV, Parquet folder or FITS), resuming a run of the same model and rows.

    ``settings.precision``: "fp32", or "bf16" (autocast; on a CPU with AMX the network 1.1-2.3× faster; probabilities
    move by at most ~0.02 and 0.1% of predicted classes change on gz1 — docs/BENCHMARKS.md §20).
    ``settings.engine``: "torch" or "onnx" (:func:`inference_settings` chooses both). Nothing is written until the
    weights have loaded and the first chunk is classified."""
    out, chunk_size, tta, precision, engine = Path(settings.out), settings.chunk_size, settings.tta, settings.precision, settings.engine
    if chunk_size < 1:
        raise DataError("--chunk-size must be >= 1")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise DataError(f"cannot write {out}: its folder {out.parent} does not exist or is not writable")
    if settings.dask:
        _dask_client_class()  # one line now if dask.distributed is missing, before the output is touched
    threshold = reliability_threshold(model, settings.target_error)  # the `reliable` column's (None: no such column)
    # the uncertainty columns are new: an output begun before them is refused (another run), never mixed
    engine_tag = ("" if engine == "torch" else f"|{engine}") + ("|embeddings" if settings.embeddings else "") + f"|uncertainty:{threshold}"
    signature = hashlib.sha256(f"{rows.signature()}|{_model_signature(model)}|{tta}|{precision}|{chunk_size}{engine_tag}".encode()).hexdigest()[:16]
    writer = open_writer(out, signature, settings.overwrite, model, settings.embeddings)
    starts = list(range(0, len(rows), chunk_size))
    todo = [ChunkJob(i, str(model.folder.resolve()), tuple(rows.paths[s:s + chunk_size]), rows.extras[s:s + chunk_size], tta,
                     precision, engine, settings.embeddings)
            for i, s in enumerate(starts) if i >= writer.chunks_done]
    resumed = len(starts) - len(todo)
    state = {"failed": 0, "counts": {}, "warning": None, "written": 0}
    if not writer.complete:
        from tqdm.auto import tqdm

        results = _results_in_order(model, todo, settings.workers, settings.dask)
        first = list(islice(results, 1))  # the weights load before this returns: a broken model.pt prints no bar
        bar = tqdm(total=len(rows), initial=min(len(rows), resumed * chunk_size), desc="classifying", unit="img",
                   unit_scale=True, disable=not settings.progress)
        try:
            for job, table in chain(first, results):
                start = starts[job.index]
                carried = rows.carried.iloc[start:start + len(job.paths)].reset_index(drop=True)
                shift, vectors = table.attrs.get("domain_shift"), table.attrs.get("embeddings")
                table = pd.concat([carried, table], axis=1)
                if rows.extras_note:
                    table["extra_inputs"] = rows.extras_note
                writer.append(add_reliable(table, threshold), vectors)
                _tally(state, table, shift)
                bar.update(len(table))
        finally:
            bar.close()
        writer.finish()
    return CatalogueSummary(len(rows), state["written"], resumed, state["failed"], state["counts"], out, state["warning"],
                            rows.extras_note, tuple(model.extra_names))


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


def _model_signature(model: ModelFolder) -> str:
    card = model.card
    return f"{card.get('spec_hash')}|{card.get('created')}|{card.get('trial')}|{card.get('study')}"


def _results_in_order(model: ModelFolder, jobs: list[ChunkJob], workers: int | None,
                      dask: str | None) -> Iterator[tuple[ChunkJob, pd.DataFrame]]:
    """(job, result) in job order, from Dask workers, a process pool, or this process for a single chunk.

    The network is loaded here, in this process, before any result is yielded: a corrupt model.pt (model.onnx for
    the ONNX engine) is one line before anything is written (and the network process needs it anyway)."""
    if not jobs:
        return
    if dask:
        with _one_thread(jobs[0].engine):
            _network(jobs[0].model_dir, jobs[0].engine)
        yield from _dask_results(jobs, dask, workers)
        return
    if workers is None:
        from synthesis.hardware import allotted_cores

        workers = allotted_cores().cores
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        yield from _in_this_process(jobs)
        return
    if model.flops_per_image > HEAVY_MODEL_FLOPS:
        # The network costs more than decoding (ResNet-18: 70 ms an image at 64 px against 1 ms): each process
        # decodes and runs it, one thread each, so every allotted core runs the network (torch in each: more memory).
        with _process_pool(workers) as pool:
            in_flight = _bounded(jobs, lambda job: pool.submit(classify_chunk, job), lambda f: f.result(), ahead=2 * workers)
            with _one_thread(jobs[0].engine):
                _network(jobs[0].model_dir, jobs[0].engine)  # checked here while the workers load theirs
            yield from in_flight
        return
    # A small network: decoding in a pool of light processes (no torch: ~35 MB each), the network here with one
    # thread, so at most one process holds torch (none with the ONNX engine, §20). The pool starts and decodes
    # first — its arguments come from the card — while this process loads the network (importing torch takes
    # ≈ 3 s that would leave a core idle); up to DECODED_AHEAD_BYTES of decoded chunks wait for it.
    with _process_pool(workers) as pool:
        decoded = _bounded(jobs, lambda job: pool.submit(decode_rows, _decode_args(model, job.paths)),
                           lambda f: f.result(), ahead=_decoded_ahead(model, len(jobs[0].paths), workers))
        with _one_thread(jobs[0].engine):
            network = _network(jobs[0].model_dir, jobs[0].engine)
            for job, (images, status) in decoded:
                yield job, score_decoded(network, images, status, job.extras, job.tta, job.precision, job.embeddings)


@contextmanager
def _process_pool(workers: int) -> Iterator[Any]:
    """Spawned processes (never fork a process whose OpenMP pool may have run: it can hang); on an error or a
    stop, the chunks not yet started are cancelled instead of decoded for nothing."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextmanager
def _one_thread(engine: str) -> Iterator[None]:
    """This process runs the network with one thread (the allotted cores are filled with processes), then as before.
    ONNX Runtime's sessions are made with one thread; that engine's process never imports torch."""
    if engine == "onnx":
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _in_this_process(jobs: list[ChunkJob]) -> Iterator[tuple[ChunkJob, pd.DataFrame]]:
    with _one_thread(jobs[0].engine):
        for job in jobs:
            yield job, classify_chunk(job)


def _decoded_ahead(model: ModelFolder, chunk_size: int, workers: int) -> int:
    """Chunks in flight for the decode pool: 2 per process at least, more while they are small (≤ 64 MB decoded)."""
    channels = len(model.config.channels)
    itemsize = 4 if model.is_fits else 1
    chunk_bytes = chunk_size * model.config.image_size ** 2 * channels * itemsize
    return max(2 * workers, min(64, DECODED_AHEAD_BYTES // max(chunk_bytes, 1)))


def _bounded(jobs: list[ChunkJob], submit: Callable[[ChunkJob], Any], result: Callable[[Any], Any],
             ahead: int) -> Iterator[tuple[ChunkJob, Any]]:
    """Submit the first ``ahead`` chunks now; then keep at most ``ahead`` in flight (memory stays bounded) and
    yield their results in job order."""
    queue = iter(jobs)
    pending = deque((job, submit(job)) for job in islice(queue, ahead))

    def in_order() -> Iterator[tuple[ChunkJob, Any]]:
        while pending:
            job, future = pending.popleft()
            value = result(future)
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, submit(nxt)))
            yield job, value

    return in_order()


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
        from synthesis.hardware import allotted_cores

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
