"""``export --ensemble``: the study's fully trained top candidates combined by greedy ensemble selection.

The top ``K`` trials (as ``export`` ranks them) are fully trained or reused like any exported model and
calibrated one by one (their own temperature, fitted on the validation split). Greedy selection with
replacement (Caruana et al. 2004; :func:`synthesis.training.greedy_selection`) then picks up to
``ensemble_members`` of them — each pick the candidate that most lowers the validation log-loss of the
average, stopping when none does — and a temperature is fitted for the average (on its log, the same
temperature code). The result is one model folder, ``models/ensemble/`` (:mod:`.ensemble_folder`), that
predict runs like any other and that also gives the members' probabilities (their disagreement:
``mutual_information``). Members must share the inputs (size, channels, extra inputs): within one study
they always do; anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from torch import nn

from galaxy_common import atomic_folder, paired_difference
from galaxy_synth.export.card import cpu_latency_ms, input_fields
from galaxy_synth.export.ensemble_card import (
    ensemble_markdown,
    probability_metrics,
    risk_coverage_summary,
    selective_classification,
)
from galaxy_synth.export.ensemble_folder import write_ensemble_network, write_json
from galaxy_synth.export.folder import plain_packaged, test_predictions
from synthesis import GalaxySynthError
from synthesis.full_training import stored_or_trained
from synthesis.models import ArchSpec, EnsembleModel, PackagedModel, count_flops, count_params, model_spec_from_dict
from synthesis.models import save_ensemble
from synthesis.training import (
    calibrate_network,
    dihedral_views,
    fit_temperature,
    greedy_selection,
    log_loss,
    mirror_permutation,
    predictive_entropy,
    plot_reliability,
    reliability,
    split_view_logits,
)


@dataclass
class Candidate:
    """One fully trained, calibrated candidate and its calibrated probabilities on the validation and test splits."""

    trial: int
    seed: int
    net: nn.Module
    spec: ArchSpec
    temperature: float
    val: np.ndarray
    test: np.ndarray


def ensemble_candidates(opened: Any, prep: Any, training: Any, store: Any, trials: dict, numbers: list[int],
                        val: Any, test: Any) -> list[Candidate]:
    """The top trials fully trained (or reused) and calibrated, in rank order (one seed each)."""
    perm = mirror_permutation(prep.class_names, prep.preprocessing.mirror_pairs)
    out = []
    for job in training.jobs(numbers):
        _, net, _ = stored_or_trained(store, training, job, trials[job.trial].user_attrs, prep, need_model=True)
        net = net.cpu().eval()
        calibration = calibrate_network(net, prep.normalizer, val, test, dihedral_views(prep.allow_flips), perm)
        val_logits = split_view_logits(net, prep.normalizer, val, [(0, False)], perm)[0]
        out.append(Candidate(job.trial, job.seed, net, model_spec_from_dict(trials[job.trial].user_attrs["arch"]),
                             calibration.temperature, softmax(val_logits / calibration.temperature, axis=1),
                             calibration.test_probabilities))
    check_shared_inputs([c.spec for c in out])
    return out


def check_shared_inputs(specs: list[ArchSpec]) -> None:
    """Refuse members that do not take the same inputs (one averaged network runs one preprocessing)."""
    shapes = {(s.image_size, s.in_channels, s.n_extra) for s in specs}
    if len(shapes) > 1:
        raise GalaxySynthError(f"the ensemble's candidates take different inputs (size, channels, extra inputs): "
                               f"{sorted(shapes)}; an ensemble needs one preprocessing")


def calibrated_average(probabilities: np.ndarray, weights: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(Σ w p) / T) of member probabilities [M, N, K]: what the ensemble network computes."""
    mean = np.tensordot(weights, probabilities, axes=1)
    return softmax(np.log(np.clip(mean, 1e-12, None)) / temperature, axis=1)


def export_ensemble(opened: Any, prep: Any, candidates: list[Candidate], val: Any, test: Any, domain: dict,
                    max_members: int, target_error: float) -> tuple[Path, dict[str, Any]]:
    """Select, calibrate, measure and write ``<study folder>/models/ensemble/``; its folder and card."""
    y_val, y_test = val.y.cpu().numpy(), test.y.cpu().numpy()
    selection = greedy_selection(np.stack([c.val for c in candidates]), y_val, max_picks=max_members)
    members = [candidates[i] for i in selection.members]
    weights = selection.weights()
    val_mean = np.tensordot(weights, np.stack([m.val for m in members]), axes=1)
    temperature = fit_temperature(np.log(np.clip(val_mean, 1e-12, None)), y_val)
    test_members = np.stack([m.test for m in members])
    test_probs = calibrated_average(test_members, weights, temperature)
    packaged = [PackagedModel(m.net, prep.normalizer, prep.extra_scaler, m.spec.n_extra, m.temperature).eval()
                for m in members]
    ensemble = EnsembleModel([plain_packaged(p, m.spec) for p, m in zip(packaged, members)], weights, temperature).eval()
    best = min(members, key=lambda m: log_loss(m.val, y_val))  # the member drawn beside it in risk_coverage.png
    card = _ensemble_card(opened, prep, candidates, members, weights, selection, ensemble, domain, y_test, test_probs)
    card["probability_calibration"] = _calibration(test_members, weights, temperature, y_test)
    card["test"]["paired"] = paired_with_members(test_probs, candidates, best, y_test)
    card["test"]["errors_in_least_certain"] = errors_in_least_certain(test_probs, y_test)
    card["selective"] = selective_classification(calibrated_average(np.stack([m.val for m in members]), weights,
                                                                     temperature), y_val, target_error)
    folder = opened.settings.study_dir / "models" / "ensemble"

    def write(tmp: Path) -> None:
        save_ensemble(tmp / "model.pt", [m.net for m in members], [m.spec for m in members],
                      [m.temperature for m in members], weights, prep.preprocessing, temperature,
                      [{"trial": m.trial, "seed": m.seed, "study": card["study"]} for m in members])
        write_json(tmp / "arch.json", members[0].spec.to_dict())
        card["onnx"] = write_ensemble_network(tmp, ensemble, members[0].spec)
        card["risk_coverage"] = risk_coverage_summary({"ensemble": test_probs, f"trial {best.trial}": best.test},
                                                      y_test, tmp / "risk_coverage.png")
        write_json(tmp / "card.json", card)
        (tmp / "card.md").write_text(ensemble_markdown(card))
        test_predictions(opened, prep, test_probs).to_csv(tmp / "test_predictions.csv", index=False)
        c = card["probability_calibration"]
        plot_reliability(reliability(np.tensordot(weights, test_members, axes=1), y_test), reliability(test_probs, y_test),
                         temperature, tmp / "reliability.png", f"ensemble: test split, {len(y_test)} galaxies "
                         f"(ECE {c['ece_before']:.3f} → {c['ece_after']:.3f})")

    atomic_folder(folder, write)
    return folder, card


def paired_with_members(test_probs: np.ndarray, candidates: list[Candidate], best: Candidate,
                        y_test: np.ndarray) -> dict[str, Any]:
    """The ensemble's test accuracy minus each candidate's on the same galaxies (paired bootstrap over galaxies),
    and which candidate is the fair comparison: the best by validation log-loss (what one would have exported
    alone) and, stricter, the best on the test split itself."""
    right = test_probs.argmax(1) == y_test
    by_trial = {str(c.trial): paired_difference(right, c.test.argmax(1) == y_test, n_resamples=10_000)
                for c in candidates}
    best_on_test = max(candidates, key=lambda c: float((c.test.argmax(1) == y_test).mean()))
    return {"method": "accuracy(ensemble) − accuracy(candidate) on the same test galaxies; 95% bootstrap interval "
                      "resampling galaxies", "best_by_validation": str(best.trial),
            "best_on_test": str(best_on_test.trial), "candidates": by_trial}


def errors_in_least_certain(probabilities: np.ndarray, labels: np.ndarray, share: float = 0.2) -> dict[str, float]:
    """The share of all test errors that falls among the ``share`` of galaxies with the highest predictive entropy:
    how much setting aside the least certain fifth cleans the catalogue."""
    wrong = probabilities.argmax(1) != labels
    order = np.argsort(-predictive_entropy(probabilities), kind="stable")
    least_certain = order[: int(round(share * len(order)))]
    return {"share_of_galaxies": share, "errors": int(wrong.sum()),
            "share_of_errors": float(wrong[least_certain].sum() / wrong.sum()) if wrong.any() else float("nan")}


def _calibration(test_members: np.ndarray, weights: np.ndarray, temperature: float, y_test: np.ndarray) -> dict:
    before = reliability(np.tensordot(weights, test_members, axes=1), y_test)
    after = reliability(calibrated_average(test_members, weights, temperature), y_test)
    # one temperature for single view and TTA: predict rescales the views' logits by T / T_tta = 1
    return {"method": "temperature scaling of the log of the members' weighted mean probability, fitted on the "
                      "validation split (NLL); ECE on the test split",
            "temperature": temperature, "temperature_tta": temperature, "ece_before": before.ece, "ece_after": after.ece,
            "reliability_before": before.to_dict(), "reliability_after": after.to_dict()}


def _ensemble_card(opened: Any, prep: Any, candidates: list[Candidate], members: list[Candidate], weights: np.ndarray,
                   selection: Any, ensemble: EnsembleModel, domain: dict, y_test: np.ndarray,
                   test_probs: np.ndarray) -> dict[str, Any]:
    import time

    import torch

    spec = members[0].spec
    fields = input_fields(opened, prep, spec)
    fields["input"]["domain"] = domain
    hashes = [m.spec.spec_hash() for m in members]
    return {
        "rank": "ensemble", "study": opened.study.study_name, "trial": [m.trial for m in members],
        "spec_hash": "+".join(hashes), "architecture": " + ".join(m.spec.describe() for m in members), **fields,
        "ensemble": {"method": "greedy forward selection with replacement on validation log-loss (Caruana et al. 2004)",
                     "candidates": len(candidates), "candidate_trials": [c.trial for c in candidates],
                     "members": [{"trial": m.trial, "seed": m.seed, "weight": float(w), "temperature": m.temperature,
                                  "spec_hash": m.spec.spec_hash()} for m, w in zip(members, weights)],
                     "validation_log_loss": list(selection.losses)},
        "params": sum(count_params(m.net) for m in members),
        "flops_per_image": sum(count_flops(m.net, m.spec) for m in members),
        "cpu_latency": cpu_latency_ms(ensemble, spec),
        "test": {"n_images": len(y_test), "ensemble": probability_metrics(test_probs, y_test),
                 "members": {str(m.trial): probability_metrics(m.test, y_test) for m in members},
                 **probability_metrics(test_probs, y_test)},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
    }
