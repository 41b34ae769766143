"""One trial.
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback

from proxies import CompositeProxy
from proxies import guarded, is_collapsed
from proxies import early_training_metrics
from proxies import zero_cost_scores
from synthesis import Cost, objective_info
from synthesis import Objective as ObjectiveName
from synthesis.data import TrialData
from synthesis.models import CATALOGUE_BATCH, LatencyTable, build_model, cpu_images_per_second
from synthesis.models import ArchSpec, OutputLayout, TrainConfig
from synthesis.search.promotion import RungReporter
from synthesis.search.ranking import COST_COLUMNS
from synthesis.search.settings import TrialSettings
from synthesis.search.space import CapFit, fit_to_caps, refuse_mirror_blind, space_for
from synthesis.search.trials import yield_if_surplus
from synthesis.training import EpochRecord, TrainHistory, TrainingDiverged, train_model


def trial_seed(trial: optuna.Trial, base_seed: int) -> int:
    """Per-trial seed; a retried trial reuses its original's, so its metrics reproduce."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    number = original if original is not None else trial.number
    return seed_of_trial(base_seed, number)


def seed_of_trial(base_seed: int, number: int) -> int:
    """The one rule for a trial's initialisation seed: its study's seed and its number (retries keep the original's)."""
    return base_seed * 100_003 + number


def zero_cost_for(model: torch.nn.Module, data: TrialData) -> dict[str, float]:
    """Zero-cost scores at initialisation on 32 (un-augmented) training images.

    32 keeps their cost near 2% of a default trial (64 images measured 5%) while NASWOT's
    32×32 kernel and Jacobian correlations stay well-defined.
    """
    n = min(32, len(data.train))
    x = data.normalizer(data.train.x[:n]).contiguous(memory_format=torch.channels_last)
    y, extra = data.train.y[:n], data.train.extra[:n]
    model.to(memory_format=torch.channels_last)  # as in training: faster on CPU

    def forward(m, inp):
        # SynFlow feeds one all-ones image in float64 (on the CPU where the device lacks float64).
        return m(inp, extra[: inp.shape[0]].to(device=inp.device, dtype=inp.dtype)) if data.n_extra else m(inp)

    return zero_cost_scores(model, x, y, forward)


def over_cap(fitted: CapFit, s: TrialSettings) -> str:
    """Which cap a network is over, in words."""
    if s.max_params and fitted.params > s.max_params:
        return f"params {fitted.params} > --max-params {s.max_params}"
    if s.max_flops and fitted.flops > s.max_flops:
        return f"{fitted.flops / 1e6:.0f} MFLOPs > --max-mflops {s.max_mflops:g}"
    return f"predicted {fitted.ms:.3g} ms per image > --max-ms {s.max_ms:g}"


def record_architecture(trial: optuna.Trial, spec: ArchSpec, train_cfg: TrainConfig, params: int, seed: int,
                        **extra: Any) -> None:
    """What a trial is, stored before it trains (a killed trial still says what it was)."""
    attrs = {"arch": spec.to_dict(), "spec_hash": spec.spec_hash(), "train_config": train_cfg.to_dict(),
             "params": params, "seed": seed, "worker": f"{socket.gethostname()}:{os.getpid()}", **extra}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def record_training(trial: optuna.Trial, history: TrainHistory, params: int, flops: int, zc: dict[str, float],
                    wall: float, proxy: CompositeProxy | None, num_classes: int) -> dict[str, float]:
    """What a trial measured: the raw history, its metrics, whether it collapsed to one class, and (given a
    calibration) its proxy score."""
    last = history.last
    metrics = {**early_training_metrics(history.to_dict(), params, flops), **zc}
    attrs: dict[str, Any] = {
        "history": history.to_dict(), "wall_seconds": wall,
        "images_per_second": float(np.mean([e.images_per_second for e in history.epochs])),
        **{key: getattr(last, key) for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_balanced_acc")},
        **vote_metrics(last),
        "metrics": metrics, "zc_fraction_of_trial": zc.get("zc_seconds", 0.0) / max(wall + zc.get("zc_seconds", 0.0), 1e-9),
        "collapsed": is_collapsed(metrics, num_classes),
    }
    if last.val_fraction_mae is not None:  # the objective val_fraction_mae reads it from the metrics
        metrics["val_fraction_mae"] = float(last.val_fraction_mae)
    if proxy is not None:
        attrs["proxy_score"] = float(proxy.predict(pd.DataFrame([metrics]))[0])
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return metrics


class Objective:
    """Build the trial's model from its spec, train ``epochs``, record everything, score it."""

    def __init__(self, trial_data: TrialData, settings: TrialSettings, calibration: dict[str, Any] | None = None) -> None:
        self.data = trial_data
        self.settings = settings
        self.proxy = CompositeProxy.from_dict(calibration) if calibration else None
        self.space = space_for(settings.equivariant, trial_data.mirror_pairs, trial_data.allow_flips)
        self.latency = LatencyTable(settings.latency_cache)  # this machine's operator times, one CPU thread

    def zero_cost(self, model: torch.nn.Module) -> dict[str, float]:
        return zero_cost_for(model, self.data)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        d, s = self.data, self.settings
        yield_if_surplus(trial, s.trials)  # before any work; checked again when the trial would count as finished
        spec, train_cfg = self.space.suggest(trial, d.num_classes, d.image_size, d.n_extra, d.in_channels)
        spec = replace(spec, votes=OutputLayout.of(d.data.schema, d.num_classes))  # --schema: a vote head
        train_cfg = train_cfg.replace(loss=s.loss, label_smoothing=s.label_smoothing, schedule=s.schedule, warmup=s.warmup)
        max_flops = s.max_flops
        fitted = fit_to_caps(spec, s.max_params, max_flops, self.space.widths, self.space.stem_widths, max_ms=s.max_ms,
                             predict_ms=lambda sp: self.latency.predict(sp, CATALOGUE_BATCH))
        spec = fitted.spec
        refuse_mirror_blind(spec, d.mirror_pairs, d.allow_flips, d.class_names)  # never offered there: a guard
        seed = trial_seed(trial, s.seed)
        torch.manual_seed(seed)
        model = build_model(spec)
        params, flops = fitted.params, fitted.flops
        record_architecture(trial, spec, train_cfg, params, seed, flops=flops,
                            **({"fitted_to_caps": fitted.to_dict()} if fitted.changed else {}))
        if not fitted.fits(s.max_params, max_flops, s.max_ms):  # even the smallest version is over a cap (a cap below any net)
            reason = over_cap(fitted, s)
            trial.set_user_attr("prune_reason", f"{reason} even after shrinking to {spec.describe()}")
            raise optuna.TrialPruned(reason)
        trial.set_user_attr("cpu_images_per_second", cpu_images_per_second(model, spec))
        # operators are timed on first sight (seconds early in a study): only where the time is used
        predicted = self.latency.predictions(spec) if s.cost == Cost.TIME or s.max_ms else {}
        for key, value in predicted.items():
            trial.set_user_attr(key, value)
        # --objective multi's second objective, minimised: the predicted time with --cost time, else the parameters
        cost = predicted[COST_COLUMNS[Cost.TIME]] if s.cost == Cost.TIME else float(params)
        model.to(d.device)
        zc = self.zero_cost(model)
        try:
            value = self._train_and_score(trial, model, spec, train_cfg, seed, params, flops, zc, cost)
            yield_if_surplus(trial, s.trials)
            return value
        except TrainingDiverged as exc:
            trial.set_user_attr("prune_reason", f"diverged: {exc}")
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        except torch.OutOfMemoryError:
            trial.set_user_attr("prune_reason", "out of device memory")
            raise optuna.TrialPruned("out of memory") from None
        finally:
            # CPU time this process has used so far (all threads): a search's cost, whatever else runs.
            trial.set_user_attr("process_cpu_seconds", time.process_time())

    def _train_and_score(self, trial: optuna.Trial, model: torch.nn.Module, spec: ArchSpec, train_cfg: TrainConfig,
                         seed: int, params: int, flops: int, zc: dict[str, float], cost: float) -> float | tuple[float, float]:
        d, s = self.data, self.settings
        multi = objective_info(s.objective).multi
        rungs = list(s.rungs) if s.rungs else None
        train = dict(val=d.val, seed=seed, progress=s.progress, progress_desc=f"trial {trial.number}",
                     precision=s.precision, **d.training_kwargs())
        if rungs is None:
            def report(record) -> None:
                if multi:  # Optuna cannot prune (or take reports from) multi-objective trials
                    return
                fraction = s.objective == ObjectiveName.FRACTION_MAE  # pruned by what it is scored by
                trial.report(validation_score(record, s.objective, d.num_classes) if fraction else record.val_acc,
                             step=record.epoch)
                if trial.should_prune():
                    trial.set_user_attr("prune_reason", f"pruner stopped it after epoch {record.epoch} (val_acc {record.val_acc:.3f})")
                    raise optuna.TrialPruned()

            t0 = time.perf_counter()
            history = train_model(model, d.train, train_cfg, s.epochs, on_epoch_end=report, **train)
            metrics = record_training(trial, history, params, flops, zc, time.perf_counter() - t0, self.proxy, d.num_classes)
            score = trial_value(metrics, s.objective, self.proxy, d.num_classes)
            if not math.isfinite(score):
                trial.set_user_attr("prune_reason", "score is not finite")
                raise optuna.TrialPruned("score is not finite")
            return (score, cost) if multi else score
        return self._promote(trial, model, spec, train_cfg, seed, params, flops, zc, rungs, train)

    def _promote(self, trial: optuna.Trial, model: torch.nn.Module, spec: ArchSpec, train_cfg: TrainConfig, seed: int,
                 params: int, flops: int, zc: dict[str, float], rungs: list[int], train: dict[str, Any]) -> float:
        """Train budget by budget; after each, report the score and stop unless in the top 1/η so far.

        With a constant learning rate the network simply trains on (its weights are the next budget's
        start). A schedule that decays within the run cannot be continued, so each budget retrains from
        the same initialisation with the schedule stretched over that budget.
        """
        d, s = self.data, self.settings
        reporter = RungReporter(trial, rungs, s.trials)
        continuing = train_cfg.schedule == "constant" and train_cfg.warmup == 0
        if continuing:
            records: list[EpochRecord] = []

            def on_epoch(record: EpochRecord) -> None:
                records.append(record)
                if record.epoch in rungs:
                    reporter.report(record.epoch, self._rung_score(trial, records, reporter, params, flops, zc), record)

            train_model(model, d.train, train_cfg, rungs[-1], on_epoch_end=on_epoch, **train)
        else:
            for budget in rungs:
                if budget != rungs[0]:
                    torch.manual_seed(seed)
                    model = build_model(spec).to(d.device)
                history = train_model(model, d.train, train_cfg, budget, **train)
                reporter.report(budget, self._rung_score(trial, history.epochs, reporter, params, flops, zc), history.last)
        reporter.finish()
        if not math.isfinite(reporter.score):
            trial.set_user_attr("prune_reason", "score is not finite")
            raise optuna.TrialPruned("score is not finite")
        return reporter.score

    def _rung_score(self, trial: optuna.Trial, epochs: list[EpochRecord], reporter: RungReporter, params: int, flops: int,
                    zc: dict[str, float]) -> float:
        """The first budget is scored by the objective (its metrics feed the proxy); later ones by validation
        accuracy (balanced accuracy with --objective balanced_acc): the composite was calibrated on 2-epoch signals."""
        d, s = self.data, self.settings
        if len(epochs) == reporter.rungs[0]:
            metrics = record_training(trial, TrainHistory(list(epochs)), params, flops, zc,
                                      time.perf_counter() - reporter.start, self.proxy, d.num_classes)
            return trial_value(metrics, s.objective, self.proxy, d.num_classes)
        return validation_score(epochs[-1], s.objective, d.num_classes)


def validation_score(record: EpochRecord, objective: str, num_classes: int) -> float:
    """A promoted trial's score above the first budget: validation accuracy, or balanced accuracy."""
    metrics = {"val_acc": record.val_acc, "val_balanced_acc": record.val_balanced_acc,
               "val_predicted_classes": record.val_predicted_classes, "val_fraction_mae": record.val_fraction_mae}
    scored_by = objective if objective in ("balanced_acc", ObjectiveName.FRACTION_MAE) else "val_acc"
    return trial_value(metrics, scored_by, None, num_classes)


def vote_metrics(record: EpochRecord) -> dict[str, Any]:
    """A vote study's (``--schema``/``--soft-labels``) fraction errors, as trial attributes; nothing for others."""
    found: dict[str, Any] = {}
    if record.val_fraction_mae is not None:
        found["val_fraction_mae"] = float(record.val_fraction_mae)
    if record.val_question_mae is not None:
        found["val_question_mae"] = [float(v) for v in record.val_question_mae]  # in the schema's question order
    return found


def trial_value(metrics: dict[str, float], objective: str, proxy: CompositeProxy | None, num_classes: int) -> float:
    """The number the sampler maximises for one trial's metrics; a collapsed model scores below every learned one."""
    if objective == "balanced_acc":
        score = float(metrics["val_balanced_acc"])
    elif objective == "train_acc":
        score = float(metrics["train_acc"])
    elif objective == ObjectiveName.FRACTION_MAE:  # minimised: every trial value is maximised
        score = -float(metrics.get("val_fraction_mae", float("nan")))
    elif objective == "val_acc" or proxy is None:
        score = float(metrics["val_acc"])
    else:
        score = float(proxy.predict(pd.DataFrame([metrics]))[0])
    return guarded(score, is_collapsed(metrics, num_classes))
