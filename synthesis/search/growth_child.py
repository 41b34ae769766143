"""One child of progressive growth as one Optuna trial: inherit its parent's trained weights, train, score.

The strategy (:class:`synthesis.search.progressive.ProgressiveGrowth`) queues each child as a
trial whose ``growth`` attr says which it is (:class:`Candidate`); the runner runs it through
``Study.optimize`` with :func:`train_child` as its objective. A child records the same attrs as a
TPE trial (spec, train config, history, metrics), so ``rank``, ``correlate`` and ``export`` treat
it like any other, and its trained weights are kept per trial, for its own children and a resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from proxies import CompositeProxy
from synthesis.data import TrialData
from synthesis.models import LatencyTable, build_model, count_flops, count_params, cpu_images_per_second
from synthesis.models import load_model, save_model
from synthesis.models import ArchSpec, TrainConfig
from synthesis.search.inheritance import inherit, jitter_
from synthesis.search.objective import (
    record_architecture,
    record_training,
    seed_of_trial,
    trial_value,
    validation_score,
    zero_cost_for,
)
from synthesis.search.promotion import RungReporter, rung_score
from synthesis import StudySettings
from synthesis.training import TrainingDiverged, train_model

GROWTH_TRAIN = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=64)


@dataclass(frozen=True)
class Candidate:
    """A child growth proposes: its network, where the new block went, its step, and the parent it grows from."""

    spec: ArchSpec
    placement: str
    step: int
    parent: tuple[optuna.trial.FrozenTrial, ArchSpec] | None = None

    @property
    def parent_trial(self) -> int | None:
        return self.parent[0].number if self.parent else None

    @property
    def key(self) -> tuple[int, int | None, str]:
        """Which child this is, as its trial records it (:func:`child_key`)."""
        return self.step, self.parent_trial, self.spec.spec_hash()

    def queued_attrs(self) -> dict[str, Any]:
        """What its trial says while queued (training replaces ``growth`` with the full record)."""
        return {"growth": {"step": self.step, "parent_trial": self.parent_trial, "width": self.spec.stages[-1].width,
                           "placement": self.placement}, "spec_hash": self.spec.spec_hash()}


def child_key(trial: optuna.Trial | optuna.trial.FrozenTrial) -> tuple[int, int | None, str] | None:
    """The :attr:`Candidate.key` a trial was queued or trained as (None: not a growth child)."""
    growth = trial.user_attrs.get("growth")
    return (growth["step"], growth["parent_trial"], trial.user_attrs.get("spec_hash")) if growth else None


def weights_path(settings: StudySettings, trial_number: int) -> Path:
    return settings.study_dir / "growth" / f"trial{trial_number}.pt"


def growth_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if "growth" in t.user_attrs]


def usable_child(trial: optuna.trial.FrozenTrial, settings: StudySettings) -> bool:
    """A child growth can use: trained through its own epoch (promoted or not, even if promotion diverged)."""
    return trial.state == TrialState.COMPLETE or bool(settings.rungs and rung_score(trial, settings.rungs[0]) is not None)


def growth_score(trial: optuna.trial.FrozenTrial, settings: StudySettings) -> float:
    """The score growth compares children by: after their own epoch (the first budget when promotion is on)."""
    return rung_score(trial, settings.rungs[0]) if settings.rungs else float(trial.value)


def train_child(trial: optuna.Trial, data: TrialData, settings: StudySettings, proxy: CompositeProxy | None,
                epochs: int, jitter: float, child: Candidate) -> float:
    """The child's trial: inherit + jitter, train ``epochs``, store metrics and weights; its score.

    Raises ``optuna.TrialPruned`` where training diverged or promotion stopped it.
    """
    spec = child.spec
    seed = seed_of_trial(settings.sampler_seed, trial.number)
    torch.manual_seed(seed)
    model = build_model(spec)
    origin = {}
    if child.parent is not None:
        parent_trial, parent_spec = child.parent
        parent_model, _, _ = load_model(weights_path(settings, parent_trial.number), parent_spec)
        origin = inherit(parent_model, parent_spec, model, spec)
        jitter_(model, jitter, torch.Generator(device="cpu").manual_seed(seed))
    cfg = GROWTH_TRAIN.replace(loss=settings.loss, label_smoothing=settings.label_smoothing)
    params, flops = count_params(model), count_flops(model, spec)
    record_architecture(trial, spec, cfg, params, seed, flops=flops, strategy="progressive",
                        cpu_images_per_second=cpu_images_per_second(model, spec),
                        **(LatencyTable(settings.results_dir / "cache").predictions(spec)
                           if settings.cost == "time" or settings.max_ms else {}),
                        growth={"step": child.step, "parent_trial": child.parent_trial,
                                "width": spec.stages[-1].width, "placement": child.placement,
                                "inherited": sum(v != "init" for v in origin.values()),
                                "fresh": sum(v == "init" for v in origin.values())})
    model.to(data.device)
    zc = zero_cost_for(model, data)
    t0 = time.perf_counter()
    try:
        history = train_model(model, data.train, cfg, epochs, val=data.val, seed=seed,
                              precision=settings.precision, **data.training_kwargs())
    except TrainingDiverged as exc:
        trial.set_user_attr("prune_reason", f"diverged: {exc}")
        raise optuna.TrialPruned(f"diverged: {exc}") from None
    wall = time.perf_counter() - t0
    save_model(weights_path(settings, trial.number), model, spec, data.preprocessing, trial=trial.number)
    # weights exist before the trial ends: a resumed run can always grow from it
    metrics = record_training(trial, history, params, flops, zc, wall, proxy, data.num_classes)
    score = trial_value(metrics, settings.objective, None, data.num_classes)
    if settings.rungs:
        return _promote(trial, model, cfg, seed, score, history, data, settings)
    trial.set_user_attr("process_cpu_seconds", time.process_time())
    return score


def _promote(trial: optuna.Trial, model: torch.nn.Module, cfg: TrainConfig, seed: int, score: float, history: Any,
             data: TrialData, settings: StudySettings) -> float:
    """The child is the first budget of promotion: reported to the study's successive-halving pruner exactly as a
    TPE trial is (synthesis.search.promotion); promoted, it trains on from its weights to the next budget."""
    rungs = settings.rungs
    reporter = RungReporter(trial, rungs)
    try:
        reporter.report(rungs[0], score, history.last)

        def on_epoch(record) -> None:
            budget = rungs[0] + record.epoch
            if budget in rungs:
                reporter.report(budget, validation_score(record, settings.objective, data.num_classes), record)

        train_model(model, data.train, cfg, rungs[-1] - rungs[0], val=data.val, seed=seed + 1, on_epoch_end=on_epoch,
                    precision=settings.precision, **data.training_kwargs())
        reporter.finish()
        return reporter.score
    except TrainingDiverged as exc:
        trial.set_user_attr("prune_reason", f"diverged while promoted: {exc}")
        raise optuna.TrialPruned(f"diverged while promoted: {exc}") from None
    finally:  # promoted, stopped at a rung or diverged: the CPU time this process had used
        trial.set_user_attr("process_cpu_seconds", time.process_time())
