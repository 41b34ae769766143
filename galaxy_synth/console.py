"""What the commands print: the best trials, the cost front and its knee, the correlation report.
"""

from __future__ import annotations


def print_front(df) -> None:
    """The accuracy-against-cost front of the ranking, and its knee."""
    from synthesis.search import binomial_se, cost_column, cost_front, knee_of

    front = cost_front(df)
    if front.empty:
        return
    n = df.attrs.get("score_images", 1)
    knee = knee_of(front, n)
    shown = front.assign(mflops=front["flops"] / 1e6)
    columns = ["trial", "rank_score", "mflops", "predicted_ms_per_image", "predicted_ms_per_image_at_batch",
               "params_count", "cpu_images_per_second"]
    shown = shown[[c for c in columns if c in shown and (shown[c].notna().any() or c == "mflops")]]
    cost = "forward FLOPs" if cost_column(df) == "flops" else "predicted time per image (one CPU thread, batch 256)"
    best = float(front["rank_score"].max())
    print(f"\ncost front ({len(front)} trials no other beats on both {df['ranked_by'].iloc[0]} and {cost}; "
          f"knee = the cheapest within one binomial SE ({binomial_se(best, n):.3f} on {n} images) of the best: "
          f"trial {int(knee['trial'])}, export it with --knee):")
    print(shown.to_string(index=False))


def print_transfer(transfer: dict, target: str) -> None:
    """Per held-out study (or group of searches' picks): ρ, regret@1 against 1 SE, top-k recall, per scorer."""
    print(f"held out one study group at a time ({transfer['protocol']}), target {target!r}:")
    for s in transfer["held_out_sets"]:
        repeat = s.get("ground_truth_seed_vs_seed_spearman")
        print(f"  {s['set']}: {s['architectures']} architectures"
              + (f", ground truth seed vs seed ρ = {repeat:.2f}" if repeat is not None else "")
              + f"; candidate chosen in-fold: {s['candidate']}")
        for label, sc in s["scores"].items():
            ci, rci, kci = sc["spearman_ci95"], sc["regret_at_1_ci95"], sc["top_k_recall_ci95"]
            label = label + (" — in-sample here" if label in s.get("in_sample", ()) else "")
            print(f"    {label:<46} ρ = {sc['spearman']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]  regret@1 = {sc['regret_at_1']:.3f} "
                  f"[{rci[0]:.3f}, {rci[1]:.3f}] (1 SE {sc['one_se']:.3f})  top-{sc['top_k']} recall = {sc['top_k_recall']:.2f} "
                  f"[{kci[0]:.2f}, {kci[1]:.2f}]")
    print("  mean over held-out groups:")
    for label, m in transfer["means"].items():
        print(f"    {label:<46} ρ = {m['mean_spearman']:+.3f}  regret@1 = {m['mean_regret_at_1']:.3f}  "
              f"top-k recall = {m['mean_top_k_recall']:.2f}  regret within 1 SE on {m['sets_within_1se']} sets")
    chosen = transfer.get("shipped_candidate")
    if chosen:
        print(f"  the calibration written: {chosen['candidate']!r}, chosen by the same leave-one-group-out on every group")


def print_correlation(report: dict, target: str) -> None:
    if "transfer" in report:
        print_transfer(report["transfer"], target)
        print("pooled over every group (levels differ between studies, so read the per-study figures above):")
    best = report["best_single_metric_in_fold"]
    proto = report["protocol"]
    print(f"{report['n_rows']} rows, target {target!r}, {proto['kind']} ({proto['folds']} folds × {proto['repeats']} repeats), out-of-fold:")
    ci = report["composite_spearman_cv_ci95"]
    print(f"  composite             ρ = {report['composite_spearman_cv']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
          f"τ = {report['composite_kendall_cv']:.3f}  top-3 recall = {report['composite_top3_recall_cv']:.2f}")
    print(f"  best single (in-fold) ρ = {best['spearman']:.3f}  τ = {best['kendall']:.3f}  "
          f"top-3 recall = {best['top3_recall']:.2f}  (chosen: {best['chosen']})")
    if "seed_weights_cv" in report:
        sw = report["seed_weights_cv"]
        print(f"  seed weights          ρ = {sw['spearman']:.3f}  τ = {sw['kendall']:.3f}  top-3 recall = {sw['top3_recall']:.2f}")
    if "val_acc_alone" in report:
        va = report["val_acc_alone"]
        print(f"  val_acc alone         ρ = {va['spearman']:.3f}  τ = {va['kendall']:.3f}  top-3 recall = {va['top3_recall']:.2f}")
    if "calibration_in_use" in report:
        cu = report["calibration_in_use"]
        print(f"  calibration in use    ρ = {cu['spearman']:.3f}  ({cu['name']}, scored without refitting)")
    if "ground_truth_repeatability" in report:
        rep = report["ground_truth_repeatability"]
        print(f"  ground truth itself: seed vs seed ρ = {rep['seed_vs_seed_spearman']:.3f} → ceiling ≈ "
              f"{rep['ceiling_mean_of_seeds']:.2f} for the mean of seeds; composite / ceiling = "
              f"{report.get('composite_spearman_cv_over_ceiling') or float('nan'):.2f}")
    if "within_studies_kfold" in report:
        w = report["within_studies_kfold"]
        print(f"  (composite, rows of all studies mixed in the folds: ρ = {w['composite_spearman_cv']:.3f}; the figure above "
              f"holds each study out: how it transfers)")
    for t, r in report.get("other_targets", {}).items():
        print(f"  (composite fitted for {t}: ρ = {r['composite_spearman_cv']:.3f})")
    if "promoted" in report:
        print(f"  new studies' calibration: {'promoted' if report['promoted']['promoted'] else 'unchanged'} "
              f"({report['promoted']['why']})")


def print_best(study, settings, rows) -> None:
    import pandas as pd

    from synthesis import objective_info
    from synthesis import STUDY_ATTR

    if not rows:
        return
    attrs = study.user_attrs[STUDY_ATTR]
    calibration = (attrs.get("calibration") or {}).get("name")
    from synthesis.search import objective_words

    info, words = objective_info(attrs["objective"]), objective_words(attrs)
    what = f"{words}, calibration {calibration!r}" if info.calibrated else f"{words} after {settings.epochs} epochs"
    print(f"\nbest trials (objective: {what}):")
    print(pd.DataFrame(rows).to_string(index=False))
