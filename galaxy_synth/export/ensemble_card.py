"""What the ensemble's card measures: test metrics of the ensemble beside each member's, the reliability
threshold chosen on the validation split, and the risk–coverage curve (numbers and ``risk_coverage.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthesis.training import (
    entropy_threshold,
    log_loss,
    plot_risk_coverage,
    predictive_entropy,
    reliability,
    risk_coverage,
)

CURVE_POINTS = 101  # the risk–coverage curves in card.json, at these coverages (the PNG draws every point)


def probability_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the classes present), log-loss and ECE."""
    predicted = probabilities.argmax(1)
    recalls = [float((predicted[labels == k] == k).mean()) for k in np.unique(labels)]
    return {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.mean(recalls)),
            "log_loss": log_loss(probabilities, labels), "ece": reliability(probabilities, labels).ece}


def selective_classification(val_probabilities: np.ndarray, val_labels: np.ndarray, target_error: float,
                             points: int = 256) -> dict[str, Any]:
    """The entropy threshold whose kept validation galaxies meet ``target_error``, and the validation curve
    (entropy threshold → error rate of those kept, ``points`` of it) that predict's ``--target-error`` reads."""
    entropy = predictive_entropy(val_probabilities)
    correct = val_probabilities.argmax(1) == val_labels
    order = np.argsort(entropy, kind="stable")
    error = np.cumsum(~correct[order]) / np.arange(1, len(order) + 1)
    keep = np.unique(np.linspace(0, len(order) - 1, min(points, len(order))).round().astype(int))
    threshold = entropy_threshold(entropy, correct, target_error)
    kept = entropy <= threshold
    return {"method": "predictive entropy <= threshold, chosen on the validation split for the target error "
                      "(null: not even the most certain galaxies meet it; none is flagged reliable)",
            "target_error": target_error, "entropy_threshold": threshold if np.isfinite(threshold) else None,
            "validation_coverage": float(kept.mean()), "validation_error": float((~correct[kept]).mean()) if kept.any() else None,
            "validation_curve": {"entropy": entropy[order][keep].tolist(), "error": error[keep].tolist()}}


def risk_coverage_summary(named: dict[str, np.ndarray], labels: np.ndarray, path: Path) -> dict[str, Any]:
    """AURC and the risk–coverage curve of each named probability matrix on the test split (entropy orders them);
    draws them all into ``path``."""
    summary: dict[str, Any] = {}
    drawn = {name: risk_coverage(predictive_entropy(p), p.argmax(1) == labels) for name, p in named.items()}
    grid = np.linspace(0.01, 1.0, CURVE_POINTS - 1)
    for name, (coverage, risk, aurc) in drawn.items():
        at = np.clip(np.searchsorted(coverage, grid), 0, len(coverage) - 1)
        summary[name] = {"aurc": aurc, "coverage": grid.round(4).tolist(), "error": risk[at].round(5).tolist()}
    plot_risk_coverage(drawn, path)
    return {"method": "galaxies kept in order of rising predictive entropy; AURC = mean error over coverages",
            "curves": summary}


def paired_sentences(test: dict[str, Any]) -> list[str]:
    """The card's sentences on the paired comparison with the best member and on where the errors sit (the card
    and the study report say the same)."""
    lines = []
    if "paired" in test:
        p = test["paired"]
        for label, trial in (("by validation log-loss", p["best_by_validation"]), ("on the test split", p["best_on_test"])):
            d = p["candidates"][trial]
            lines.append(f"Against the best candidate {label} (trial {trial}), on the same {d['n']} galaxies: accuracy "
                         f"{d['difference']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] (paired bootstrap 95%; "
                         f"{d['only_a_right']} galaxies only the ensemble gets right, {d['only_b_right']} only the member).")
    if "errors_in_least_certain" in test:
        e = test["errors_in_least_certain"]
        lines.append(f"The {e['share_of_galaxies']:.0%} least certain test galaxies (highest entropy) hold "
                     f"{e['share_of_errors']:.0%} of the ensemble's {e['errors']} errors.")
    return lines


def ensemble_markdown(card: dict[str, Any]) -> str:
    """``card.md`` of the ensemble folder."""
    t = card["test"]
    rows = "".join(f"| {name} | {m.get('weight', 1.0):.2f} | {m['accuracy']:.4f} | {m['balanced_accuracy']:.4f} | "
                   f"{m['log_loss']:.4f} | {m['ece']:.4f} |\n"
                   for name, m in [("ensemble", {**t["ensemble"], "weight": 1.0}),
                                   *((f"trial {m['trial']}", {**t["members"][str(m["trial"])], "weight": m["weight"]})
                                     for m in card["ensemble"]["members"])])
    s, rc = card["selective"], card["risk_coverage"]["curves"]
    return f"""# galaxy-synth ensemble of study `{card['study']}` — trials {', '.join(str(m['trial']) for m in card['ensemble']['members'])}

Greedy ensemble selection (Caruana et al. 2004) on the validation split's log-loss, from the top {card['ensemble']['candidates']} fully trained trials.
**Cost:** {card['params']:,} parameters · {card['flops_per_image'] / 1e6:.1f} MFLOPs per image (summed) · {card['cpu_latency']['median_ms']:.2f} ms per image on one CPU thread

## Test split ({t['n_images']} images)

| model | weight | accuracy | balanced accuracy | log-loss | ECE |
|---|---|---|---|---|---|
{rows}{"".join(f"{chr(10)}{line}{chr(10)}" for line in paired_sentences(t))}
## Probabilities and uncertainty

The weighted mean of the members' calibrated probabilities, its log divided by the temperature {card['probability_calibration']['temperature']:.3f} fitted on the validation split.
`galaxy-synth predict` adds `predictive_entropy`, `mutual_information` (the members' disagreement) and `reliable`:
entropy ≤ {s['entropy_threshold'] if s['entropy_threshold'] is not None else '(none: no galaxy)'}, chosen on the validation split for a {s['target_error']:.0%} error rate
(validation coverage {s['validation_coverage']:.1%}; change it with `--target-error`).
Risk–coverage (`risk_coverage.png`): AURC {', '.join(f'{k} {v["aurc"]:.4f}' for k, v in rc.items())}.

## Files

- `model.ts` / `model.onnx`: images{' + extra inputs' if card['extra_inputs']['names'] else ''} → calibrated logits (ONNX also `member_probabilities`)
- `model.pt`: every member's weights (`synthesis.models.load_ensemble`); `arch.json`: the members' shared input spec
- `galaxy-synth predict --model <this folder> IMAGES…`
"""
