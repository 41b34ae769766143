"""The rules between settings that no one field can declare (:func:`synthesis.settings.check_ranges` runs them),
and the parsers a field's rule calls.

Each rule takes the study's settings and returns the one-line problems it finds (none: an empty list).
"""

from __future__ import annotations

from typing import Any

from synthesis.choices import Objective, names, objective_info
from synthesis.errors import GalaxySynthError

OBJECTIVES = names(Objective)


def parse_fidelities(text: str) -> list[int]:
    """``"2,6,18"`` → [2, 6, 18]: increasing epoch budgets with one ratio η between neighbours."""
    try:
        rungs = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise GalaxySynthError(f"--fidelities {text!r}: comma-separated epoch counts, e.g. 2,6,18") from None
    if len(rungs) < 2 or rungs[0] < 1 or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise GalaxySynthError(f"--fidelities {text!r}: at least two increasing epoch counts, e.g. 2,6,18")
    eta = rungs[1] // rungs[0]
    if rungs[1] % rungs[0] or any(b != a * eta for a, b in zip(rungs, rungs[1:])) or eta < 2:
        raise GalaxySynthError(f"--fidelities {text!r}: each budget must be the previous one times the same whole "
                               f"factor η >= 2 (e.g. 2,6,18 with η = 3; 2,4,8 with η = 2)")
    return rungs


def _fidelities_fit_the_trials(s: Any) -> list[str]:
    rungs = _parsed_or_none(s.fidelities)
    if rungs is None:
        return []  # none asked for, or the field's own rule already said what is wrong
    found = []
    if rungs[0] != s.epochs:
        found.append(f"--fidelities {s.fidelities} must start at the trial budget --epochs {s.epochs}")
    if s.objective in OBJECTIVES and objective_info(s.objective).multi:
        found.append("--fidelities cannot promote multi-objective trials (Optuna does not prune them)")
    return found


def _progressive_scores_by_validation(s: Any) -> list[str]:
    if s.strategy == "progressive" and s.objective in OBJECTIVES and objective_info(s.objective).calibrated:
        return [f"--strategy progressive scores children by validation accuracy (val_acc, or balanced_acc): "
                f"--objective {s.objective} does not apply"]
    return []


def _calibrating_scores_one_objective(s: Any) -> list[str]:
    if s.strategy == "calibrating" and s.objective in OBJECTIVES and objective_info(s.objective).multi:
        return ["--strategy calibrating learns from promotion, which cannot promote multi-objective trials: "
                "--objective multi does not apply"]
    return []


def _parsed_or_none(fidelities: str | None) -> list[int] | None:
    try:
        return parse_fidelities(fidelities) if fidelities is not None else None
    except GalaxySynthError:
        return None


def check_schema_file(path: str) -> None:
    """``--schema``'s rule: the file is a valid question schema (raises GalaxySynthError with one line if not)."""
    from synthesis.data import load_schema  # pandas behind it: only when a schema is given

    load_schema(path)


def _schema_alone(s: Any) -> list[str]:
    found = []
    if s.schema and s.soft_labels:
        found.append("--schema and --soft-labels both say what the labels are: give one (a schema's questions can "
                     "hold the --soft-labels columns as one question)")
    if s.schema and (s.merge or s.drop):
        found.append("--merge/--drop with --schema: add the vote columns up in the catalogue instead")
    return found


def _fraction_error_needs_votes(s: Any) -> list[str]:
    if s.objective == Objective.FRACTION_MAE and not (s.schema or s.soft_labels):
        return ["--objective val_fraction_mae needs vote labels (--schema or --soft-labels)"]
    return []


BETWEEN_FIELDS = (_fidelities_fit_the_trials, _progressive_scores_by_validation, _calibrating_scores_one_objective,
                  _schema_alone, _fraction_error_needs_votes)  # rules no one field can declare
