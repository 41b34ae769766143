"""The study's scorer, in versions frozen in its own storage: what scores each rung, fitted on the study's evidence.

A version is a :class:`ScorerVersion`: per rung below the last, a
:class:`synthesis.search.self_calibration.RungChoice` (prior, sturdy signal or in-study fit, with
its ρ and interval), the trials it was fitted on and its number. Versions live in the study's
user attrs (``scorer:v<N>-<fingerprint of its evidence>``, and ``scorer:current`` = that key), so a
resumed run and every worker score with the same one; version 0 is the prior everywhere (no attr
needed). Workers refit on their own: the key names the evidence, so two workers that both turn
version N into N+1 at the same moment write two keys, never one over the other's (the pointer names
whichever came last, and a trial records the key that scored it); and the pointer only moves forward
(a worker that finds a newer version stored keeps that one instead of its own).

Evidence (:func:`rung_evidence`): a trial that finished (or stopped at a rung) after reaching a
rung above ``r`` has, at ``r``, its signals (``rung_signals`` user attr, written by
:class:`synthesis.search.calibrating.CalibratingObjective`) and a label: minus its validation
log-loss at the highest rung it reached — a lower-variance measure than the accuracy of a few
hundred validation images, and the nearest the study has to full training (a model collapsed to
one class there ranks below every one that learned). The last rung is scored
as today (there is nothing above it to learn from).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd

from proxies import CompositeProxy, guarded, is_collapsed
from synthesis.search.self_calibration import Evidence, RungChoice, choose_rung_scorer, score_with
from synthesis.search.trials import finished

CURRENT_KEY = "scorer:current"
VERSION_KEY = "scorer:v{}"  # studies of the first calibrating release: the pointer held N
VERSION_PREFIX = "scorer:v"
SIGNALS_ATTR = "rung_signals"  # per trial: {budget: {"metrics": {...}, "scorer_version": N}}
LABEL = "val_loss"  # the label is minus this metric at the highest rung a trial reached (lower is better)

PriorScore = Callable[[int, dict[str, float]], float]  # (rung index, the rung's metrics) → today's score of that rung


@dataclass
class ScorerVersion:
    """One frozen scorer: a choice per rung (missing rung: the prior), the trials it was fitted on."""

    number: int = 0
    rungs: dict[str, RungChoice] = field(default_factory=dict)  # budget (as a string: JSON keys) → choice
    fitted_on: list[int] = field(default_factory=list)
    created: str = ""

    def __post_init__(self) -> None:
        self._proxies: dict[str, CompositeProxy] = {}

    @property
    def key(self) -> str:
        """The user attr this version lives in: its number and a fingerprint of the trials it was fitted on."""
        digest = hashlib.sha1(json.dumps(sorted(self.fitted_on)).encode()).hexdigest()[:10]
        return f"{VERSION_PREFIX}{self.number}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.number, "key": self.key, "fitted_on": self.fitted_on, "created": self.created,
                "label": f"-{LABEL} at the highest rung reached", "rungs": {b: c.to_dict() for b, c in self.rungs.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScorerVersion:
        return cls(int(data["version"]), {b: RungChoice.from_dict(c) for b, c in data.get("rungs", {}).items()},
                   list(data.get("fitted_on", [])), data.get("created", ""))

    def choice(self, budget: int) -> RungChoice:
        return self.rungs.get(str(budget)) or RungChoice()

    def proxy(self, budget: int) -> CompositeProxy | None:
        choice = self.choice(budget)
        if choice.chosen != "fit" or not choice.proxy:
            return None
        if str(budget) not in self._proxies:
            self._proxies[str(budget)] = CompositeProxy.from_dict(choice.proxy)
        return self._proxies[str(budget)]

    def score(self, rung: int, budget: int, metrics: dict[str, float], prior: PriorScore, num_classes: int) -> float:
        """The score of one rung's metrics under this version (the prior where the rung has no choice)."""
        kind = self.choice(budget).chosen
        prior_score = prior(rung, metrics)
        if kind == "prior":
            return prior_score
        collapsed = np.array([is_collapsed(metrics, num_classes)])
        return float(score_with(kind, pd.DataFrame([metrics]), np.array([prior_score]), collapsed, self.proxy(budget))[0])

    def describe(self) -> str:
        """One line for the console and the report."""
        if not self.rungs:
            return f"scorer v{self.number}: the prior at every rung (no promoted trial finished yet)"
        parts = [f"rung {b}: {c.summary()}" for b, c in sorted(self.rungs.items(), key=lambda kv: int(kv[0]))]
        return f"scorer v{self.number} ({len(self.fitted_on)} promoted trials) — " + "; ".join(parts)


def current_version(study: optuna.Study) -> ScorerVersion:
    """The study's current scorer version, as stored (version 0, the prior, before any refit)."""
    attrs = study._storage.get_study_user_attrs(study._study_id)
    pointer = attrs.get(CURRENT_KEY)
    if pointer is None:
        return ScorerVersion()
    return ScorerVersion.from_dict(attrs[pointer if isinstance(pointer, str) else VERSION_KEY.format(pointer)])


def store_version(study: optuna.Study, version: ScorerVersion) -> ScorerVersion:
    """Freeze ``version`` in the study's storage under its own key and make it current (the version first, then
    the pointer) — unless another worker already stored one as new or newer: then that one, which is returned."""
    stored = current_version(study)
    if stored.number >= version.number:
        return stored
    study.set_user_attr(version.key, version.to_dict())
    study.set_user_attr(CURRENT_KEY, version.key)
    return version


def stored_versions(study: optuna.Study) -> list[dict[str, Any]]:
    """Every scorer version the study froze, oldest first (for the report; two of one number: two workers)."""
    attrs = study.user_attrs
    found = [v for k, v in attrs.items() if k.startswith(VERSION_PREFIX)]
    return sorted(found, key=lambda v: (v["version"], v.get("created", "")))


def current_scorer_line(study: optuna.Study) -> str | None:
    """One line on a self-calibrating study's current scorer (None for a study without versions)."""
    if study.user_attrs.get(CURRENT_KEY) is None:
        return None
    return current_version(study).describe()


def version_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per stored version and rung: what was chosen, on how many promoted trials, each candidate's ρ, why."""
    rows = []
    for v in stored_versions(study):
        for budget, c in sorted(v["rungs"].items(), key=lambda kv: int(kv[0])):
            rho = c.get("rho") or {}
            rows.append({"version": v["version"], "rung": int(budget), "chosen": c["chosen"], "evidence": c["evidence"],
                         **{f"rho_{k}": None if rho.get(k) is None else round(rho[k], 3) for k in ("prior", "sturdy", "fit")},
                         "why": c["why"]})
    return rows


def rung_metrics(trial: optuna.trial.FrozenTrial, budget: int) -> dict[str, float] | None:
    """A trial's signals at one rung (None where it never reached it, or did not record them)."""
    reached = (trial.user_attrs.get(SIGNALS_ATTR) or {}).get(str(budget))
    return dict(reached["metrics"]) if reached else None


def highest_budget(trial: optuna.trial.FrozenTrial) -> int | None:
    reached = [int(b) for b in (trial.user_attrs.get(SIGNALS_ATTR) or {})]
    return max(reached) if reached else None


def label_of(trial: optuna.trial.FrozenTrial, num_classes: int) -> float:
    """Minus the validation log-loss at the highest rung the trial reached (NaN if unknown); a model that
    collapsed to one class there below every one that learned (:func:`proxies.guarded`)."""
    top = highest_budget(trial)
    metrics = rung_metrics(trial, top) if top is not None else None
    value = (metrics or {}).get(LABEL)
    if value is None or not math.isfinite(float(value)):
        return float("nan")
    return guarded(-float(value), is_collapsed(metrics, num_classes))


def evidence_trials(trials: list[optuna.trial.FrozenTrial], budget: int) -> list[optuna.trial.FrozenTrial]:
    """The trials that are evidence at ``budget``: finished, reached a higher rung, signals there and a finite label."""
    return [t for t in trials if finished(t) and (highest_budget(t) or 0) > budget and rung_metrics(t, budget) is not None
            and math.isfinite(label_of(t, 2))]  # (the class count only moves a finite label, never makes it NaN)


def rung_evidence(trials: list[optuna.trial.FrozenTrial], rungs: list[int], rung: int, prior: PriorScore,
                  num_classes: int) -> Evidence:
    """The evidence of rung index ``rung``: its signals, label and prior score of every :func:`evidence_trials`."""
    chosen = evidence_trials(trials, rungs[rung])
    rows = [rung_metrics(t, rungs[rung]) for t in chosen]
    return Evidence([t.number for t in chosen], pd.DataFrame(rows),
                    np.array([label_of(t, num_classes) for t in chosen], dtype=float),
                    np.array([prior(rung, m) for m in rows], dtype=float),
                    np.array([is_collapsed(m, num_classes) for m in rows], dtype=bool))


def refit(trials: list[optuna.trial.FrozenTrial], rungs: list[int], current: ScorerVersion, prior: PriorScore,
          num_classes: int, seed: int = 0) -> ScorerVersion | None:
    """A new version fitted on the finished trials, or None when the evidence is the current version's."""
    fitted_on = sorted({t.number for budget in rungs[:-1] for t in evidence_trials(trials, budget)})
    if fitted_on == sorted(current.fitted_on):
        return None  # checked before any scoring or fitting: this runs after every trial
    choices = {str(rungs[r]): choose_rung_scorer(rung_evidence(trials, rungs, r, prior, num_classes), seed=seed)
               for r in range(len(rungs) - 1)}
    return ScorerVersion(current.number + 1, choices, fitted_on, time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def prior_scorer(objective: str, frozen: CompositeProxy | None, num_classes: int) -> PriorScore:
    """Today's score of a rung: the objective at the first (the frozen calibration), validation accuracy above."""
    from synthesis.search.objective import trial_value

    above = "balanced_acc" if objective == "balanced_acc" else "val_acc"

    def score(rung: int, metrics: dict[str, float]) -> float:
        return trial_value(metrics, objective if rung == 0 else above, frozen if rung == 0 else None, num_classes)

    return score

