"""Write a correlation report: JSON, CSV and PNG plots, each atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from correlation.fitting import CrossValidation
from galaxy_common import pyplot as _plt
from galaxy_common import save_figure
from galaxy_common import atomic_write_text
from galaxy_common import write_table
from proxies import CompositeProxy


def plot_scatter(cv: CrossValidation, report: dict[str, Any], path: Path) -> None:
    plt = _plt()
    pred = np.mean(cv.composite, axis=0)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(pred, cv.target, s=14, alpha=0.6)
    lo, hi = np.nanmin([pred.min(), cv.target.min()]), np.nanmax([pred.max(), cv.target.max()])
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ci = report["composite_spearman_cv_ci95"]
    ax.set_title(f"composite (out-of-fold) vs {report['target']}\n"
                 f"ρ = {report['composite_spearman_cv']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}], n = {report['n_rows']}")
    ax.set_xlabel("composite proxy, out-of-fold prediction")
    ax.set_ylabel(report["target"])
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_metric_bars(report: dict[str, Any], path: Path) -> None:
    plt = _plt()
    rows = report["single_metrics"]
    names = [r["metric"] for r in rows] + ["best single (in-fold)", "composite (CV)"]
    rho = [r["spearman"] for r in rows] + [report["best_single_metric_in_fold"]["spearman"], report["composite_spearman_cv"]]
    lo = [r["spearman_ci95_low"] for r in rows] + [report["best_single_metric_in_fold"]["spearman_ci95"][0], report["composite_spearman_cv_ci95"][0]]
    hi = [r["spearman_ci95_high"] for r in rows] + [report["best_single_metric_in_fold"]["spearman_ci95"][1], report["composite_spearman_cv_ci95"][1]]
    err = np.abs(np.array([np.array(rho) - np.array(lo), np.array(hi) - np.array(rho)]))
    colors = ["C0"] * len(rows) + ["C1", "C3"]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.5))
    y = np.arange(len(names))
    ax.barh(y, rho, xerr=err, color=colors, alpha=0.85, capsize=2)
    ax.set_yticks(y, names)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(f"Spearman ρ with {report['target']} (95% bootstrap CI)")
    ax.set_title("single metrics (as measured) vs the cross-validated composite")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def plot_weights(proxy: CompositeProxy, path: Path) -> None:
    """The linear learner's weights, or for the trees each metric's share of the splits."""
    plt = _plt()
    if proxy.learner_ == "linear":
        coefs = proxy.coefficients()
        xlabel = "weight on the rank-gauss-transformed metric (target units per σ)"
        title = f"learned composite weights (ridge α = {proxy.alpha_:.3g})"
    else:
        coefs = tree_split_shares(proxy)
        xlabel = "share of the boosted trees' splits on the metric"
        title = f"boosted trees ({len(proxy.trees_['trees'])} trees): which metrics they split on"
    names = sorted(coefs, key=lambda k: abs(coefs[k]))
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.5))
    ax.barh(names, [coefs[n] for n in names], color=["C2" if coefs[n] > 0 else "C3" for n in names])
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def tree_split_shares(proxy: CompositeProxy) -> dict[str, float]:
    counts = np.zeros(len(proxy.features_))
    for tree in proxy.trees_["trees"]:
        for feature, leaf in zip(tree["feature_idx"], tree["is_leaf"]):
            if not leaf:
                counts[feature] += 1
    total = counts.sum() or 1.0
    return {name: float(c / total) for name, c in zip(proxy.features_, counts)}


def plot_transfer(transfer: dict[str, Any], path: Path) -> None:
    """Per held-out study: each scorer's ρ (left), regret@1 in binomial SEs (middle) and top-k recall (right), each
    with its 95% bootstrap interval over the set's architectures."""
    plt = _plt()
    sets = transfer["held_out_sets"]
    labels = list(sets[0]["scores"]) if sets else []
    short = ["best single in-fold" if lab.startswith("best single") else lab.replace(" (not refit)", "") for lab in labels]
    fig, (left, right, recall) = plt.subplots(1, 3, figsize=(16, 0.55 * len(sets) * max(1, len(labels)) / 2 + 2),
                                              sharey=True)
    height = 0.8 / max(1, len(labels))
    for j, name in enumerate(short):  # every set lists its scorers in one order; the best single's name varies
        scores = [list(s["scores"].values())[j] for s in sets]
        y = np.arange(len(sets)) + j * height
        rho = np.array([sc["spearman"] for sc in scores])
        ci = np.array([sc["spearman_ci95"] for sc in scores])
        err = np.abs(np.stack([rho - ci[:, 0], ci[:, 1] - rho]))
        bars = left.barh(y, rho, height, xerr=err, capsize=2, color=f"C{j}", label=name)
        for bar, s in zip(bars, sets):
            if labels[j] in s.get("in_sample", ()):
                bar.set_hatch("//")
        for ax, stat, scale in ((right, "regret_at_1", [max(sc["one_se"], 1e-9) for sc in scores]),
                                (recall, "top_k_recall", [1.0] * len(scores))):
            value = np.array([sc[stat] for sc in scores]) / scale
            band = np.array([sc[f"{stat}_ci95"] for sc in scores]) / np.array(scale)[:, None]
            ax.barh(y, value, height, xerr=np.abs(np.stack([value - band[:, 0], band[:, 1] - value])), capsize=2,
                    color=f"C{j}")
    repeat = [s.get("ground_truth_seed_vs_seed_spearman") for s in sets]
    left.scatter([r if r is not None else np.nan for r in repeat], np.arange(len(sets)) + 0.4 - height / 2, marker="|", s=300,
                 color="black", label="ground truth seed vs seed")
    left.set_yticks(np.arange(len(sets)) + 0.4 - height / 2, [f"{s['set']} ({s['architectures']})" for s in sets])
    left.axvline(0, color="black", lw=0.6)
    left.set_xlabel("Spearman ρ (95% bootstrap CI; hatched: in-sample)")
    right.axvline(1, color="grey", ls="--", lw=0.8)
    right.set_xlabel("regret@1 ÷ one binomial SE (dashed: 1)")
    left.legend(fontsize=7, loc="lower left")
    left.set_title("ranking a study it never saw", fontsize=10)
    right.set_title("what export's first pick loses", fontsize=10)
    recall.set_xlabel("top-k recall (k = 5, or half a smaller set)")
    recall.set_title("how much of the true top it keeps", fontsize=10)
    for ax in (left, right, recall):
        ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path)


def write_report(results: Path, report: dict[str, Any], cv: CrossValidation, singles: pd.DataFrame, proxy: CompositeProxy) -> list[Path]:
    """``correlation_report.json`` / ``.csv``, ``proxy_weights.json`` and three PNG plots."""
    results.mkdir(parents=True, exist_ok=True)
    paths = [results / "correlation_report.json", results / "correlation_report.csv", results / "proxy_weights.json",
             results / "correlation_scatter.png", results / "correlation_metrics.png", results / "proxy_weights.png"]
    atomic_write_text(paths[0], json.dumps(report, indent=2, default=float))
    summary = pd.concat([
        pd.DataFrame([{"metric": "composite (cross-validated)", "spearman": report["composite_spearman_cv"],
                       "kendall": report["composite_kendall_cv"], "top3_recall": report["composite_top3_recall_cv"],
                       "spearman_ci95_low": report["composite_spearman_cv_ci95"][0],
                       "spearman_ci95_high": report["composite_spearman_cv_ci95"][1]}]),
        singles,
    ], ignore_index=True)
    write_table(summary, paths[1])
    proxy.save(paths[2])
    plot_scatter(cv, report, paths[3])
    plot_metric_bars(report, paths[4])
    plot_weights(proxy, paths[5])
    return paths
