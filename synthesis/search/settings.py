"""The search stage's own settings, each derived once from the study's (as ``GrowthSettings.of`` does for growth).

:class:`SearchSettings`: how the study proposes, stops and counts trials (sampler, pruner, budgets, target,
the search's seed). :class:`TrialSettings`: what one trial reads to train and score an architecture
(:class:`synthesis.search.objective.Objective`). Both come from resolved settings (no "auto" left).
"""

from __future__ import annotations

from dataclasses import dataclass

from synthesis import StudySettings


@dataclass(frozen=True)
class SearchSettings:
    """``--strategy``, ``--sampler``, ``--pruner`` (which reads ``--epochs`` and the objective), the promotion
    budgets, ``--trials``, the search's seed and this worker's place among the study's workers."""

    strategy: str
    sampler: str
    pruner: str
    objective: str | None
    epochs: int
    rungs: tuple[int, ...] | None  # the epoch budgets of --fidelities
    trials: int | None
    seed: int  # the sampler's: --search-seed, else --seed
    worker_id: int
    poll_seconds: float
    progress: bool

    @classmethod
    def of(cls, settings: StudySettings) -> SearchSettings:
        return cls(strategy=settings.strategy, sampler=settings.sampler, pruner=settings.pruner,
                   objective=settings.objective, epochs=settings.epochs, rungs=_rungs(settings), trials=settings.trials,
                   seed=settings.sampler_seed, worker_id=settings.worker_id, poll_seconds=settings.poll_seconds,
                   progress=settings.progress)


@dataclass(frozen=True)
class TrialSettings:
    """One trial: its training recipe beyond the sampled optimiser (loss, smoothing, schedule, warm-up, precision),
    its budgets (``--epochs`` or the promotion rungs), the size caps, the seed its initialisation derives from,
    the objective it is scored by, the study's target (a trial over the target yields) and the equivariant
    blocks its space offers, the cost it is measured by (``--cost``) and where operator times are kept."""

    trials: int | None
    epochs: int
    rungs: tuple[int, ...] | None
    loss: str
    label_smoothing: float
    schedule: str
    warmup: float
    precision: str
    max_params: int
    max_mflops: float | None
    objective: str | None
    seed: int  # --seed: each trial's initialisation is seed_of_trial(seed, number)
    progress: bool
    equivariant: str = "off"  # which equivariant blocks the space offers (synthesis.search.space.space_for)
    cost: str = "flops"  # --cost: with "time", --objective multi minimises the predicted time, not the parameters
    max_ms: float | None = None  # --max-ms: the cap on predicted ms per image (a catalogue batch, one CPU thread)
    latency_cache: str | None = None  # the folder of the per-machine operator-time table (synthesis.models.LatencyTable)

    @classmethod
    def of(cls, settings: StudySettings) -> TrialSettings:
        return cls(trials=settings.trials, epochs=settings.epochs, rungs=_rungs(settings), loss=settings.loss,
                   label_smoothing=settings.label_smoothing, schedule=settings.schedule, warmup=settings.warmup,
                   precision=settings.precision, max_params=settings.max_params, max_mflops=settings.max_mflops,
                   objective=settings.objective, seed=settings.seed, progress=settings.progress,
                   equivariant=settings.equivariant, cost=settings.cost or "flops", max_ms=settings.max_ms,
                   latency_cache=str(settings.results_dir / "cache"))

    @property
    def max_flops(self) -> float | None:
        """The FLOP cap per image (``--max-mflops`` × 10⁶), None for no cap (0 or unset)."""
        return self.max_mflops * 1e6 if self.max_mflops else None


def _rungs(settings: StudySettings) -> tuple[int, ...] | None:
    rungs = settings.rungs
    return tuple(rungs) if rungs else None
