"""How the search proposes and stops trials: Optuna samplers and pruners, built from the settings.

Both are plain Optuna objects; a strategy (:func:`synthesis.search.runner.strategy_for`) carries any
sampler or pruner a library user passes instead of these defaults.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from synthesis import objective_info
from synthesis import GalaxySynthError
from synthesis import PRUNERS, SAMPLERS


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
    with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna: a choice made here, not news to users
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=run_seed, **options)
    return sampler, {"name": "TPESampler", "seed": seed, **options}


# A rung promotes only once this many × η trials have reached it (Optuna's ``bootstrap_count``; the first
# ones to arrive stop there): without it the first trials of a rung had almost no competition, and 7 of
# the first ~25 trials of a 5-minute search ran the full 18 epochs (docs/BENCHMARKS.md §16).
PROMOTION_BOOTSTRAP_PER_ETA = 1


def make_pruner(name: str, epochs: int, objective: str = "composite",
                fidelities: list[int] | None = None) -> tuple[optuna.pruners.BasePruner, str]:
    """``auto``: median pruning only when trials have >= 4 epochs; with ``fidelities``, promotion.

    Promotion is Optuna's asynchronous successive halving: a trial reports its score at the end of
    each budget (step = epochs so far) and goes on only while it is in the top 1/η of the trials
    that reached that budget before it, once :data:`PROMOTION_BOOTSTRAP_PER_ETA` × η have.
    Asynchronous: no worker waits for a rung to fill.

    With 2-epoch trials the only pruning point is after epoch 1, where validation accuracy
    barely ranks architectures (see docs/BENCHMARKS.md); pruning there would discard
    candidates on noise and leave them without the metrics the composite proxy needs.
    """
    if fidelities:
        eta = fidelities[1] // fidelities[0]
        bootstrap = PROMOTION_BOOTSTRAP_PER_ETA * eta
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=fidelities[0], reduction_factor=eta,
                                                        min_early_stopping_rate=0, bootstrap_count=bootstrap)
        return pruner, f"successive-halving {','.join(map(str, fidelities))} (eta {eta}, bootstrap {bootstrap})"
    if objective_info(objective).multi:
        if name == "median":
            raise GalaxySynthError("--objective multi cannot prune: Optuna does not prune multi-objective trials")
        name = "none"
    if name == "auto":
        name = "median" if epochs >= 4 else "none"
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=10, n_warmup_steps=1), name
    if name == "none":
        return optuna.pruners.NopPruner(), name
    raise GalaxySynthError(f"unknown pruner {name!r} (choose from {', '.join(PRUNERS)})")
