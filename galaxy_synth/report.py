"""``galaxy-synth report``: one static HTML page about a study (no server, PNGs beside it).

Sections: data (class balance, split), optimisation history, parameter importances (Optuna's
PED-ANOVA evaluator, which needs no scikit-learn), the proxy's calibration (the out-of-fold scatter
and per-metric bars that ``correlate`` drew, with its cross-validated numbers), and the exported
top models with their confusion matrices, and the ensemble where ``export --ensemble`` made one (its members'
test metrics beside its own, the reliability threshold, the risk–coverage curves). Sections whose inputs do not
exist yet (no ``correlate``, no ``export``) say which command makes them; a study without an ensemble has no
ensemble section.
"""

from __future__ import annotations

import html
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from galaxy_common import pyplot as _plt
from galaxy_common import save_figure
from galaxy_common import atomic_write_text
from synthesis.search import plot_anytime, plot_history
from synthesis.search import objective_words, summary_rows
from synthesis.search import masked
from synthesis.search import reopen_study
from synthesis.search import completed_trials


def plot_class_balance(names: list[str], counts: list[int], path: Path, mapped: bool = False) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bars = ax.barh(names[::-1], counts[::-1], color="#4c72b0")
    ax.bar_label(bars, labels=[f"{c} ({c / sum(counts):.0%})" for c in counts[::-1]], padding=3, fontsize=8)
    ax.set_xlabel("images")
    ax.set_title("class balance (after merge/drop)" if mapped else "class balance")
    ax.set_xlim(0, max(counts) * 1.25)
    fig.tight_layout()
    save_figure(fig, path)


def importance_quantile(n_trials: int) -> float:
    """The share of trials PED-ANOVA calls "top": 10% by default, but never fewer than 10 trials (at most half)."""
    return min(0.5, max(0.1, 10 / max(n_trials, 1)))


def plot_importances(study: optuna.Study, path: Path) -> float | None:
    """Parameter importances; returns the top-trials quantile used (None: too few trials to draw)."""
    n = len(completed_trials(study))
    if n < 4 or len(study.directions) > 1:
        return None
    quantile = importance_quantile(n)
    plt = _plt()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental matplotlib backend
        ax = optuna.visualization.matplotlib.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile))
    fig = ax.figure
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return quantile


def plot_confusion(card: dict[str, Any], path: Path) -> None:
    plt = _plt()
    cm = np.array(card["test"]["confusion"], dtype=float)
    names = card["class_names"]
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 1.0 * len(names) + 1.4))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.grid(False)  # Optuna's importance plot may have switched on a gridded style
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"rank {card['rank']} (trial {card['trial']}): test confusion", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _img(name: str, alt: str) -> str:
    return f'<figure><img src="{html.escape(name)}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
img{max-width:520px;border:1px solid #eee}figcaption{font-size:.8em;color:#555}.note{color:#666;font-size:.9em}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;flex:1 1 28%;min-width:280px}
.card img{max-width:100%}.card h3{margin:.2em 0}"""


def _front_figure(study: optuna.Study, attrs: dict[str, Any], settings: Any, out: Path) -> str:
    """The accuracy-against-inference-cost front of the study's ranking, with its knee."""
    from synthesis.search import plot_front
    from synthesis.search import cost_column, metrics_table, score_images
    from synthesis.search import find_calibration

    proxy, _ = find_calibration(settings.calibration, settings.results_dir)
    table = metrics_table(study, proxy)
    if table.empty or not table["finished"].any():
        return ""
    n = score_images(attrs, table["ranked_by"].iloc[0])
    if plot_front(table, out / "front.png", n) is None:
        return ""
    cost = "forward FLOPs" if cost_column(table) == "flops" else "predicted time per image on one CPU thread"
    return _img("front.png", f"each trial's score against its {cost}: the front, and its knee "
                             "(galaxy-synth export --knee packages it)")


def write_study_report(storage: str, study_name: str | None, results: Path) -> Path:
    """Write ``<study folder>/report/index.html`` and its PNGs; return the page's path."""
    opened = reopen_study(storage, study_name, results, progress=False)
    name = opened.study.study_name
    out = opened.settings.study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections = [_data_section(opened, out), _search_section(opened, storage, out),
                _calibration_section(opened.settings.study_dir, out), _models_section(opened.settings.study_dir, name, out),
                _ensemble_section(opened.settings.study_dir, name, out)]
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>galaxy-synth: {html.escape(name)}"
            f"</title><style>{CSS}</style></head><body><h1>galaxy-synth study <code>{html.escape(name)}</code></h1>"
            f"<p class='note'>storage {html.escape(masked(storage))} · written {time.strftime('%Y-%m-%d %H:%M')}</p>"
            + "".join(sections)
            # For headless-browser checks (tests/galaxy_synth/test_report.py): did every figure load and decode?
            + "<script>addEventListener('load',()=>{document.body.dataset.imagesLoaded=[...document.images]"
              ".every(i=>i.complete&&i.naturalWidth>0)})</script></body></html>")
    return atomic_write_text(out / "index.html", page)


def _data_section(opened: Any, out: Path) -> str:
    data, attrs = opened.data, opened.attrs
    counts = data.class_counts()
    plot_class_balance(list(counts), list(counts.values()), out / "class_balance.png",
                       mapped=bool(opened.settings.merge or opened.settings.drop))
    plan, frozen = attrs.get("plan", {}), attrs.get("settings", {})
    rows = [{"dataset": frozen.get("data") or "embedded procedural galaxies", "images": len(data),
             "classes": len(counts), "image size": f"{data.size}px (crop {data.crop:g})",
             "extra inputs": ", ".join(data.extra_names) or "none",
             "split train/val/test": "/".join(str(len(plan.get(k, []))) for k in ("train", "val", "test"))}]
    return "<h2>Data</h2>" + _table(rows) + _img("class_balance.png", "class balance")


def _search_section(opened: Any, storage: str, out: Path) -> str:
    from synthesis.full_training import open_ground_truth

    study, attrs = opened.study, opened.attrs
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    plot_history(study, out / "history.png")
    summary = (f"<p>{states.count('COMPLETE')} completed, {states.count('PRUNED')} pruned, {states.count('FAIL')} failed "
               f"trials; the search maximised the {objective_words(attrs)} (calibration "
               f"<code>{html.escape(str((attrs.get('calibration') or {}).get('name')))}</code>), "
               f"{attrs.get('settings', {}).get('epochs', 2)} epochs per trial.</p>")
    figs = _img("history.png", "optimisation history")
    gt = open_ground_truth(storage).table(study.study_name)
    full = gt.groupby("trial_number")["accuracy"].mean().to_dict() if len(gt) else {}
    if plot_anytime(study, out / "anytime.png", full_training=full):
        figs += _img("anytime.png", "best so far against the search's CPU time (fully trained where measured)")
    quantile = plot_importances(study, out / "importances.png")
    n = len(completed_trials(study))
    if quantile is not None:
        figs += _img("importances.png", f"parameter importances (PED-ANOVA: what sets the top {quantile:.0%} of trials, "
                                        f"{max(1, round(quantile * n))} of {n}, apart)")
    else:
        figs += "<p class='note'>Parameter importances need at least 4 completed trials of a single-objective study.</p>"
    figs += _front_figure(study, attrs, opened.settings, out)
    best = summary_rows(study, top=10)
    best_table = ("<h3>Best trials</h3><p class='note'>by the value the search optimised; full-training accuracy comes "
                  "with <code>galaxy-synth correlate</code> or <code>export</code></p>" + _table(best)) if best else ""
    return "<h2>Search</h2>" + summary + figs + best_table + _scorer_section(study)


def _scorer_section(study: optuna.Study) -> str:
    """A self-calibrating study's scorer versions: which candidate each rung chose, on what evidence, and why."""
    from synthesis.search import current_scorer_line, version_rows

    line = current_scorer_line(study)
    if line is None:
        return ""
    return (f"<h3>In-study scorer</h3><p>{html.escape(line)}</p><p class='note'>Every version, per rung: ρ of each "
            f"candidate with the promoted trials' results (the fit's out of fold).</p>" + _table(version_rows(study)))


def _ranker_row(name: str, r: dict[str, Any], ci: list[float]) -> dict[str, Any]:
    return {"ranker": name, "ρ": r["spearman"], "τ": r["kendall"], "top-3 recall": r["top3_recall"],
            "ρ 95% CI": " – ".join(f"{v:.3f}" for v in ci)}


def _calibration_section(folder: Path, out: Path) -> str:
    report_json = folder / "correlation_report.json"
    if not report_json.is_file():
        return ("<h2>Proxy calibration</h2><p class='note'>Not calibrated on this study yet: run "
                "<code>galaxy-synth correlate</code> (make correlate).</p>")
    rep = json.loads(report_json.read_text())
    composite = {"spearman": rep["composite_spearman_cv"], "kendall": rep["composite_kendall_cv"],
                 "top3_recall": rep["composite_top3_recall_cv"]}
    best = rep["best_single_metric_in_fold"]
    rows = [_ranker_row("composite (fitted)", composite, rep["composite_spearman_cv_ci95"]),
            _ranker_row("best single metric (chosen in-fold)", best, best["spearman_ci95"])]
    if "seed_weights_cv" in rep:
        rows.append(_ranker_row("seed's fixed weights", rep["seed_weights_cv"], rep["seed_weights_cv"]["spearman_ci95"]))
    if "val_acc_alone" in rep:
        va = rep["val_acc_alone"]
        rows.append(_ranker_row("2-epoch val accuracy alone", va, [va["spearman_ci95_low"], va["spearman_ci95_high"]]))
    figs = ""
    for name, alt in (("correlation_scatter.png", "composite, out-of-fold, vs full-training target"),
                      ("correlation_metrics.png", "each metric's ρ with the target, 95% CI")):
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)
            figs += _img(name, alt)
    proto = rep.get("protocol", {})
    return (f"<h2>Proxy calibration</h2><p>{rep['n_rows']} architectures fully trained "
            f"({rep.get('full_epochs', '?')} epochs), target <code>{html.escape(rep['target'])}</code>. Every number is "
            f"out-of-sample: {html.escape(str(proto.get('kind')))}, {proto.get('folds')} folds × {proto.get('repeats')} "
            f"repeats.</p>" + _table(rows) + figs)


def _models_section(folder: Path, study_name: str, out: Path) -> str:
    cards = []
    order = lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 99  # noqa: E731 — rank1, rank2, …, then knee
    for model_dir in sorted([*(folder / "models").glob("rank*"), *(folder / "models").glob("knee")], key=order):
        card_path = model_dir / "card.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text())
        if card.get("study") != study_name:
            continue
        png = f"confusion_{model_dir.name}.png"
        plot_confusion(card, out / png)
        t = card["test"]
        title = "knee of the front" if model_dir.name == "knee" else f"rank {card['rank']}"
        cards.append(
            f"<div class='card'><h3>{title} — trial {card['trial']}</h3>"
            f"<p><code>{html.escape(card['architecture'])}</code><br>{card['params']:,} parameters · "
            f"{card['flops_per_image'] / 1e6:.1f} MFLOPs · {card['cpu_latency']['median_ms']:.2f} ms/image (CPU, 1 thread)</p>"
            + _table([{"accuracy": t["accuracy"], "balanced acc.": t["balanced_accuracy"], "macro-F1": t["macro_f1"],
                       "proxy score": card["proxy"]["score"]}])
            + _img(png, "test confusion matrix") + f"<p class='note'>{html.escape(str(model_dir))}</p></div>")
    if cards:
        return "<h2>Top models</h2><div class='cards'>" + "".join(cards) + "</div>"
    return "<h2>Top models</h2><p class='note'>None exported yet: run <code>galaxy-synth export</code> (make export).</p>"


def _ensemble_section(folder: Path, study_name: str, out: Path) -> str:
    """``models/ensemble/``: its members, its test metrics beside each member's, the reliability threshold and the
    risk–coverage curves (drawn from the card's numbers); empty where the study has no ensemble."""
    from synthesis.training import plot_risk_coverage

    card_path = folder / "models" / "ensemble" / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    if card.get("study") != study_name:
        return ""
    ensemble, curves = card["ensemble"], card.get("risk_coverage", {}).get("curves", {})
    n = len(ensemble["members"])
    intro = (f"<p>{n} member{'s' if n > 1 else ''} chosen by greedy selection on the validation log-loss from the top "
             f"{ensemble['candidates']} fully trained trials; {card['params']:,} parameters · "
             f"{card['flops_per_image'] / 1e6:.1f} MFLOPs (summed) · {card['cpu_latency']['median_ms']:.2f} ms/image "
             f"(CPU, 1 thread). Test split, {card['test']['n_images']} images:</p>")
    figure = ""
    if curves:
        plot_risk_coverage({name: (c["coverage"], c["error"], c["aurc"]) for name, c in curves.items()},
                           out / "risk_coverage_ensemble.png")
        aurcs = ", ".join(f"{name} {c['aurc']:.4f}" for name, c in curves.items())
        figure = _img("risk_coverage_ensemble.png", "error rate among the galaxies kept against the share kept, the "
                                                    f"least certain (highest entropy) set aside first; AURC {aurcs}")
    from galaxy_synth.export import paired_sentences

    paired = "".join(f"<p>{html.escape(line.replace('**', ''))}</p>" for line in paired_sentences(card["test"]))
    return ("<h2>Ensemble</h2>" + intro + _table(_ensemble_rows(card, curves)) + paired + _selective_note(card.get("selective"))
            + figure + f"<p class='note'>{html.escape(str(card_path.parent))}</p>")


def _ensemble_rows(card: dict[str, Any], curves: dict[str, Any]) -> list[dict[str, Any]]:
    """The ensemble's test metrics, then each member's (AURC for those the card drew: the ensemble, its best member)."""
    named = [("ensemble", 1.0, card["test"]["ensemble"])]
    named += [(f"trial {m['trial']}", m["weight"], card["test"]["members"][str(m["trial"])])
              for m in card["ensemble"]["members"]]
    return [{"model": name, "weight": weight, "accuracy": metrics["accuracy"],
             "balanced acc.": metrics["balanced_accuracy"], "log-loss": metrics["log_loss"], "ECE": metrics["ece"],
             "AURC": curves.get(name, {}).get("aurc", "—")} for name, weight, metrics in named]


def _selective_note(selective: dict[str, Any] | None) -> str:
    """The reliability threshold chosen on the validation split for the target error (predict's ``reliable``)."""
    if not selective:
        return ""
    target = f"a {selective['target_error']:.1%} error rate"
    if selective.get("entropy_threshold") is None:
        return f"<p>Reliability threshold: none; not even the most certain validation galaxies meet {target}.</p>"
    error = selective.get("validation_error")
    return (f"<p>Reliability threshold (predict's <code>reliable</code>): predictive entropy ≤ "
            f"{selective['entropy_threshold']:.4g} nats, chosen on the validation split for {target}: it keeps "
            f"{selective['validation_coverage']:.1%} of the validation galaxies"
            + (f", {error:.1%} of them wrong" if error is not None else "") + ".</p>")
