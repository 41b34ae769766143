"""``synth --strategy progressive``: grow a network block by block, inheriting trained weights.

Start from a one-block network of the smallest width; at each step try one new block per width
in ``widths``, each child starting from its parent's *trained* weights plus a small jitter, train
every child for one epoch, grow on from the best by validation accuracy, and stop when
``patience`` steps in a row found no network better than the best so far (or at ``max_blocks``);
the result is the best. Patience only counts once a grown network has beaten the one-block seed:
on a small validation split one or two steps of children can all fall just short of it, and the
seed network is never the model a user wants. Training is reused across steps instead of
restarting every candidate from scratch.

Where the new block goes: a width equal to the last stage's width deepens that stage (same
resolution); any other width opens a new stage (downsampled by 2, so the image size caps the
number of stages).

Weight inheritance (:func:`inherit`), tensor by tensor:

* a tensor the parent has with the same name and shape (stem, earlier blocks, the extra-input
  MLP, the classifier when the feature size is unchanged) is copied;
* the new block's tensors are copied from the previous block's where the shapes match
  (deepening a stage: everything but a strided/widening first convolution);
* anything else (a new stage's block at a new width, a classifier for a new feature size) keeps
  the builder's fresh initialisation.

Then every parameter tensor gets Gaussian jitter with std = 0.03 × that tensor's own std
(:data:`JITTER`; constant tensors such as fresh BatchNorm scales get none), so siblings and
parents do not stay identical. BatchNorm running statistics are copied, not jittered.

Every candidate is an Optuna trial of the study (``growth`` attr: step, parent trial, width,
placement), with the same attrs as a TPE trial (spec, train config, history, metrics), so
``rank``, ``correlate`` and ``export`` treat it like any other. Trained weights are kept per
trial, so a killed run resumes mid-growth: finished candidates are reused, missing ones trained.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from galaxy_common.figures import pyplot, save_figure
from galaxy_common.files import atomic_write_text
from proxies.composite import CompositeProxy
from synthesis.data.preparation import TrialData
from synthesis.errors import GalaxySynthError
from synthesis.models.builder import (
    build_model,
    count_flops,
    count_params,
    cpu_images_per_second,
)
from synthesis.models.package import load_model, save_model
from synthesis.models.spec import ArchSpec, StageSpec, TrainConfig
from synthesis.search.inheritance import JITTER, inherit, jitter_
from synthesis.search.objective import (
    record_architecture,
    record_training,
    seed_of_trial,
    trial_value,
    validation_score,
    zero_cost_for,
)
from synthesis.search.promotion import RungReporter, rung_score
from synthesis.search.study import prepare_study
from synthesis.settings import StudySettings
from synthesis.training.loop import TrainingDiverged, train_model

log = logging.getLogger(__name__)


DEFAULT_WIDTHS = (16, 32, 64)


GROWTH_TRAIN = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=64)


@dataclass(frozen=True)
class GrowthSettings:
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    max_blocks: int = 8
    start_width: int = 16
    block: str = "plain"
    epochs_per_step: int = 1
    jitter: float = JITTER
    patience: int = 2  # steps in a row without a new best before growth stops (1: stop at the first)

    @classmethod
    def of(cls, settings: StudySettings) -> "GrowthSettings":
        """The study's --growth-widths/--max-blocks/--growth-patience; the seed network takes the smallest width."""
        widths = parse_widths(settings.growth_widths)
        return cls(widths=widths, start_width=min(widths), max_blocks=settings.max_blocks, patience=settings.growth_patience)


def n_blocks(spec: ArchSpec) -> int:
    return sum(s.depth for s in spec.stages)


def max_stages_for(image_size: int) -> int:
    """Stages that still leave at least 2×2 pixels after halving on entry to each."""
    return max(1, int(math.log2(image_size)) - 1)


def base_spec(num_classes: int, image_size: int, n_extra: int, growth: GrowthSettings, in_channels: int = 3) -> ArchSpec:
    return ArchSpec(num_classes=num_classes, stages=(StageSpec(1, growth.start_width),), block=growth.block,
                    stem_width=growth.start_width, stem_kernel=3, downsample="maxpool", dropout=0.0,
                    image_size=image_size, n_extra=n_extra, in_channels=in_channels)


def grow(parent: ArchSpec, width: int) -> tuple[ArchSpec, str] | None:
    """The parent plus one block of ``width``: deepen the last stage, or open a new one (None if no room)."""
    last = parent.stages[-1]
    if width == last.width:
        stages = (*parent.stages[:-1], StageSpec(last.depth + 1, width))
        return replace(parent, stages=stages), "deepen"
    if len(parent.stages) >= max_stages_for(parent.image_size):
        return None
    return replace(parent, stages=(*parent.stages, StageSpec(1, width))), "new_stage"


@dataclass
class GrowthStep:
    step: int
    layer: int  # blocks in the child network
    k: int  # kernel size of the new block
    channels: int
    placement: str
    score: float  # validation accuracy after the step's epoch (balanced accuracy with --objective balanced_acc)
    trial: int
    parent_trial: int | None
    chosen: bool = False


@dataclass
class GrowthResult:
    steps: list[GrowthStep] = field(default_factory=list)
    stop_reason: str = ""
    best_trial: int | None = None
    promotions: list[dict[str, Any]] = field(default_factory=list)  # --fidelities: children trained on


def _weights_path(settings: StudySettings, trial_number: int) -> Path:
    return settings.study_dir / "growth" / f"trial{trial_number}.pt"


def _growth_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if "growth" in t.user_attrs]


def run_candidate(study: optuna.Study, data: TrialData, settings: StudySettings, proxy: CompositeProxy | None,
                  growth: GrowthSettings, spec: ArchSpec, placement: str, step: int,
                  parent: tuple[optuna.trial.FrozenTrial, ArchSpec] | None) -> optuna.trial.FrozenTrial:
    """One child as one Optuna trial: inherit + jitter, train ``epochs_per_step``, store metrics and weights."""
    with warnings.catch_warnings():
        # Heartbeats belong to study.optimize; this strategy fails a killed child itself on resume.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        trial = study.ask()
    seed = seed_of_trial(settings.sampler_seed, trial.number)
    torch.manual_seed(seed)
    model = build_model(spec)
    origin = {}
    if parent is not None:
        parent_trial, parent_spec = parent
        parent_model, _, _ = load_model(_weights_path(settings, parent_trial.number), parent_spec)
        origin = inherit(parent_model, parent_spec, model, spec)
        jitter_(model, growth.jitter, torch.Generator(device="cpu").manual_seed(seed))
    cfg = GROWTH_TRAIN.replace(loss=settings.loss, label_smoothing=settings.label_smoothing)
    params, flops = count_params(model), count_flops(model, spec)
    record_architecture(trial, spec, cfg, params, seed, flops=flops, strategy="progressive",
                        cpu_images_per_second=cpu_images_per_second(model, spec),
                        growth={"step": step, "parent_trial": parent[0].number if parent else None,
                                "width": spec.stages[-1].width, "placement": placement,
                                "inherited": sum(v != "init" for v in origin.values()),
                                "fresh": sum(v == "init" for v in origin.values())})
    model.to(data.device)
    zc = zero_cost_for(model, data)
    t0 = time.perf_counter()
    try:
        history = train_model(model, data.train, cfg, growth.epochs_per_step, val=data.val, seed=seed,
                              precision=settings.precision, **data.training_kwargs())
    except TrainingDiverged as exc:
        trial.set_user_attr("prune_reason", f"diverged: {exc}")
        study.tell(trial, state=TrialState.PRUNED)
        return study.get_trials(deepcopy=False)[trial.number]
    wall = time.perf_counter() - t0
    save_model(_weights_path(settings, trial.number), model, spec, data.preprocessing, trial=trial.number)
    # weights exist before the trial ends: a resumed run can always grow from it
    metrics = record_training(trial, history, params, flops, zc, wall, proxy, data.num_classes)
    score = trial_value(metrics, settings.objective, None, data.num_classes)
    if settings.rungs:
        return _promote(study, trial, model, cfg, seed, score, history, data, settings)
    trial.set_user_attr("process_cpu_seconds", time.process_time())
    study.tell(trial, score)
    return study.get_trials(deepcopy=False)[trial.number]


def _promote(study: optuna.Study, trial: optuna.Trial, model: torch.nn.Module, cfg: TrainConfig, seed: int, score: float,
             history: Any, data: TrialData, settings: StudySettings) -> optuna.trial.FrozenTrial:
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
        state, value = TrialState.COMPLETE, reporter.score
    except optuna.TrialPruned:
        state, value = TrialState.PRUNED, None
    except TrainingDiverged as exc:
        trial.set_user_attr("prune_reason", f"diverged while promoted: {exc}")
        state, value = TrialState.PRUNED, None
    trial.set_user_attr("process_cpu_seconds", time.process_time())
    study.tell(trial, value, state=state)
    return study.get_trials(deepcopy=False)[trial.number]


def usable_child(trial: optuna.trial.FrozenTrial, settings: StudySettings) -> bool:
    """A child growth can use: trained through its own epoch (promoted or not, even if promotion diverged)."""
    return trial.state == TrialState.COMPLETE or bool(settings.rungs and rung_score(trial, settings.rungs[0]) is not None)


def growth_score(trial: optuna.trial.FrozenTrial, settings: StudySettings) -> float:
    """The score growth compares children by: after their own epoch (the first budget when promotion is on)."""
    return rung_score(trial, settings.rungs[0]) if settings.rungs else float(trial.value)


def run_progressive(settings: StudySettings, growth: GrowthSettings | None = None,
                    on_ready: Callable[[Any], None] | None = None) -> tuple[optuna.Study, GrowthResult, StudySettings]:
    """Grow until no child beats its parent; resume from whatever the study already holds.

    Children are scored by validation accuracy (``--objective balanced_acc``: balanced accuracy).
    Returns the study, the growth steps and the settings it ran with.
    """
    from tqdm.auto import tqdm

    growth = growth or GrowthSettings.of(settings)  # a bad --growth-widths is one line before any data is loaded
    opened = prepare_study(settings.replace(strategy="progressive"))
    settings, study, data = opened.settings, opened.study, opened.data
    if on_ready is not None:
        on_ready(opened)
    trial_data = TrialData.on_device(opened.prepared(), opened.device)
    proxy = CompositeProxy.from_dict(opened.attrs["calibration"]) if opened.attrs.get("calibration") else None
    _fail_killed_children(study)
    bar = tqdm(desc=f"growth ({'val bal acc' if settings.objective == 'balanced_acc' else 'val acc'})", unit="child",
               disable=not settings.progress, dynamic_ncols=True)
    result = GrowthResult()
    parent: tuple[optuna.trial.FrozenTrial, ArchSpec] | None = None
    step, stale = 0, 0
    best_so_far: optuna.trial.FrozenTrial | None = None
    while True:
        candidates = _candidates(parent, data, growth)
        if not candidates:
            result.stop_reason = "no room for another block at this image size"
            break
        parent_number = parent[0].number if parent else None
        children = _step_children(study, trial_data, settings, proxy, growth, candidates, step, parent, bar)
        if not children:
            result.stop_reason = f"every child of step {step} diverged"
            break
        best = _record_step(result, children, step, parent_number, settings)
        bar.set_postfix_str(f"step {step}: best {growth_score(best[0], settings):.3f} ({n_blocks(best[1])} blocks)")
        if best_so_far is None or growth_score(best[0], settings) > growth_score(best_so_far, settings):
            best_so_far, stale = best[0], 0
        elif best_so_far.user_attrs["growth"]["step"] == 0:
            pass  # patience starts once a grown network has won: a one-block network is no result (#21)
        else:
            stale += 1
            if stale >= growth.patience:
                for done_step in result.steps[-len(children):]:
                    done_step.chosen = False  # nothing grows from this step
                result.stop_reason = (f"step {step} did not improve the score: {stale} step(s) in a row without a better "
                                      f"network (patience {growth.patience}; best {growth_score(best_so_far, settings):.4f}, "
                                      f"trial {best_so_far.number})")
                break
        # Grow on from the step's best child even when it is not the best so far: a block that does not
        # pay at once can pay after the next (one seed's growth used to stop at its one-block network).
        parent = (best[0], best[1])
        result.best_trial = best_so_far.number
        if n_blocks(best[1]) >= growth.max_blocks:
            result.stop_reason = f"reached --max-blocks {growth.max_blocks}"
            break
        step += 1
    bar.close()
    result.promotions = _promotions(study, settings)
    return study, result, settings


def _promotions(study: optuna.Study, settings: StudySettings) -> list[dict[str, Any]]:
    """The children that successive halving took past the first budget, with the budget they reached."""
    if not settings.rungs:
        return []
    return [{"trial": t.number, "budget": max(map(int, t.user_attrs["rungs"])), "score": float(t.value)}
            for t in _growth_trials(study) if t.state == TrialState.COMPLETE and t.user_attrs.get("rungs")
            and max(map(int, t.user_attrs["rungs"])) > settings.rungs[0]]


def _candidates(parent: Any, data: Any, growth: GrowthSettings) -> list:
    """The step's candidate children: the seed network first, then the parent plus one block per width."""
    if parent is None:
        return [(base_spec(len(data.class_names), data.size, data.extras.shape[1], growth, data.images.shape[-1]), "base")]
    return [g for g in (grow(parent[1], w) for w in growth.widths) if g is not None]


def _record_step(result: GrowthResult, children: list, step: int, parent_number: int | None,
                 settings: StudySettings) -> tuple:
    """Add the step's children to the result; return the best (the one growth goes on from)."""
    best = max(children, key=lambda c: growth_score(c[0], settings))
    for t, spec, placement in children:
        result.steps.append(GrowthStep(step, n_blocks(spec), 3, spec.stages[-1].width, placement,
                                       growth_score(t, settings), t.number, parent_number, chosen=t is best[0]))
    return best


def _fail_killed_children(study: optuna.Study) -> None:
    """A child left RUNNING was killed mid-training: it is failed and trained again."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "growth" in t.user_attrs or not t.user_attrs:
            study.tell(t.number, state=TrialState.FAIL)


def _step_children(study: optuna.Study, data: TrialData, settings: StudySettings, proxy: CompositeProxy | None,
                   growth: GrowthSettings, candidates: list, step: int, parent: Any, bar: Any) -> list:
    """The step's children: the ones a killed run already trained (resume), then the rest, trained now."""
    parent_number = parent[0].number if parent else None
    done = {t.user_attrs["spec_hash"]: t for t in _growth_trials(study)
            if usable_child(t, settings) and t.user_attrs["growth"]["step"] == step
            and t.user_attrs["growth"]["parent_trial"] == parent_number}
    children = []
    for spec, placement in candidates:
        t = done.get(spec.spec_hash())
        if t is None:
            t = run_candidate(study, data, settings, proxy, growth, spec, placement, step, parent)
            bar.update(1)
        if usable_child(t, settings):
            children.append((t, spec, placement))
    return children


def write_growth_report(result: GrowthResult, results: Path) -> list[Path]:
    """``growth_report.json`` (one row per child) and ``growth.png`` (val accuracy vs depth)."""
    plt = pyplot()
    rows = [dataclasses.asdict(s) for s in result.steps]
    body = {"steps": rows, "stop_reason": result.stop_reason, "best_trial": result.best_trial,
            "promotions": result.promotions}
    json_path = atomic_write_text(Path(results) / "growth_report.json", json.dumps(body, indent=2))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    df = pd.DataFrame(rows)
    if len(df):
        ax.scatter(df["layer"], df["score"], c="#bbbbbb", s=18, label="candidates")
        chosen = df[df["chosen"]]
        ax.plot(chosen["layer"], chosen["score"], "o-", color="#c44e52", label="chosen")
        for _, r in chosen.iterrows():
            ax.annotate(f"{r['channels']}ch", (r["layer"], r["score"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("blocks in the network")
    ax.set_ylabel("validation score after the step's epoch")
    ax.set_title(f"progressive growth: {result.stop_reason}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    png = save_figure(fig, Path(results) / "growth.png")
    return [json_path, png]


def parse_widths(text: str | Sequence[int]) -> tuple[int, ...]:
    if not isinstance(text, str):
        return tuple(int(w) for w in text)
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise GalaxySynthError(f"--growth-widths must be comma-separated integers, not {text!r}") from None
    if not widths or min(widths) < 1:
        raise GalaxySynthError(f"--growth-widths needs positive widths, got {text!r}")
    return widths


def summarise(result: GrowthResult) -> list[dict[str, Any]]:
    return [{"step": s.step, "blocks": s.layer, "channels": s.channels, "placement": s.placement,
             "score": round(s.score, 4), "trial": s.trial, "chosen": "*" if s.chosen else ""} for s in result.steps]
