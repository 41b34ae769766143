"""``synth --strategy progressive``: grow a network block by block, inheriting trained weights.

Start from a one-block network of the smallest width; at each step try one new block per width
in ``widths``, each child starting from its parent's *trained* weights plus a small jitter, train
every child for one epoch, grow on from the best by validation accuracy, and stop when
``patience`` steps in a row found no network better than the best so far (or at ``max_blocks``);
the result is the best. Patience only counts once a grown network has beaten the one-block seed:
on a small validation split one or two steps of children can all fall just short of it, and the
seed network is never the model a user wants. Training is reused across steps instead of
restarting every candidate from scratch.

Every block is of ``--growth-block`` (plain by default; c4 or d4 grow a group-equivariant network, whose
group convolutions' free filters are inherited like any other tensor; d4 is refused where the data have
mirror-image classes). Where the new block goes: a width equal to the last stage's width deepens that stage (same
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

Growth is a strategy (:class:`ProgressiveGrowth`) that the runner drives like any other
(:func:`synthesis.search.runner.run_study`): it queues each child as a trial
(``study.enqueue_trial``), the runner runs it through ``Study.optimize`` with
:func:`synthesis.search.growth_child.train_child` as the objective, and the stop rule above is
the strategy's answer to "what next?". Every candidate is an Optuna trial of the study
(``growth`` attr: step, parent trial, width, placement), with the same attrs as a TPE trial
(spec, train config, history, metrics), so ``rank``, ``correlate`` and ``export`` treat it like
any other. Trained weights are kept per trial, so a killed run resumes mid-growth: finished
candidates are reused, missing ones trained.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState

from proxies import CompositeProxy
from synthesis.data import TrialData
from synthesis import GalaxySynthError
from synthesis.models import ArchSpec, OutputLayout, StageSpec, group_of
from synthesis.search.growth_child import (
    Candidate,
    child_key,
    growth_score,
    growth_trials,
    train_child,
    usable_child,
)
from synthesis.search.growth_report import GrowthResult, GrowthStep, write_growth_report
from synthesis.search.inheritance import JITTER
from synthesis.search.space import refuse_mirror_blind
from synthesis.search.strategy import Next, Strategy
from synthesis.search.study import OpenedStudy
from synthesis import StudySettings

log = logging.getLogger(__name__)


DEFAULT_WIDTHS = (16, 32, 64)


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
        """The study's --growth-widths/--growth-block/--max-blocks/--growth-patience; the seed network takes the
        smallest width."""
        widths = parse_widths(settings.growth_widths)
        group = group_of(settings.growth_block)
        if group is not None and any(w % group.order for w in widths):
            raise GalaxySynthError(f"--growth-block {settings.growth_block} counts widths in channels, {group.order} per "
                                   f"field of {group.name}: --growth-widths {settings.growth_widths} must be multiples "
                                   f"of {group.order}")
        return cls(widths=widths, start_width=min(widths), block=settings.growth_block, max_blocks=settings.max_blocks,
                   patience=settings.growth_patience)


def n_blocks(spec: ArchSpec) -> int:
    return sum(s.depth for s in spec.stages)


def max_stages_for(image_size: int) -> int:
    """Stages that still leave at least 2×2 pixels after halving on entry to each."""
    return max(1, int(math.log2(image_size)) - 1)


def base_spec(num_classes: int, image_size: int, n_extra: int, growth: GrowthSettings, in_channels: int = 3,
              votes: OutputLayout | None = None) -> ArchSpec:
    return ArchSpec(num_classes=num_classes, stages=(StageSpec(1, growth.start_width),), block=growth.block,
                    stem_width=growth.start_width, stem_kernel=3, downsample="maxpool", dropout=0.0,
                    image_size=image_size, n_extra=n_extra, in_channels=in_channels, votes=votes)


def grow(parent: ArchSpec, width: int) -> tuple[ArchSpec, str] | None:
    """The parent plus one block of ``width``: deepen the last stage, or open a new one (None if no room)."""
    last = parent.stages[-1]
    if width == last.width:
        stages = (*parent.stages[:-1], StageSpec(last.depth + 1, width))
        return replace(parent, stages=stages), "deepen"
    if len(parent.stages) >= max_stages_for(parent.image_size):
        return None
    return replace(parent, stages=(*parent.stages, StageSpec(1, width))), "new_stage"


class ProgressiveGrowth(Strategy):
    """Growth as a strategy: each step's children are queued as trials, the runner trains them (weights inherited),
    and growth ends by its own rule (patience once a grown network beats the seed, ``--max-blocks``, no room)."""

    setting = "progressive"
    parallel = False  # each step grows from the last one's best child: one sequence of work

    def __init__(self, growth: GrowthSettings | None = None, sampler: optuna.samplers.BaseSampler | None = None,
                 pruner: optuna.pruners.BasePruner | None = None) -> None:
        super().__init__(sampler, pruner)
        self.growth = growth or GrowthSettings()
        self.outcome = GrowthResult()

    def start(self, opened: OpenedStudy, data: TrialData) -> Callable[[optuna.Trial], float]:
        from tqdm.auto import tqdm

        self.settings, self.images, self.data = opened.settings, opened.data, data
        calibration = opened.attrs.get("calibration")
        self.proxy = CompositeProxy.from_dict(calibration) if calibration else None
        _fail_killed_children(opened.study)
        self.bar = tqdm(desc=f"growth ({'val bal acc' if self.settings.objective == 'balanced_acc' else 'val acc'})",
                        unit="child", disable=not self.settings.progress, dynamic_ncols=True)
        self.outcome = GrowthResult()
        self.step, self.stale = 0, 0
        self.parent: tuple[optuna.trial.FrozenTrial, ArchSpec] | None = None
        self.best_so_far: optuna.trial.FrozenTrial | None = None
        self._begin_step(opened.study)
        return self.train

    def next_trial(self, study: optuna.Study) -> Next:
        """The step's next child to train (queued), reusing the ones an earlier run trained; STOP once growth ends."""
        while not self.outcome.stop_reason:
            if not self.pending:
                self._end_step(study)
                continue
            child = self.pending[0]
            trained = self.done.get(child.spec.spec_hash())
            if trained is None:
                self._queue(study, child)
                return Next.RUN
            self.pending.pop(0)
            self.children.append((trained, child.spec, child.placement))
        return Next.STOP

    def train(self, trial: optuna.Trial) -> float:
        """The objective: train the child this trial was queued as."""
        child = self.pending[0] if self.pending else None
        if child is None or child_key(trial) != child.key:  # a trial some earlier run left queued, for another step
            trial.set_user_attr("prune_reason", "not a child of the current growth step")
            raise optuna.TrialPruned("not a child of the current growth step")
        return train_child(trial, self.data, self.settings, self.proxy, self.growth.epochs_per_step, self.growth.jitter, child)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.pending or child_key(trial) != self.pending[0].key:
            return
        child = self.pending.pop(0)
        self.bar.update(1)
        if usable_child(trial, self.settings):
            self.children.append((trial, child.spec, child.placement))

    def close(self) -> None:
        self.bar.close()

    def write_outputs(self, study: optuna.Study, settings: StudySettings) -> list[Path]:
        """``growth_report.json`` and ``growth.png``, then the study's tables and plots (children are not rescored)."""
        from synthesis.search.plots import write_study_outputs

        return write_growth_report(self.outcome, settings.study_dir) + write_study_outputs(study, settings.study_dir, None)

    def _queue(self, study: optuna.Study, child: Candidate) -> None:
        """The child as the next trial, unless it is queued already (the retry of a child a Ctrl-C interrupted)."""
        if not any(child_key(t) == child.key for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))):
            study.enqueue_trial({}, user_attrs=child.queued_attrs())

    def _begin_step(self, study: optuna.Study) -> None:
        """The step's candidates, and which of them an earlier run of this study already trained."""
        found = _candidates(self.parent, self.images, self.growth)
        for spec, _ in found:
            refuse_mirror_blind(spec, self.data.mirror_pairs, self.data.allow_flips, self.data.class_names)
        if not found:
            return self._stop(study, "no room for another block at this image size")
        self.pending = [Candidate(spec, placement, self.step, self.parent) for spec, placement in found]
        parent_number = self.parent[0].number if self.parent else None
        self.done = {t.user_attrs["spec_hash"]: t for t in growth_trials(study)
                     if usable_child(t, self.settings) and t.user_attrs["growth"]["step"] == self.step
                     and t.user_attrs["growth"]["parent_trial"] == parent_number}
        self.children: list[tuple[optuna.trial.FrozenTrial, ArchSpec, str]] = []

    def _end_step(self, study: optuna.Study) -> None:
        """Every child of the step is in: record it, apply the stop rule, or begin the next step from its best."""
        result, settings, growth, step = self.outcome, self.settings, self.growth, self.step
        if not self.children:
            return self._stop(study, f"every child of step {step} diverged")
        best = _record_step(result, self.children, step, self.parent[0].number if self.parent else None, settings)
        self.bar.set_postfix_str(f"step {step}: best {growth_score(best[0], settings):.3f} ({n_blocks(best[1])} blocks)")
        if self.best_so_far is None or growth_score(best[0], settings) > growth_score(self.best_so_far, settings):
            self.best_so_far, self.stale = best[0], 0
        elif self.best_so_far.user_attrs["growth"]["step"] == 0:
            pass  # patience starts once a grown network has won: a one-block network is no result (#21)
        else:
            self.stale += 1
            if self.stale >= growth.patience:
                for done_step in result.steps[-len(self.children):]:
                    done_step.chosen = False  # nothing grows from this step
                return self._stop(study, f"step {step} did not improve the score: {self.stale} step(s) in a row without a "
                                         f"better network (patience {growth.patience}; best "
                                         f"{growth_score(self.best_so_far, settings):.4f}, trial {self.best_so_far.number})")
        # Grow on from the step's best child even when it is not the best so far: a block that does not
        # pay at once can pay after the next (one seed's growth used to stop at its one-block network).
        self.parent = (best[0], best[1])
        result.best_trial = self.best_so_far.number
        if n_blocks(best[1]) >= growth.max_blocks:
            return self._stop(study, f"reached --max-blocks {growth.max_blocks}")
        self.step += 1
        self._begin_step(study)

    def _stop(self, study: optuna.Study, reason: str) -> None:
        self.outcome.stop_reason = reason
        self.outcome.promotions = _promotions(study, self.settings)


def _promotions(study: optuna.Study, settings: StudySettings) -> list[dict[str, Any]]:
    """The children that successive halving took past the first budget, with the budget they reached."""
    if not settings.rungs:
        return []
    return [{"trial": t.number, "budget": max(map(int, t.user_attrs["rungs"])), "score": float(t.value)}
            for t in growth_trials(study) if t.state == TrialState.COMPLETE and t.user_attrs.get("rungs")
            and max(map(int, t.user_attrs["rungs"])) > settings.rungs[0]]


def _candidates(parent: Any, data: Any, growth: GrowthSettings) -> list:
    """The step's candidate children: the seed network first, then the parent plus one block per width."""
    if parent is None:
        return [(base_spec(len(data.class_names), data.size, data.extras.shape[1], growth, data.images.shape[-1],
                           OutputLayout.of(data.schema, len(data.class_names))), "base")]
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
    """A child left RUNNING was killed mid-training (growth runs in one process): it is failed and trained again."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "growth" in t.user_attrs or not t.user_attrs:
            study.tell(t.number, state=TrialState.FAIL)


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
