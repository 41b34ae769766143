"""Promotion by successive halving: the one place where a trial reports a rung and learns whether it goes on.

Both strategies promote through this: a TPE trial (:class:`synthesis.search.objective.Objective`)
and a grown child of progressive growth (:mod:`synthesis.search.progressive`). At the end of each
budget of ``--fidelities`` the trial's score is reported to the study's pruner, Optuna's
``SuccessiveHalvingPruner`` (asynchronous successive halving, rung state kept in the storage, see
:func:`synthesis.search.samplers.make_pruner`); a trial not in the top 1/η of those that reached
the rung is stopped there and counts as finished (``rung_stopped``).
"""

from __future__ import annotations

import time
from typing import Any

import optuna

from synthesis.search.trials import yield_if_surplus
from synthesis.training import EpochRecord


class RungReporter:
    """Records each rung a trial reaches (``rungs`` user attr) and stops it where the pruner says so.

    ``report(budget, score, record)`` after each budget: the last budget only records; an earlier one
    reports to the pruner and raises ``optuna.TrialPruned`` when the trial is not promoted.
    """

    def __init__(self, trial: optuna.Trial, rungs: list[int], target: int | None = None) -> None:
        self.trial = trial
        self.rungs = rungs
        self.target = target
        self.start = time.perf_counter()
        self.reached: dict[str, dict[str, Any]] = {}
        self.score = float("nan")

    @property
    def eta(self) -> int:
        return self.rungs[1] // self.rungs[0]

    def report(self, budget: int, score: float, record: EpochRecord) -> None:
        self.score = score
        self.reached[str(budget)] = {"score": score, "val_acc": record.val_acc, "val_balanced_acc": record.val_balanced_acc,
                                     "train_loss": record.train_loss, "seconds": time.perf_counter() - self.start}
        self.trial.set_user_attr("rungs", self.reached)
        if budget == self.rungs[-1]:
            return
        self.trial.report(score, step=budget)
        if self.trial.should_prune():
            if self.target is not None:
                yield_if_surplus(self.trial, self.target)  # a rung-stopped trial counts as finished: it must fit too
            self.trial.set_user_attr("prune_reason", f"rung: stopped after {budget} epochs (score {score:.3f} not in "
                                                     f"the top 1/{self.eta} of the trials that reached it)")
            self.trial.set_user_attr("rung_stopped", True)
            self.finish()
            raise optuna.TrialPruned()

    def finish(self) -> None:
        self.trial.set_user_attr("total_seconds", time.perf_counter() - self.start)


def rung_score(trial: optuna.trial.FrozenTrial, budget: int) -> float | None:
    """A trial's score at one budget, whether it went on from there or not (None if it never reached it)."""
    reached = (trial.user_attrs.get("rungs") or {}).get(str(budget))
    return float(reached["score"]) if reached else None
