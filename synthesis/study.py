"""The resumable synthesis study: data → search space → short trials → Optuna storage.

Everything a resumed or parallel run must agree on (data fingerprint, split indices, epochs,
sampler options…) is written into the study's user attrs when the study is created and checked
on every later run, so ``make synth`` after a crash continues the *same* experiment.

Robustness comes from Optuna's own pieces, not a scheduler of ours: heartbeats with
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` re-queue a trial whose process died,
and :class:`~optuna.study.MaxTrialsCallback` makes ``--trials N`` mean N *completed* trials in
total across restarts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd
import sqlalchemy
import torch
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from proxies.composite import CompositeProxy
from proxies.metrics import early_training_metrics
from proxies.zero_cost import zero_cost_scores
from synthesis.device import resolve_device
from synthesis.data import ClassMap, GalaxyImages, find_mirror_pairs, load_dataset
from synthesis.errors import GalaxySynthError, StudyMismatchError
from synthesis.models import build_model, count_flops, count_params
from synthesis.space import SearchSpace
from synthesis.spec import ArchSpec, TrainConfig
from synthesis.splits import stratified_split, stratified_subset
from synthesis.training import (
    ExtraScaler,
    Normalizer,
    TensorSplit,
    TrainingDiverged,
    to_tensor_split,
    train_model,
)

log = logging.getLogger("galaxy_synth")
STUDY_ATTR = "galaxy_synth"  # the study user attr that holds the frozen experiment settings
OBJECTIVES = ("composite", "val_acc", "multi")
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "proxies" / "calibrations" / "default.json"


def default_storage_url(results: Path) -> str:
    """The SQLite study database inside the results folder."""
    return f"sqlite:///{(Path(results) / 'study.db').as_posix()}"


@dataclass
class StudySettings:
    """All options of ``galaxy-synth synth``; see the CLI's ``--help`` for their meaning."""

    data: str | None = None
    size: int = 64
    crop: float | None = None
    merge: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    extra_columns: list[str] | None = None
    max_samples: int = 2000
    val_subset: int = 500
    seed: int = 0
    epochs: int = 2
    trials: int = 20
    storage: str | None = None
    study: str = "galaxy-synth"
    device: str = "auto"
    results: str = "results"
    max_params: int = 5_000_000
    max_mflops: float | None = None
    pruner: str = "auto"
    objective: str = "composite"
    calibration: str | None = None
    loss: str = "ce"
    label_smoothing: float = 0.0
    synthetic_n: int = 3000
    heartbeat_interval: int = 10
    grace_period: int | None = None
    progress: bool = True
    sampler: str = "tpe"
    strategy: str = "tpe"  # or "progressive" (synthesis.progressive)
    worker_id: int = 0  # which of several parallel workers this process is (seeds its sampler)
    poll_seconds: float = 2.0  # how often an idle worker looks whether the last trials finished

    @property
    def results_dir(self) -> Path:
        return Path(self.results)

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage_url(self.results_dir)

    def frozen(self) -> dict[str, Any]:
        """Settings a resumed study must keep (changing them would mix incomparable trials)."""
        return {
            "data": self.data, "size": self.size, "crop": self.crop, "merge": sorted(self.merge), "drop": sorted(self.drop),
            "max_samples": self.max_samples, "val_subset": self.val_subset, "seed": self.seed,
            "epochs": self.epochs, "objective": self.objective, "synthetic_n": self.synthetic_n,
            "loss": self.loss, "label_smoothing": self.label_smoothing, "strategy": self.strategy,
        }


# ---------------------------------------------------------------------------------------------
# Storage, sampler, pruner


def open_storage(url: str, heartbeat_interval: int = 10, grace_period: int | None = None) -> RDBStorage:
    """An RDB storage (SQLite file or any SQLAlchemy URL) with heartbeats and stale-trial retry.

    SQLite is made safe for several worker processes (see :func:`_serialise_sqlite_writes`).
    """
    engine_kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        # Wait for a lock instead of failing at once; isolation_level=None hands BEGIN to us.
        engine_kwargs = {"connect_args": {"timeout": 60, "isolation_level": None}}
    elif url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"pool_pre_ping": True}  # a long trial outlives idle server connections
    storage = RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period or 3 * heartbeat_interval,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
    )
    if sqlite:
        _serialise_sqlite_writes(storage.engine)
    return storage


def _serialise_sqlite_writes(engine: sqlalchemy.engine.Engine) -> None:
    """Every transaction takes SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``), in WAL mode.

    Why: SQLite ignores ``SELECT … FOR UPDATE``, and Python's sqlite3 runs the SELECT outside the
    transaction, so two workers can both pop the same WAITING trial (a stale-trial retry or an
    enqueued one): it runs twice and one worker fails with "Cannot tell a COMPLETE trial"
    (bench/storage_race.py reproduces it). Taking the lock at BEGIN makes read-check-update
    atomic; WAL lets readers (rank, the dashboard) go on while a worker writes.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened by RDBStorage's own setup predate the listeners


SAMPLERS = ("tpe", "random")


def make_sampler(seed: int, n_existing: int, worker_id: int = 0,
                 name: str = "tpe") -> tuple[optuna.samplers.BaseSampler, dict[str, Any]]:
    """TPE with explicit options (Optuna 5 changed its defaults), a resume-aware, per-worker seed.

    A resumed run re-seeds with ``seed + n_existing`` so that it does not replay the random
    start-up samples of the first run; each parallel worker adds its own offset so that workers
    do not sample the same start-up architectures. ``constant_liar`` makes TPE treat the other
    workers' running trials as bad results, so parallel workers spread out instead of piling onto
    one region. (With several workers the sampled sequence depends on which trial finishes first,
    so it is reproducible per worker only up to that timing.)
    """
    run_seed = seed + 7919 * n_existing + 104_729 * worker_id
    if name == "random":  # the baseline TPE has to beat
        return optuna.samplers.RandomSampler(seed=run_seed), {"name": "RandomSampler", "seed": seed}
    if name != "tpe":
        raise GalaxySynthError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")
    options = {"n_startup_trials": 10, "multivariate": True, "group": True, "constant_liar": True}
    sampler = optuna.samplers.TPESampler(seed=run_seed, **options)
    return sampler, {"name": "TPESampler", "seed": seed, **options}


def make_pruner(name: str, epochs: int, objective: str = "composite") -> tuple[optuna.pruners.BasePruner, str]:
    """``auto``: median pruning only when trials have >= 4 epochs.

    With 2-epoch trials the only pruning point is after epoch 1, where validation accuracy
    barely ranks architectures (see docs/BENCHMARKS.md); pruning there would discard
    candidates on noise and leave them without the metrics the composite proxy needs.
    """
    if objective == "multi":
        if name == "median":
            raise GalaxySynthError("--objective multi cannot prune: Optuna does not prune multi-objective trials")
        name = "none"
    if name == "auto":
        name = "median" if epochs >= 4 else "none"
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=10, n_warmup_steps=1), name
    if name == "none":
        return optuna.pruners.NopPruner(), name
    raise GalaxySynthError(f"unknown pruner {name!r} (auto, median or none)")


# ---------------------------------------------------------------------------------------------
# Data for trials


@dataclass
class TrialData:
    """What every trial trains and validates on, already on the device."""

    train: TensorSplit
    val: TensorSplit
    normalizer: Normalizer
    extra_scaler: ExtraScaler
    class_names: tuple[str, ...]
    mirror_pairs: list[tuple[int, int]]
    allow_flips: bool
    image_size: int
    n_extra: int
    device: torch.device


def data_plan(data: GalaxyImages, settings: StudySettings) -> dict[str, list[int]]:
    """Split indices (train/val/test) and the bounded trial subsets, all from the seed."""
    split = stratified_split(data.labels, seed=settings.seed)
    trial_train = stratified_subset(split["train"], data.labels, settings.max_samples, seed=settings.seed + 1)
    trial_val = stratified_subset(split["val"], data.labels, settings.val_subset, seed=settings.seed + 2)
    return {**{k: v.tolist() for k, v in split.items()}, "trial_train": trial_train.tolist(), "trial_val": trial_val.tolist()}


def mirror_policy(class_names: tuple[str, ...]) -> tuple[list[tuple[int, int]], bool]:
    pairs, unpaired = find_mirror_pairs(class_names)
    if unpaired:
        log.warning("class(es) %s look chiral but have no mirror partner: flips disabled, rotations only", unpaired)
    return pairs, not unpaired


def build_trial_data(data: GalaxyImages, plan: dict[str, list[int]], device: torch.device) -> TrialData:
    train_idx = np.array(plan["trial_train"])
    val_idx = np.array(plan["trial_val"])
    normalizer = Normalizer.fit(data.images[np.array(plan["train"])])
    scaler = ExtraScaler.fit(data.extras[np.array(plan["train"])])
    pairs, allow_flips = mirror_policy(data.class_names)
    return TrialData(
        train=to_tensor_split(data, train_idx, scaler, device),
        val=to_tensor_split(data, val_idx, scaler, device),
        normalizer=normalizer,
        extra_scaler=scaler,
        class_names=data.class_names,
        mirror_pairs=pairs,
        allow_flips=allow_flips,
        image_size=data.size,
        n_extra=data.extras.shape[1],
        device=device,
    )


def load_study_data(settings: StudySettings) -> GalaxyImages:
    """Load and validate the dataset before anything touches the study storage."""
    return load_dataset(
        settings.data,
        size=settings.size,
        crop=settings.crop,
        class_map=ClassMap.parse(settings.merge, settings.drop),
        cache_dir=settings.results_dir / "cache",
        extra_columns=settings.extra_columns,
        synthetic_n=settings.synthetic_n,
        synthetic_seed=settings.seed,
        progress=settings.progress,
    )


# ---------------------------------------------------------------------------------------------
# The study


def find_calibration(path: str | None, results: Path) -> tuple[CompositeProxy, Path]:
    """``path`` if given, else ``RESULTS/proxy_weights.json`` if calibrated, else the shipped default."""
    candidates = [Path(path)] if path else [results / "proxy_weights.json", DEFAULT_CALIBRATION]
    for candidate in candidates:
        if candidate.exists():
            try:
                return CompositeProxy.load(candidate), candidate
            except ValueError as exc:
                raise GalaxySynthError(str(exc)) from None
    raise GalaxySynthError(f"proxy calibration not found: {candidates[0]}")


def open_study(settings: StudySettings, data: GalaxyImages, storage: RDBStorage | None = None) -> tuple[optuna.Study, dict[str, Any]]:
    """Create the study, or load it and check that it was made with the same settings.

    A new study freezes its proxy calibration into its attrs; a resumed one keeps that one, so
    the objective TPE sees never changes meaning mid-study (re-ranking is ``galaxy-synth rank``).
    """
    if settings.objective not in OBJECTIVES:
        raise GalaxySynthError(f"unknown --objective {settings.objective!r} (choose from {', '.join(OBJECTIVES)})")
    storage = storage or open_storage(settings.storage_url, settings.heartbeat_interval, settings.grace_period)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    n_existing = 0
    if settings.study in existing:
        attrs = existing[settings.study].user_attrs.get(STUDY_ATTR)
        if attrs is None:
            raise StudyMismatchError(f"study {settings.study!r} in {settings.storage_url} was not made by galaxy-synth; choose another --study")
        check_same_experiment(attrs, settings, data)
        n_existing = existing[settings.study].n_trials
    else:
        attrs = None
    sampler, sampler_info = make_sampler(settings.seed, n_existing, settings.worker_id, settings.sampler)
    pruner, pruner_name = make_pruner(settings.pruner, settings.epochs, settings.objective)
    directions = ["maximize", "minimize"] if settings.objective == "multi" else ["maximize"]
    calibration = None
    if attrs is None and settings.objective != "val_acc":
        calibration = find_calibration(settings.calibration, settings.results_dir)[0].to_dict()
    study = optuna.create_study(storage=storage, study_name=settings.study, directions=directions,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if attrs is None:
        attrs = {
            "settings": settings.frozen(),
            "fingerprint": data.fingerprint,
            "class_names": list(data.class_names),
            "extra_names": list(data.extra_names),
            "image_size": data.size,
            "crop": data.crop,
            "n_images": len(data),
            "plan": data_plan(data, settings),
            "sampler": sampler_info,
            "pruner": pruner_name,
            "objective": settings.objective,
            "directions": directions,
            "calibration": calibration,
            "search_space": SearchSpace().to_dict(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
        }
        study.set_user_attr(STUDY_ATTR, attrs)
    return study, attrs


def check_same_experiment(attrs: dict[str, Any], settings: StudySettings, data: GalaxyImages) -> None:
    # A setting added after the study was created counts as its default (so old studies resume).
    stored = {**StudySettings().frozen(), **attrs["settings"]}
    now = settings.frozen()
    diffs = [f"{k}: study has {stored.get(k)!r}, now {now[k]!r}" for k in now if stored.get(k) != now[k]]
    if diffs:
        raise StudyMismatchError(f"study {settings.study!r} was created with other settings ({'; '.join(diffs)}); "
                                 f"use the same options to resume it, or a new --study name")
    if attrs["fingerprint"] != data.fingerprint:
        raise StudyMismatchError(f"study {settings.study!r} was created on different data (fingerprint "
                                 f"{attrs['fingerprint']} vs {data.fingerprint}); use a new --study name")


def trial_seed(trial: optuna.Trial, base_seed: int) -> int:
    """Per-trial seed; a retried trial reuses its original's, so its metrics reproduce."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    number = original if original is not None else trial.number
    return base_seed * 100_003 + number


class Objective:
    """Build the trial's model from its spec, train ``epochs``, record everything, score it."""

    def __init__(self, trial_data: TrialData, settings: StudySettings, calibration: dict[str, Any] | None = None,
                 space: SearchSpace | None = None) -> None:
        self.data = trial_data
        self.settings = settings
        self.proxy = CompositeProxy.from_dict(calibration) if calibration else None
        self.space = space or SearchSpace()

    def zero_cost(self, model: torch.nn.Module) -> dict[str, float]:
        """Zero-cost scores at initialisation on 32 (un-augmented) training images.

        32 keeps their cost near 2% of a default trial (64 images measured 5%) while NASWOT's
        32×32 kernel and Jacobian correlations stay well-defined.
        """
        d = self.data
        n = min(32, len(d.train))
        x = d.normalizer(d.train.x[:n]).contiguous(memory_format=torch.channels_last)
        y, extra = d.train.y[:n], d.train.extra[:n]
        model.to(memory_format=torch.channels_last)  # as in training: faster on CPU

        def forward(m, inp):
            # SynFlow feeds one all-ones image in float64; the others the n images above.
            return m(inp, extra[: inp.shape[0]].to(device=inp.device, dtype=inp.dtype)) if d.n_extra else m(inp)

        return zero_cost_scores(model, x, y, forward)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        d = self.data
        if surplus_trial(trial.study, trial.number, self.settings.trials):
            trial.set_user_attr("prune_reason", f"surplus: other workers' trials already reach --trials {self.settings.trials}")
            raise optuna.TrialPruned("surplus trial")
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it (many machines)
        spec, train_cfg = self.space.suggest(trial, len(d.class_names), d.image_size, d.n_extra)
        train_cfg = train_cfg.replace(loss=self.settings.loss, label_smoothing=self.settings.label_smoothing)
        seed = trial_seed(trial, self.settings.seed)
        torch.manual_seed(seed)
        model = build_model(spec)
        params = count_params(model)
        trial.set_user_attr("arch", spec.to_dict())
        trial.set_user_attr("spec_hash", spec.spec_hash())
        trial.set_user_attr("train_config", train_cfg.to_dict())
        trial.set_user_attr("params", params)
        trial.set_user_attr("seed", seed)
        if params > self.settings.max_params:
            trial.set_user_attr("prune_reason", f"params {params} > --max-params {self.settings.max_params}")
            raise optuna.TrialPruned(f"{params} params exceed the cap")
        flops = count_flops(model, spec)
        trial.set_user_attr("flops", flops)
        if self.settings.max_mflops is not None and flops > self.settings.max_mflops * 1e6:
            trial.set_user_attr("prune_reason", f"{flops / 1e6:.0f} MFLOPs > --max-mflops {self.settings.max_mflops:g}")
            raise optuna.TrialPruned("FLOPs exceed the cap")
        model.to(d.device)
        zc = self.zero_cost(model)
        multi = self.settings.objective == "multi"

        def report(record) -> None:
            if multi:  # Optuna cannot prune (or take reports from) multi-objective trials
                return
            trial.report(record.val_acc, step=record.epoch)
            if trial.should_prune():
                trial.set_user_attr("prune_reason", f"pruner stopped it after epoch {record.epoch} (val_acc {record.val_acc:.3f})")
                raise optuna.TrialPruned()

        t0 = time.perf_counter()
        try:
            history = train_model(
                model, d.train, train_cfg, self.settings.epochs, normalizer=d.normalizer,
                num_classes=len(d.class_names), val=d.val, mirror_pairs=d.mirror_pairs,
                allow_flips=d.allow_flips, seed=seed, on_epoch_end=report,
            )
        except TrainingDiverged as exc:
            trial.set_user_attr("prune_reason", f"diverged: {exc}")
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except torch.OutOfMemoryError:
            trial.set_user_attr("prune_reason", "out of device memory")
            raise optuna.TrialPruned("out of memory") from None
        wall = time.perf_counter() - t0
        last = history.last
        trial.set_user_attr("history", history.to_dict())
        trial.set_user_attr("wall_seconds", wall)
        trial.set_user_attr("images_per_second", float(np.mean([e.images_per_second for e in history.epochs])))
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc"):
            trial.set_user_attr(key, getattr(last, key))
        metrics = {**early_training_metrics(history.to_dict(), params, flops), **zc}
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("zc_fraction_of_trial", zc["zc_seconds"] / max(wall + zc["zc_seconds"], 1e-9))
        if self.proxy is None:
            return float(last.val_acc)
        score = float(self.proxy.predict(pd.DataFrame([metrics]))[0])
        trial.set_user_attr("proxy_score", score)
        if not math.isfinite(score):
            trial.set_user_attr("prune_reason", "proxy score is not finite")
            raise optuna.TrialPruned("proxy score is not finite")
        return (score, float(params)) if multi else score


# ---------------------------------------------------------------------------------------------
# Running


def completed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


class ProgressBar:
    """tqdm bar over completed trials (resumes from the stored count), with the best so far."""

    def __init__(self, target: int, done: int, enabled: bool = True) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=target, initial=done, desc="trials", unit="trial", disable=not enabled, dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TrialState.COMPLETE:
            self.bar.update(1)
        best = None
        if len(study.directions) == 1:
            try:
                best = study.best_value
            except ValueError:
                pass
        last = f"{trial.values[0]:.3f}" if trial.values else trial.state.name.lower()
        self.bar.set_postfix_str(f"last #{trial.number} {last} | best {best:.3f}" if best is not None else f"last #{trial.number} {last}")

    def close(self) -> None:
        self.bar.close()


def surplus_trial(study: optuna.Study, number: int, target: int) -> bool:
    """True when COMPLETE trials plus RUNNING ones started before ``number`` already reach ``target``.

    The backstop against two workers starting the last trial at the same moment: the later one
    (higher number) yields, so the study ends with exactly ``target`` COMPLETE trials.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    ahead = sum(1 for t in trials if t.state == TrialState.COMPLETE or t.number < number)
    return ahead >= target


def optimize_to_target(study: optuna.Study, objective: Callable[[optuna.Trial], Any], target: int,
                       max_attempts: int, callbacks: list[Callable] = (), poll_seconds: float = 2.0) -> None:
    """Run trials one at a time until the study holds ``target`` COMPLETE trials, from any worker.

    Several processes may run this on one storage. A worker starts a trial only while COMPLETE +
    RUNNING < target; otherwise it waits, because a running trial may still die: its worker's
    heartbeat goes stale, Optuna fails it and queues a retry (WAITING), which the next free worker
    picks up. ``max_attempts`` bounds this worker's trials (every trial could be pruned).
    """
    attempts = 0
    while attempts < max_attempts:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial → FAIL + queued retry
        states = [t.state for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))]
        complete = states.count(TrialState.COMPLETE)
        if complete >= target:
            return
        if complete + states.count(TrialState.RUNNING) >= target:
            time.sleep(poll_seconds)
            continue
        study.optimize(objective, n_trials=1, callbacks=list(callbacks), gc_after_trial=False)
        attempts += 1


def prepare_study(settings: StudySettings) -> tuple[optuna.Study, dict[str, Any], GalaxyImages]:
    """Validate the data and create (or check) the study, before any training starts."""
    data = load_study_data(settings)  # validation errors surface here, before any storage write
    study, attrs = open_study(settings, data)
    return study, attrs, data


def run_study(settings: StudySettings, on_ready: Callable[[optuna.Study], None] | None = None) -> optuna.Study:
    """Run (or resume) the study until ``settings.trials`` trials are COMPLETE in total."""
    study, attrs, data = prepare_study(settings)
    device = resolve_device(settings.device)
    trial_data = build_trial_data(data, attrs["plan"], device)
    log.info("study %r on %s: %s", settings.study, settings.storage_url, device)
    if on_ready is not None:
        on_ready(study)
    done = len(completed_trials(study))
    remaining = settings.trials - done
    if remaining > 0:
        bar = ProgressBar(settings.trials, done, settings.progress)
        try:
            optimize_to_target(study, Objective(trial_data, settings, attrs.get("calibration")), settings.trials,
                               max_attempts=3 * remaining + 10, callbacks=[bar], poll_seconds=settings.poll_seconds)
        finally:
            bar.close()
    return study


def load_existing_study(name: str, storage: str) -> optuna.Study:
    """Load a study, or fail with one line naming the studies that do exist there."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise GalaxySynthError(f"no study {name!r} in {storage} (studies: {', '.join(names) or 'none'})") from None


def metrics_table(study: optuna.Study, proxy: CompositeProxy | None = None) -> pd.DataFrame:
    """One tidy row per trial: number, state, params, spec, every metric, proxy score (rescored).

    ``proxy`` rescored the stored raw metrics with a (possibly newer) calibration; the values TPE
    saw (``objective``) are left as they were.
    """
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name,
                               "objective": t.values[0] if t.values else None,
                               "spec_hash": t.user_attrs.get("spec_hash"), "params_count": t.user_attrs.get("params"),
                               "flops": t.user_attrs.get("flops"), "prune_reason": t.user_attrs.get("prune_reason")}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update(t.user_attrs.get("metrics", {}))
        row["arch_json"] = json.dumps(t.user_attrs.get("arch")) if t.user_attrs.get("arch") else None
        rows.append(row)
    df = pd.DataFrame(rows)
    if proxy is not None and len(df):
        scored = df["state"] == "COMPLETE"
        df["proxy_score"] = np.nan
        if scored.any():
            df.loc[scored, "proxy_score"] = proxy.predict(df.loc[scored])
        df = df.sort_values("proxy_score", ascending=False, na_position="last", ignore_index=True)
    return df


def write_table(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)


def summary_rows(study: optuna.Study, top: int = 5) -> list[dict[str, Any]]:
    """The best completed trials as plain rows (for the printed summary table)."""
    trials = sorted(completed_trials(study), key=lambda t: -(t.values[0] if t.values else -math.inf))[:top]
    rows = []
    for t in trials:
        spec = ArchSpec.from_dict(t.user_attrs["arch"])
        cfg = TrainConfig.from_dict(t.user_attrs["train_config"])
        rows.append({
            "trial": t.number,
            "objective": round(t.values[0], 4),
            "val_acc": round(t.user_attrs.get("val_acc", float("nan")), 4),
            "val_bal_acc": round(t.user_attrs.get("val_balanced_acc", float("nan")), 4),
            "params": t.user_attrs["params"],
            "arch": spec.describe(),
            "optimizer": f"{cfg.optimizer} lr={cfg.lr:.1e} bs={cfg.batch_size}",
            "seconds": round(t.user_attrs.get("wall_seconds", float("nan")), 1),
        })
    return rows


def plot_history(study: optuna.Study, path: Path) -> None:
    """Objective per completed trial and the best-so-far line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = completed_trials(study)
    if not trials:
        return
    xs = [t.number for t in trials]
    ys = [t.values[0] for t in trials]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(xs, ys, s=18, alpha=0.7, label="trial")
    ax.plot(xs, np.maximum.accumulate(ys), color="C3", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"objective: {study.user_attrs.get(STUDY_ATTR, {}).get('objective', '?')}")
    ax.set_title(f"study {study.study_name}: {len(trials)} completed trials")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.stem + ".tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
