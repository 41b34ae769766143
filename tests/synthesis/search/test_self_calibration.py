"""The choice between prior, sturdy signal and in-study fit, on synthetic evidence."""

import numpy as np
import pandas as pd

from synthesis.search.self_calibration import MIN_EVIDENCE, Evidence, RungChoice, choose_rung_scorer


def _evidence(n: int, *, informative: str, seed: int = 0) -> Evidence:
    """``n`` promoted trials whose label follows ``informative`` ("tse": a signal only a fit finds; "train_loss":
    the sturdy signal; "prior": the prior's own score), every other signal noise."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    noise = lambda: rng.normal(size=n)  # noqa: E731
    signals = pd.DataFrame({
        "tse": -y + 0.1 * noise() if informative == "tse" else noise(),
        "train_loss": -y + 0.1 * noise() if informative == "train_loss" else noise(),
        "grad_norm_mean": noise(),
        "val_acc": noise(),
    })
    prior = y + 0.1 * noise() if informative == "prior" else noise()
    return Evidence(list(range(n)), signals, y, prior, np.zeros(n, dtype=bool))


def test_thin_evidence_keeps_the_prior_unjudged():
    choice = choose_rung_scorer(_evidence(MIN_EVIDENCE - 1, informative="tse"))
    assert choice.chosen == "prior" and "thin evidence" in choice.why
    assert "fit" not in choice.rho and choice.proxy is None and choice.evidence == MIN_EVIDENCE - 1
    assert choice.intervals == {} and "thin evidence" in choice.summary()


def test_a_fit_that_clearly_ranks_better_is_chosen_with_its_interval():
    choice = choose_rung_scorer(_evidence(30, informative="tse"))
    assert choice.chosen == "fit" and choice.proxy is not None
    low, high = choice.intervals["fit-prior"]
    assert 0 < low <= high  # the reason it was chosen: the interval of the ρ difference lies above zero
    assert choice.rho["fit"] > 0.8 > abs(choice.rho["prior"])
    assert "fit" in choice.summary() and "[+" in choice.summary()
    assert RungChoice.from_dict(choice.to_dict()) == choice  # what a version stores reads back whole


def test_the_sturdy_signal_beats_the_prior_and_a_fit_that_only_ties_it():
    choice = choose_rung_scorer(_evidence(30, informative="train_loss"))
    assert choice.chosen == "sturdy", choice.why
    assert choice.intervals["sturdy-prior"][0] > 0 and "fit-sturdy" in choice.intervals


def test_a_good_prior_stands():
    choice = choose_rung_scorer(_evidence(30, informative="prior"))
    assert choice.chosen == "prior" and choice.rho["prior"] > 0.9
    assert choice.intervals["fit-prior"][0] <= 0 and "neither" in choice.why
